"""A property over forge's whole HTTP surface: any body, sent with valid credentials (signed for
Slack, the bearer token for Alertmanager, same-origin with the CSRF token for the playground),
gets 2xx or 4xx, and nothing raises out of a handler or a task it started."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
import pytest
import structlog
from aiohttp import web
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.core.forge import Forge
from bot.http.server import web_app
from bot.playground import session
from bot.playground.page import mount
from bot.playground.slack_bodies import (
    block_suggestion_body,
    message_action_body,
    shortcut_body,
    view_action_body,
)
from bot.slack.app import SlackSurface
from bot.slack.groups import SlackGroupDirectory
from bot.slack.outbox import close_client, make_client
from tests.conftest import PG_ADMIN
from tests.fakes.slack_client import block_action_body, event_body, slash_body, view_submission_body
from tests.scenario.test_playground import free_port, page_session
from tests.scenario.test_playground import settings as bare_settings
from tests.support.alert_fixtures import alert, notification
from tests.support.services import redis_url

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:Generating overly large repr"),
]
TOKEN = "am-surface-token-7d1e"
FAILURES = {"request_failed", "slack_listener_failed", "task_failed"}
EXAMPLES = settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass
class Surface:
    """forge with the playground mounted, and what it takes to reach each route."""

    base: str
    secret: str
    csrf: str
    http: aiohttp.ClientSession
    surface: SlackSurface

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        """POST and the status; the work the request started is finished before returning."""
        async with self.http.post(self.base + path, data=body, headers=headers) as response:
            await response.read()
        await self.surface.drain()
        return response.status

    def signed(self, body: bytes, content_type: str) -> dict[str, str]:
        """Slack's v0 signature headers for these bytes."""
        ts = str(int(time.time()))
        digest = hmac.new(self.secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256)
        return {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": f"v0={digest.hexdigest()}",
        }


@pytest.fixture
async def surface(state_dsn: str) -> AsyncIterator[Surface]:
    """`forge playground` as it runs, with the Alertmanager token set."""
    port = free_port()
    play = session.prepare(
        bare_settings(
            forge_http_port=port,
            forge_state_database_url=state_dsn,
            database_url=PG_ADMIN,
            redis_url=redis_url(6),
            elasticsearch_url="http://127.0.0.1:9",
            clientforge_api_url="http://127.0.0.1:9",
            forge_alertmanager_token=TOKEN,
        )
    )
    secret = play.settings.env.slack_signing_secret.get_secret_value()  # type: ignore[union-attr]
    client = make_client(play.settings)
    forge = Forge(play.settings, groups=SlackGroupDirectory(client))
    await forge.start()
    slack = SlackSurface(forge, client, secret)
    app = web_app(forge, slack)
    mount(app, play)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    async with page_session() as http:
        async with http.get(base + "/playground/session") as response:
            csrf = (await response.json()).get("csrf", "")
        yield Surface(base, secret, csrf, http, slack)
    await slack.drain()
    await runner.cleanup()
    await forge.aclose()
    await close_client(client)


# ---- what is sent: valid bodies, mutated at every level, and plain garbage ----

SAFE_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
HOSTILE = st.sampled_from(
    ["", "\x00", "who\u202eami", "\u200b", "<!channel>", "x" * 1001, "{", "[]", "payload", "💥"]
)
TEXT = st.one_of(SAFE_TEXT, HOSTILE, st.text(max_size=10))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(SAFE_TEXT, inner, max_size=3),
    max_leaves=6,
)


def mutated(value: Any) -> st.SearchStrategy[Any]:
    """The value as it is, or changed anywhere inside: a key dropped, a value of another type."""
    if isinstance(value, dict) and value:
        kept = st.fixed_dictionaries({k: mutated(v) for k, v in value.items()})
        dropped = st.sets(st.sampled_from(sorted(value)), max_size=3)
        whole = st.builds(lambda d, gone: {k: d[k] for k in d if k not in gone}, kept, dropped)
        return st.one_of(whole, whole, JSON)
    if isinstance(value, list) and value:
        return st.one_of(st.lists(mutated(value[0]), max_size=3), JSON)
    return st.one_of(st.just(value), st.just(value), JSON, HOSTILE)


def form(text: str) -> dict[str, str]:
    """A form body as a dict."""
    return dict(parse_qsl(text, keep_blank_values=True))


def payload_of(text: str) -> dict:
    """The JSON payload of an interactivity form body."""
    return json.loads(form(text)["payload"])


SLASH = form(slash_body("whoami", user="U0OPS"))
CLICK = payload_of(block_action_body("forge_run:0", "whoami", user="U0OPS"))
APPROVE = payload_of(block_action_body("forge_approve", "1", user="U0LEAD"))
CONFIRM = payload_of(
    view_submission_body(
        "forge_confirm", {"confirm": {"typed": {"value": "email"}}}, private_metadata="{}"
    )
)
DECLARE = payload_of(
    view_submission_body(
        "forge_incident_declare",
        {"severity": {"value": {"selected_option": {"value": "P2"}}}, "title": {"value": {}}},
        private_metadata="C0OPS",
    )
)
MENTION = json.loads(
    event_body({"type": "app_mention", "user": "U0OPS", "text": "whoami", "channel": "C0OPS"})
)
HOME_OPENED = json.loads(
    event_body({"type": "app_home_opened", "user": "U0OPS", "channel": "D0X", "tab": "home"})
)
SHORTCUT = payload_of(shortcut_body("forge_declare_incident", user="U0OPS"))
MESSAGE_ACTION = payload_of(
    message_action_body("forge_add_to_incident", {"ts": "1.2", "text": "hi", "user": "U0X"})
)
SUGGESTION = payload_of(block_suggestion_body("forge_pick:queue", "em", user="U0OPS"))
HOME_CLICK = payload_of(view_action_body("forge_home_approve", "1", user="U0LEAD"))
ADD = payload_of(
    view_submission_body(
        "forge_incident_add",
        {"incident": {"forge_pick:incident": {"selected_option": {"value": "1"}}}},
        private_metadata="{}",
    )
)
RUN_PICK = payload_of(
    view_submission_body(
        "forge_run_pick",
        {"command": {"forge_pick:command": {"selected_option": {"value": "whoami"}}}},
    )
)
RUN_ARGS = payload_of(
    view_submission_body(
        "forge_run_args",
        {"where": {"value": {"selected_conversation": "C0OPS"}}},
        private_metadata="{}",
    )
)
NOTIFICATION = notification([alert()])
ACTS = [
    {"kind": "slash", "user": "U0OPS", "channel": "C0OPS", "text": "/forge whoami"},
    {"kind": "click", "user": "U0OPS", "channel": "C0OPS", "ts": "1", "action": {"action_id": "x"}},
    {"kind": "submit", "user": "U0OPS", "view_id": "V1", "values": {}},
]


def slash_form(fields: Any) -> bytes:
    """A slash command form; a field that is not text is sent as its JSON."""
    fields = fields if isinstance(fields, dict) else {"text": fields}
    return urlencode(
        {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
    ).encode("utf-8", "surrogatepass")


def as_payload(value: Any) -> bytes:
    """An interactivity form body around any JSON value."""
    return urlencode({"payload": json.dumps(value)}).encode()


async def assert_answered(sent, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    """Send; 2xx or 4xx, and no handler or task failure logged on the way."""
    caplog.clear()
    with structlog.testing.capture_logs() as logs:
        status = await sent
    failed = [log for log in logs if log["event"] in FAILURES]
    errors = [r.getMessage()[:200] for r in caplog.records if r.levelno >= logging.ERROR]
    assert status < 500 and not failed and not errors, (status, failed, errors)


@pytest.fixture(autouse=True)
def _errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)


@EXAMPLES
@given(body=mutated(SLASH).map(slash_form))
@example(body=slash_form({k: v for k, v in SLASH.items() if k != "user_id"}))
async def test_slash_commands(surface, caplog, body):
    """Any slash command form, signed."""
    headers = surface.signed(body, "application/x-www-form-urlencoded")
    await assert_answered(surface.post("/slack/events", body, headers), caplog)


@EXAMPLES
@given(value=st.one_of(mutated(CLICK), mutated(APPROVE), mutated(CONFIRM), mutated(DECLARE)))
async def test_interactivity_payloads(surface, caplog, value):
    """Any block_actions or view_submission payload (or any JSON instead), signed."""
    body = as_payload(value)
    headers = surface.signed(body, "application/x-www-form-urlencoded")
    await assert_answered(surface.post("/slack/events", body, headers), caplog)


@EXAMPLES
@given(
    value=st.one_of(
        mutated(SHORTCUT),
        mutated(MESSAGE_ACTION),
        mutated(SUGGESTION),
        mutated(HOME_CLICK),
        mutated(ADD),
        mutated(RUN_PICK),
        mutated(RUN_ARGS),
    )
)
@example(value=SUGGESTION | {"action_id": "forge_pick:index", "value": "\x00" * 200})
@example(value=MESSAGE_ACTION | {"channel": "C0OPS", "message": ["not", "an", "object"]})
@example(value=MESSAGE_ACTION | {"team": 7, "trigger_id": None})
async def test_shortcuts_pickers_and_home_clicks(surface, caplog, value):
    """Any shortcut, message shortcut, picker question, Home click, Add or Run modal, signed."""
    body = as_payload(value)
    headers = surface.signed(body, "application/x-www-form-urlencoded")
    await assert_answered(surface.post("/slack/events", body, headers), caplog)


@EXAMPLES
@given(value=st.one_of(mutated(MENTION), mutated(HOME_OPENED)))
@example(value=MENTION | {"event": {"type": "app_mention", "user": "U0OPS", "text": "whoami"}})
async def test_events(surface, caplog, value):
    """Any Events API body, signed."""
    body = json.dumps(value).encode()
    await assert_answered(
        surface.post("/slack/events", body, surface.signed(body, "application/json")), caplog
    )


@EXAMPLES
@given(
    body=st.binary(max_size=200),
    content_type=st.sampled_from(
        ["application/json", "application/x-www-form-urlencoded", "text/plain"]
    ),
    path=st.sampled_from(["/slack/events", "/alerts/alertmanager", "/playground/act"]),
)
async def test_raw_bytes_anywhere(surface, caplog, body, content_type, path):
    """Any bytes at any door, with that door's credentials."""
    headers = {
        "/slack/events": surface.signed(body, content_type),
        "/alerts/alertmanager": {"Authorization": f"Bearer {TOKEN}"},
        "/playground/act": {"Origin": surface.base, "X-Forge-CSRF": surface.csrf},
    }[path] | {"Content-Type": content_type}
    await assert_answered(surface.post(path, body, headers), caplog)


@EXAMPLES
@given(value=mutated(NOTIFICATION))
@example(value=notification([alert(description="\x00")]))
async def test_alertmanager_notifications(surface, caplog, value):
    """Any Alertmanager payload with the bearer token."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    await assert_answered(
        surface.post("/alerts/alertmanager", json.dumps(value).encode(), headers), caplog
    )


@EXAMPLES
@given(value=st.one_of(*(mutated(act) for act in ACTS)))
@example(value=ACTS[1] | {"action": ["not", "an", "object"]})
async def test_playground_acts(surface, caplog, value):
    """Any act the page could send, same-origin with the session's token."""
    headers = {
        "Origin": surface.base,
        "Sec-Fetch-Site": "same-origin",
        "X-Forge-CSRF": surface.csrf,
        "Content-Type": "application/json",
    }
    await assert_answered(
        surface.post("/playground/act", json.dumps(value).encode(), headers), caplog
    )

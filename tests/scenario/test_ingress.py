"""Slack's door over real HTTP: malformed requests refused with a reason, and every kind of delivery
handled exactly once, replayed or retried."""

from __future__ import annotations

import gc
import json
import logging
import time
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import pytest
import structlog

from bot.config.settings import Config
from tests.conftest import SECRET, make_settings, running_forge
from tests.fakes.slack_client import (
    block_action_body,
    event_body,
    sign,
    slash_body,
    view_submission_body,
)
from tests.scenario.test_socket_mode import socket_forge  # noqa: F401
from tests.support.approval_fixtures import registry_with_wipe
from tests.support.slack_flow import open_dialog, rows

pytestmark = pytest.mark.integration
CONFIG = Config.model_validate(
    {
        "roles": {"viewer": ["*"], "operator": ["U0OPS"], "admin": ["U0ADMIN"]},
        "approvers": ["U0LEAD"],
        "channels": {"incidents": "C0INC", "destructive": ["C0OPS"]},
    }
)
FAILURES = ("request_failed", "slack_listener_failed", "task_failed")


@pytest.fixture
async def bot(state_dsn, slack) -> AsyncIterator:
    """forge over HTTP with `test wipe` (destructive) and an incidents channel."""
    settings = make_settings(CONFIG, forge_state_database_url=state_dsn, slack_api_url=slack.url)
    async with running_forge(settings, slack, registry_with_wipe()) as harness:
        yield harness


def payload(**fields: object) -> str:
    """A form body with this interactivity payload."""
    return urlencode({"payload": json.dumps(fields)})


def slash(**fields: str) -> str:
    """A slash command form body with exactly these fields."""
    return urlencode({"command": "/forge", "text": "whoami", **fields})


OPS = {"id": "U0OPS"}
MALFORMED = {
    "slash without user_id": (slash(channel_id="C0OPS"), 200, "no valid user_id"),
    "slash without channel_id": (slash(user_id="U0OPS"), 200, "no valid channel_id"),
    "payload not JSON": (urlencode({"payload": "{nope"}), 400, "payload is not JSON"),
    "payload a list": (urlencode({"payload": "[1, 2]"}), 400, "not a JSON object"),
    "payload a string": (urlencode({"payload": '"x"'}), 400, "not a JSON object"),
    "JSON body not JSON": ("{not json", 400, "the JSON body is not JSON"),
    "click without user": (
        payload(type="block_actions", actions=[{"action_id": "forge_approve", "value": "1"}]),
        400,
        "no valid user",
    ),
    "click without channel": (
        payload(type="block_actions", user=OPS, actions=[{"action_id": "forge_run:0"}]),
        400,
        "no channel",
    ),
    "submission without view": (payload(type="view_submission", user=OPS), 400, "no view"),
    "submission without user": (
        payload(type="view_submission", view={"type": "modal", "callback_id": "forge_confirm"}),
        400,
        "no valid user",
    ),
    "private_metadata a number": (
        payload(
            type="view_submission",
            user=OPS,
            view={"type": "modal", "callback_id": "forge_confirm", "private_metadata": 5},
        ),
        400,
        "private_metadata is not a string",
    ),
    "mention without a channel": (
        event_body({"type": "app_mention", "user": "U0OPS", "text": "whoami", "ts": "1.2"}),
        200,
        "app_mention without channel",
    ),
    "event not an object": (
        json.dumps({"type": "event_callback", "event_id": "Ev1", "event": "x"}),
        200,
        "no event",
    ),
}


async def post(bot, body: str, **headers: str):
    """POST a signed body to /slack/events."""
    return await bot.client.post_raw(body, {**sign(SECRET, body), **headers})


async def audited(bot, event: str) -> list:
    """Audit rows of one event."""
    pool = await bot.forge.store.pool()
    return await pool.fetch("SELECT * FROM forge.audit_log WHERE event = $1 ORDER BY id", event)


async def test_malformed_requests_are_refused_with_a_reason_audited_and_nothing_runs(bot, caplog):
    """Each malformed request gets 2xx or 4xx with its reason (slash commands as an ephemeral
    answer, events acked so Slack does not retry), nothing runs, each refusal is audited, no
    handler raises, and forge keeps answering."""
    caplog.set_level(logging.ERROR)
    with structlog.testing.capture_logs() as logs:
        answers = {name: await post(bot, body) for name, (body, _, _) in MALFORMED.items()}
        await bot.settle()
    for name, (_, status, reason) in MALFORMED.items():
        answer = answers[name]
        assert answer.status == status, (name, answer.status, answer.body)
        if status == 400 or name.startswith("slash"):
            assert reason in answer.body, (name, answer.body)
    refused = [log["reason"] for log in logs if log["event"] == "request_refused"]
    for (_, _, reason), logged in zip(MALFORMED.values(), refused, strict=True):
        assert reason in logged, (reason, logged)
    assert not bot.slack.calls_to("chat.postMessage") and not bot.slack.calls_to("views.open")
    assert len(await audited(bot, "request_refused")) == len(MALFORMED)
    assert not [log for log in logs if log["event"] in FAILURES]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert (await bot.get("/healthz"))[0] == 200


@pytest.mark.parametrize(
    "text",
    [
        "who\u202eami",
        "whoami\u200b",
        "whoami\x00",
        "whoami\x1b[31m",
        "x" * 40_000,
        "help " + "\u2066" * 3000,
    ],
    ids=["bidi", "zero-width", "nul", "escape", "40k", "isolates"],
)
async def test_slash_text_of_any_length_and_characters_gets_a_private_usage_error(bot, text):
    """Control, bidirectional or zero-width characters and any length: 200, a private error,
    audited as a usage error, nothing posted."""
    response = await bot.client.slash(text, user="U0OPS")
    await bot.settle()
    assert response.status == 200
    [reply] = bot.slack.responses
    assert "control characters" in reply["text"] or "too long" in reply["text"]
    assert not bot.slack.calls_to("chat.postMessage")
    assert len(await audited(bot, "input_validation_fail")) == 1


async def test_unknown_buttons_and_commands_are_answered_and_audited(bot):
    """A button forge does not know gets 200 and a private note; another slash command gets a
    private answer; both audited; a slash text mentioning "payload" is still read."""
    click = await bot.client.click("zz_unknown", "1", user="U0OPS")
    other = await bot.client.slash("now", user="U0OPS", command="/deploy")
    mentions = await bot.client.slash("help payload", user="U0OPS")
    await bot.settle()
    assert click.status == other.status == mentions.status == 200
    assert "does not handle the command /deploy" in other.json()["text"]
    said = json.dumps(bot.slack.responses)
    assert "does not handle this button" in said and "payload" in said
    assert len(await audited(bot, "request_refused")) == 2


async def test_no_task_exception_is_ever_left_unretrieved(bot, caplog):
    """Work spawned after an ack that fails is logged as task_failed at once, and asyncio never
    reports an exception that was never retrieved."""

    async def boom() -> None:
        raise RuntimeError("spawned work failed")

    caplog.set_level(logging.ERROR)
    with structlog.testing.capture_logs() as logs:
        bot.surface._spawn(boom())
        await bot.settle()
        gc.collect()
    assert [log["task"] for log in logs if log["event"] == "task_failed"]
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


def resigned(body: str, retry: int) -> dict[str, str]:
    """Headers of Slack's retry of a delivery: signed anew, later, with X-Slack-Retry-Num."""
    return {
        **sign(SECRET, body, int(time.time()) + retry),
        "X-Slack-Retry-Num": str(retry),
        "X-Slack-Retry-Reason": "http_timeout",
    }


async def deliver_twice(bot, body: str, replay: bool) -> tuple[int, int]:
    """The same body twice: byte-identical (a replay), or as Slack's retry; both statuses."""
    first_headers = sign(SECRET, body)
    first = await bot.client.post_raw(body, first_headers)
    again = await bot.client.post_raw(body, first_headers if replay else resigned(body, 1))
    await bot.settle()
    return first.status, again.status


@pytest.mark.parametrize("replay", [True, False], ids=["replay", "retry"])
async def test_slash_commands_and_clicks_run_once_replayed_or_retried(bot, replay):
    """A slash command and a Run click, each delivered twice, run once each."""
    url = bot.slack.new_response_url()
    statuses = [
        *await deliver_twice(bot, slash_body("whoami", user="U0OPS", response_url=url), replay),
        *await deliver_twice(bot, block_action_body("forge_run:0", "whoami", user="U0OPS"), replay),
    ]
    assert statuses == [200] * 4
    assert len(bot.slack.calls_to("chat.postMessage")) == 2
    assert len(await audited(bot, "replay_refused")) == 2


@pytest.mark.parametrize("replay", [True, False], ids=["replay", "retry"])
async def test_a_confirmation_dialog_delivered_twice_requests_approval_once(bot, replay):
    """The confirmation of `test wipe alpha` submitted byte-identically twice, or retried, makes
    one approval request and one card."""
    view = await open_dialog(bot, "test wipe alpha")
    body = view_submission_body(
        "forge_confirm",
        {"confirm": {"typed": {"type": "plain_text_input", "value": "alpha"}}},
        user="U0OPS",
        private_metadata=view["private_metadata"],
        view_id=view["id"],
    )
    assert await deliver_twice(bot, body, replay) == (200, 200)
    assert len(await rows(bot)) == 1
    cards = [c for c in bot.slack.calls_to("chat.postMessage") if "test wipe" in c.args["text"]]
    assert len(cards) == 1


@pytest.mark.parametrize("replay", [True, False], ids=["replay", "retry"])
async def test_the_declare_modal_delivered_twice_declares_once(bot, replay):
    """The incident-declare modal submitted byte-identically twice, or retried, declares one
    incident."""
    values = {
        "severity": {"value": {"type": "static_select", "selected_option": {"value": "P2"}}},
        "title": {"value": {"type": "plain_text_input", "value": "Exports are slow"}},
    }
    body = view_submission_body(
        "forge_incident_declare", values, user="U0OPS", private_metadata="C0OPS"
    )
    assert await deliver_twice(bot, body, replay) == (200, 200)
    incidents = await rows(bot, "SELECT * FROM forge.incidents")
    assert [i["title"] for i in incidents] == ["Exports are slow"]


async def test_socket_mode_requests_pass_the_same_gate(socket_forge, slack):
    """Over Socket Mode too: a slash command without user_id is acked with the reason and runs
    nothing, and a slash command delivered twice (Slack's retry) runs once."""
    payload = {"command": "/forge", "text": "whoami", "channel_id": "C0OPS", "team_id": "T0FORGE"}
    refused = await slack.wait_for_ack(await slack.send_envelope("slash_commands", payload))
    assert "no valid user_id" in json.dumps(refused)
    good = payload | {"user_id": "U0OPS", "response_url": slack.new_response_url()}
    await slack.wait_for_ack(await slack.send_envelope("slash_commands", good))
    retried = await slack.send_envelope("slash_commands", good, retry_attempt=1)
    await slack.wait_for_ack(retried)
    await socket_forge.drain()
    assert len(slack.calls_to("chat.postMessage")) == 1

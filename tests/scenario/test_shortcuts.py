"""The incident shortcuts and the pickers over Slack HTTP: signed `shortcut`, `message_action`
and `block_suggestion` requests, the role each needs, the audit, and answers well within 3 s."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import pytest

from bot.config.settings import Config
from tests.conftest import empty_redis, make_settings, running_forge
from tests.support.es_fixtures import clientforge, es  # noqa: F401  (fixture)
from tests.support.services import redis_url
from tests.support.slack_flow import private, rows

pytestmark = pytest.mark.integration
URL = redis_url(7)
CONFIG = {
    "roles": {"viewer": ["U0VIEW"], "operator": ["U0OPS"], "admin": ["U0ADMIN"]},
    "channels": {"incidents": "C0INC"},
    "queues": ["email", "data-sync"],
    "queue_aliases": {"reporting": "data-sync"},
}


@pytest.fixture
async def bot(state_dsn, slack) -> AsyncIterator:
    """forge over HTTP; U0OPS is an operator, U0NOBODY holds no role at all."""
    settings = make_settings(
        Config.model_validate(CONFIG),
        forge_state_database_url=state_dsn,
        slack_api_url=slack.url,
        redis_url=URL,
    )
    async with empty_redis(URL), running_forge(settings, slack) as harness:
        yield harness


def opened(slack) -> list[dict]:
    """Every modal forge opened, oldest first."""
    return [
        json.loads(v) if isinstance(v := c.args["view"], str) else v
        for c in slack.calls_to("views.open")
    ]


async def declared(bot, title: str = "Checkout <fails> & *burns*") -> None:
    """One open incident, INC-1."""
    await bot.client.slash(f"incident declare P1 {title}", user="U0OPS", channel="C0INC")
    await bot.settle()


async def labels(bot, action_id: str, typed: str = "", user: str = "U0OPS") -> list[str]:
    """The options' labels forge answers for this picker and typed text."""
    response = await bot.client.suggest(action_id, typed, user=user)
    assert response.status == 200, response.body
    return [o["text"]["text"] for o in response.json()["options"]]


async def test_declare_shortcut_opens_the_declare_modal_with_a_component_picker(bot):
    """The global shortcut opens the declare modal; its component is an external_select."""
    response = await bot.client.shortcut("forge_declare_incident", user="U0OPS")
    assert response.status == 200
    await bot.slack.wait_for("views.open")
    [view] = opened(bot.slack)
    assert view["callback_id"] == "forge_incident_declare"
    assert view["private_metadata"] == "C0INC"
    component = next(b for b in view["blocks"] if b["block_id"] == "component")
    assert component["element"]["type"] == "external_select"
    assert component["element"]["action_id"] == "forge_pick:service"
    values = {
        "severity": {"value": {"type": "static_select", "selected_option": {"value": "P2"}}},
        "title": {"value": {"type": "plain_text_input", "value": "Search is slow"}},
        "component": {
            "forge_pick:service": {
                "type": "external_select",
                "selected_option": {"value": "search"},
            }
        },
    }
    await bot.client.submit_view(
        "forge_incident_declare", values, user="U0OPS", private_metadata="C0INC"
    )
    await bot.settle()
    [incident] = await rows(bot, "SELECT * FROM forge.incidents")
    assert (incident["title"], incident["component"]) == ("Search is slow", "search")


async def test_shortcuts_refuse_a_user_without_the_role_and_audit_both(bot):
    """No role: the declare shortcut opens a modal that says why; Add to incident says so
    privately and opens nothing; both refusals and the operator's opening are audited."""
    await bot.client.shortcut("forge_declare_incident", user="U0NOBODY")
    await bot.slack.wait_for("views.open")
    [view] = opened(bot.slack)
    assert "callback_id" not in view and "submit" not in view
    assert "needs the operator role; you have no role" in json.dumps(view)
    await bot.client.message_action(
        "forge_add_to_incident",
        {"ts": "1700000000.000200", "text": "hi", "user": "U0OPS"},
        user="U0NOBODY",
    )
    await bot.settle()
    assert len(opened(bot.slack)) == 1
    assert "needs the operator role" in private(bot)
    await bot.client.shortcut("forge_declare_incident", user="U0OPS")
    await bot.settle()
    audited = await rows(
        bot,
        "SELECT actor_id, outcome, command FROM forge.audit_log "
        "WHERE event = 'shortcut' ORDER BY id",
    )
    assert [tuple(r) for r in audited] == [
        ("U0NOBODY", "refused", "incident declare"),
        ("U0NOBODY", "refused", "incident update"),
        ("U0OPS", "opened", "incident declare"),
    ]


async def test_add_to_incident_puts_author_text_and_link_on_the_timeline(bot):
    """Message shortcut → pick the incident (options from forge) → the message on its timeline."""
    await declared(bot)
    message = {"ts": "1700000123.000400", "text": "errors spike\non checkout", "user": "U0ALICE"}
    await bot.client.message_action("forge_add_to_incident", message, user="U0OPS", channel="C0OPS")
    await bot.slack.wait_for("views.open")
    [view] = opened(bot.slack)
    picker = view["blocks"][1]["element"]
    assert (picker["type"], picker["action_id"]) == ("external_select", "forge_pick:incident")
    assert await labels(bot, "forge_pick:incident", "inc-1") == [
        "INC-1 · P1 · Checkout <fails> & *burns*"
    ]
    tampered = await bot.client.submit_view(
        "forge_incident_add", {}, user="U0ADMIN", private_metadata=view["private_metadata"]
    )
    assert tampered.json()["response_action"] == "errors"
    where = {"where": {"value": {"selected_conversation": "C0OPS"}}}
    elsewhere = await bot.client.submit_view(
        "forge_run_args", where, user="U0OPS", private_metadata=view["private_metadata"]
    )
    assert elsewhere.json()["response_action"] == "errors", "a seal is only good for its dialog"
    values = {"incident": {"forge_pick:incident": {"selected_option": {"value": "1"}}}}
    response = await bot.client.submit_view(
        "forge_incident_add", values, user="U0OPS", private_metadata=view["private_metadata"]
    )
    assert response.status == 200 and not response.body
    await bot.settle()
    [event] = await rows(bot, "SELECT actor, text FROM forge.incident_events WHERE kind = 'update'")
    assert event["actor"] == "U0OPS"
    assert event["text"] == (
        "Message from U0ALICE: errors spike on checkout "
        "(https://forge-test.slack.com/archives/C0OPS/p1700000123000400)"
    )


async def test_pickers_offer_forge_names_filtered_as_typed(bot):
    """Queues with their aliases, services, filtered by the typed text; no role, no options."""
    assert await labels(bot, "forge_pick:queue") == ["email", "data-sync", "reporting → data-sync"]
    assert await labels(bot, "forge_pick:queue", "REPORT") == ["reporting → data-sync"]
    assert "search" in await labels(bot, "forge_pick:service", "sea")
    assert await labels(bot, "forge_pick:service", "sea", user="U0NOBODY") == []
    assert await labels(bot, "forge_pick:nothing") == []


async def test_a_hanging_backend_answers_within_the_budget(state_dsn, slack, hanging):
    """Elasticsearch accepts and never answers: the index picker still answers, empty, in time."""
    settings = make_settings(
        Config.model_validate(CONFIG),
        forge_state_database_url=state_dsn,
        slack_api_url=slack.url,
        redis_url=URL,
        elasticsearch_url=f"http://{hanging}",
    )
    async with empty_redis(URL), running_forge(settings, slack) as bot:
        for _ in range(2):
            started = time.monotonic()
            assert await labels(bot, "forge_pick:index") == []
            assert time.monotonic() - started < 2.0


async def test_index_picker_offers_indices_then_aliases_from_elasticsearch(state_dsn, slack, es):
    """ClientForge's indices and `alias → index` pairs, from the ES double, filtered."""
    clientforge(es, 10)
    settings = make_settings(
        Config.model_validate(CONFIG),
        forge_state_database_url=state_dsn,
        slack_api_url=slack.url,
        redis_url=URL,
        elasticsearch_url=es.url,
    )
    async with empty_redis(URL), running_forge(settings, slack) as bot:
        offered = await labels(bot, "forge_pick:index", "contacts")
    assert "contacts" in offered
    assert "contacts-current → contacts" in offered
    assert offered.index("contacts") < offered.index("contacts-current → contacts")
    assert not any(o.startswith(".") for o in offered)


async def test_queue_picker_offers_the_configured_queues_with_redis_down(state_dsn, slack):
    """Redis refuses connections: the configured queues and aliases are still offered."""
    settings = make_settings(
        Config.model_validate(CONFIG),
        forge_state_database_url=state_dsn,
        slack_api_url=slack.url,
        redis_url="redis://127.0.0.1:9/0",
    )
    async with running_forge(settings, slack) as bot:
        started = time.monotonic()
        offered = await labels(bot, "forge_pick:queue")
        elapsed = time.monotonic() - started
    assert offered == ["email", "data-sync", "reporting → data-sync"]
    assert elapsed < 2.0

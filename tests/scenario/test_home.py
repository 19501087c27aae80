"""The App Home tab over Slack HTTP: published on a signed `app_home_opened`, again on changes
(at most once per user per window, the last change never dropped), Approve and Deny through the
card's engine with the clicker checked again, and a backend that is down shown as down."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest

from bot.config.settings import Config
from tests.conftest import empty_redis, make_settings, running_forge
from tests.support.approval_fixtures import EXECUTED, registry_with_wipe
from tests.support.backup_fixtures import backup_settings, cf, run  # noqa: F401  (fixture)
from tests.support.services import redis_url
from tests.support.slack_flow import confirm, open_dialog, rows

pytestmark = pytest.mark.integration
URL = redis_url(7)
CONFIG = {
    "roles": {"viewer": ["*"], "operator": ["U0OPS"], "admin": ["U0ADMIN"]},
    "approvers": ["U0LEAD"],
    "channels": {"incidents": "C0INC", "destructive": ["C0OPS"]},
    "queues": ["email"],
}


@pytest.fixture(autouse=True)
def _forget_executions():
    EXECUTED.clear()


@pytest.fixture
async def bot(state_dsn, slack) -> AsyncIterator:
    """forge over HTTP with `test wipe`; Elasticsearch and Prometheus are not there at all."""
    settings = make_settings(
        Config.model_validate(CONFIG),
        forge_state_database_url=state_dsn,
        slack_api_url=slack.url,
        redis_url=URL,
        elasticsearch_url="http://127.0.0.1:9",
        prometheus_url="http://127.0.0.1:9",
    )
    async with empty_redis(URL), running_forge(settings, slack, registry_with_wipe()) as harness:
        yield harness


async def open_home(bot, user: str) -> None:
    """The user opens forge's Home tab."""
    event = {"type": "app_home_opened", "user": user, "channel": "D0HOME", "tab": "home"}
    response = await bot.client.event(event | {"event_ts": f"{time.time():.6f}"})
    assert response.status == 200


async def published(bot, user: str, count: int = 1, timeout: float = 20.0) -> dict:
    """The Home view after forge published it `count` times for this user."""
    deadline = time.monotonic() + timeout
    while len(calls := publishes(bot, user)) < count:
        assert time.monotonic() < deadline, f"{len(calls)} of {count} publishes for {user}"
        await asyncio.sleep(0.05)
    view = calls[-1].args["view"]
    return json.loads(view) if isinstance(view, str) else view


async def showing(bot, user: str, text: str, timeout: float = 20.0) -> dict:
    """The first Home view published for this user that shows `text` (another may come first)."""
    deadline = time.monotonic() + timeout
    while True:
        for call in publishes(bot, user):
            view = call.args["view"]
            view = json.loads(view) if isinstance(view, str) else view
            if text in json.dumps(view):
                return view
        assert time.monotonic() < deadline, f"no Home view for {user} shows {text!r}"
        await asyncio.sleep(0.05)


def publishes(bot, user: str) -> list:
    """views.publish calls for one user."""
    return [c for c in bot.slack.calls_to("views.publish") if c.args.get("user_id") == user]


def buttons(view: dict) -> list[tuple[str, str, str]]:
    """(label, action_id, value) of every button in the view."""
    return [
        (e["text"]["text"], e["action_id"], e.get("value", ""))
        for b in view["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    ]


async def test_home_shows_every_part_and_a_down_backend_as_down(bot):
    """Role and approving, approvals, own requests, incidents, queues, backups, drill, alerts."""
    await bot.client.slash("incident declare P1 Checkout fails", user="U0OPS", channel="C0INC")
    await bot.settle()
    await open_home(bot, "U0OPS")
    view = await published(bot, "U0OPS")
    assert view["type"] == "home"
    text = json.dumps(view, ensure_ascii=False)
    assert "You are <@U0OPS>: *operator*; you may not approve" in text
    for title in (
        "Waiting for your approval",
        "Your pending requests",
        "Open incidents",
        "Queues, worst first",
        "Backups",
        "Firing alerts",
    ):
        assert f"*{title}*" in text
    assert "INC-1" in text and "P1 · Checkout fails" in text and "commander <@U0OPS>" in text
    assert "`email` · 0 waiting · 0 in DLQ" in text
    assert "No backup in the catalog yet" in text and "No drill yet" in text
    assert "Nothing is firing" in text
    [opened] = await rows(bot, "SELECT actor_id FROM forge.audit_log WHERE event = 'home_opened'")
    assert opened["actor_id"] == "U0OPS"


async def test_publishes_are_throttled_and_the_last_change_is_kept(bot):
    """Changes inside the window coalesce into one publish at its end, showing the last one."""
    bot.surface.home.every = 6.0
    await open_home(bot, "U0OPS")
    await published(bot, "U0OPS")
    for title in ("First fire", "Second fire", "Third fire"):
        await bot.client.slash(f"incident declare P2 {title}", user="U0OPS", channel="C0INC")
    await bot.settle()
    changes_done = time.monotonic()
    view = await published(bot, "U0OPS", 2)
    first, second = publishes(bot, "U0OPS")[:2]
    assert second.at - first.at >= 5.9
    assert changes_done < second.at, "the three changes were made inside the first window"
    assert all(t in json.dumps(view) for t in ("First fire", "Second fire", "Third fire"))
    await asyncio.sleep(1.0)
    assert len(publishes(bot, "U0OPS")) == 2, "three changes in one window: one publish"


async def test_approve_and_deny_on_home_go_through_the_engine(bot):
    """The approver sees Approve/Deny; a non-approver's click is refused; the approver's runs it
    once; the requester sees the request under their own and may cancel."""
    view = await open_dialog(bot, "test wipe alpha", user="U0OPS")
    await confirm(bot, view, "alpha", user="U0OPS")
    [approval] = await rows(bot)
    await open_home(bot, "U0LEAD")
    await open_home(bot, "U0OPS")
    lead_view = await published(bot, "U0LEAD")
    assert ("Approve", "forge_home_approve", str(approval["id"])) in buttons(lead_view)
    assert ("Deny", "forge_home_deny", str(approval["id"])) in buttons(lead_view)
    own = await published(bot, "U0OPS")
    assert ("Cancel", "forge_home_deny", str(approval["id"])) in buttons(own)
    assert not any(b[1] == "forge_home_approve" for b in buttons(own))
    await bot.client.view_click("forge_home_approve", str(approval["id"]), user="U0OPS")
    await bot.settle()
    assert EXECUTED == []
    assert any("own request" in (e.get("text") or "") for e in bot.slack.ephemerals)
    await bot.client.view_click("forge_home_approve", str(approval["id"]), user="U0LEAD")
    await bot.settle()
    assert EXECUTED == ["alpha"]
    [done] = await rows(bot)
    assert (done["status"], done["decided_by"]) == ("succeeded", "U0LEAD")


async def test_cancel_on_home_and_a_stranger_may_not_deny(bot):
    """Deny from a stranger is refused; the requester's Cancel cancels."""
    view = await open_dialog(bot, "test wipe beta", user="U0OPS")
    await confirm(bot, view, "beta", user="U0OPS")
    [approval] = await rows(bot)
    await bot.client.view_click("forge_home_deny", str(approval["id"]), user="U0VIEW")
    await bot.settle()
    assert (await rows(bot))[0]["status"] == "pending"
    await bot.client.view_click("forge_home_deny", str(approval["id"]), user="U0OPS")
    await bot.settle()
    assert (await rows(bot))[0]["status"] == "cancelled"


async def test_redis_down_shows_the_queues_as_unavailable_and_the_rest(state_dsn, slack):
    """Redis refuses connections: the queue summary says so, the tab is published all the same."""
    settings = make_settings(
        Config.model_validate(CONFIG),
        forge_state_database_url=state_dsn,
        slack_api_url=slack.url,
        redis_url="redis://127.0.0.1:9/0",
    )
    async with running_forge(settings, slack) as bot:
        await open_home(bot, "U0LEAD")
        text = json.dumps(await published(bot, "U0LEAD"), ensure_ascii=False)
    queues = text.split("Queues, worst first")[1].split("Backups")[0]
    assert "⚠️ Unavailable: " in queues and "redis" in queues.lower()
    assert "you may approve other people's destructive requests" in text
    assert "Nothing is waiting for you" in text


async def test_run_a_command_from_home_picks_a_command_then_its_arguments(bot):
    """Run a command: only what one may run is offered; its arguments; it runs as the submitter
    through the normal path (audited), its answer where they chose."""
    await bot.client.view_click("forge_home_run", "run", user="U0OPS")
    [opened] = await bot.slack.wait_for("views.open")
    assert opened.args["view"]["callback_id"] == "forge_run_pick"
    for_viewer = [
        o["text"]["text"]
        for o in (await bot.client.suggest("forge_pick:command", "queue", user="U0VIEW")).json()[
            "options"
        ]
    ]
    for_operator = [
        o["text"]["text"]
        for o in (await bot.client.suggest("forge_pick:command", "queue", user="U0OPS")).json()[
            "options"
        ]
    ]
    assert any(o.startswith("queue health:") for o in for_viewer)
    assert not any(o.startswith("queue pause:") for o in for_viewer)
    assert any(o.startswith("queue pause:") for o in for_operator)

    def picked(value: str) -> dict:
        return {"command": {"forge_pick:command": {"selected_option": {"value": value}}}}

    refused = await bot.client.submit_view("forge_run_pick", picked("queue pause"), user="U0VIEW")
    assert refused.json()["response_action"] == "errors"
    step = await bot.client.submit_view("forge_run_pick", picked("queue health"), user="U0OPS")
    update = step.json()
    assert update["response_action"] == "update"
    view = update["view"]
    assert view["callback_id"] == "forge_run_args"
    queue = next(b for b in view["blocks"] if b.get("block_id") == "arg:queue")
    assert queue["element"]["action_id"] == "forge_pick:queue" and queue["optional"]
    values = {
        "arg:queue": {"forge_pick:queue": {"selected_option": {"value": "email"}}},
        "where": {"value": {"type": "conversations_select", "selected_conversation": "C0OPS"}},
    }
    meta = view["private_metadata"]
    stolen = await bot.client.submit_view(
        "forge_run_args", values, user="U0VIEW", private_metadata=meta
    )
    assert stolen.json()["response_action"] == "errors"
    done = await bot.client.submit_view(
        "forge_run_args", values, user="U0OPS", private_metadata=meta
    )
    assert done.status == 200 and not done.body
    await bot.settle()
    [post] = [c for c in bot.slack.calls_to("chat.postMessage") if c.args["channel"] == "C0OPS"]
    assert "queue health" in post.args["text"]
    [audited] = await rows(
        bot, "SELECT actor_id, text FROM forge.audit_log WHERE command = 'queue health'"
    )
    assert (audited["actor_id"], audited["text"]) == ("U0OPS", "queue health email")


async def test_two_replicas_share_who_watches_and_the_window(state_dsn, slack):
    """Home opened on one replica, a change made on the other: the other publishes it, and not
    within the window of the first one's publish."""
    settings = make_settings(
        Config.model_validate(CONFIG),
        forge_state_database_url=state_dsn,
        slack_api_url=slack.url,
        redis_url=URL,
    )
    async with empty_redis(URL), running_forge(settings, slack) as one:
        async with running_forge(settings, slack) as other:
            one.surface.home.every = other.surface.home.every = 3.0
            await open_home(one, "U0OPS")
            await published(one, "U0OPS")
            await other.client.slash("incident declare P2 Seen elsewhere", user="U0OPS")
            view = await showing(other, "U0OPS", "Seen elsewhere")
            calls = publishes(other, "U0OPS")
            [row] = await rows(one, "SELECT user_id FROM forge.home_tabs")
    assert "Seen elsewhere" in json.dumps(view)
    assert all(b.at - a.at >= 2.9 for a, b in zip(calls, calls[1:], strict=False))
    assert row["user_id"] == "U0OPS"


async def test_state_store_down_still_publishes_what_it_can(slack):
    """No state store: approvals, incidents and alerts say they are unavailable; queues show."""
    settings = make_settings(
        Config.model_validate(CONFIG),
        forge_state_database_url="postgresql://postgres@127.0.0.1:9/forge",
        slack_api_url=slack.url,
        redis_url=URL,
    )
    async with empty_redis(URL), running_forge(settings, slack) as bot:
        await open_home(bot, "U0OPS")
        text = json.dumps(await published(bot, "U0OPS"), ensure_ascii=False)
    assert text.count("⚠️ Unavailable: ") >= 3
    assert "`email` · 0 waiting" in text
    assert "The last drill is unknown" in text


async def test_backups_on_home_and_in_the_picker(state_dsn, slack, cf, tmp_path):
    """A real dump and a drill: the newest file and the drill's result on Home; the file offered
    by the backup picker."""
    settings = backup_settings(state_dsn, cf, tmp_path, slack_api_url=slack.url)
    async with running_forge(settings, slack) as bot:
        created = await run(bot.forge, "backup create", user="U0ADMIN")
        drilled = await run(bot.forge, "backup drill", user="U0ADMIN")
        await open_home(bot, "U0ADMIN")
        text = json.dumps(await published(bot, "U0ADMIN", timeout=20), ensure_ascii=False)
        options = (await bot.client.suggest("forge_pick:backup", "backup-", user="U0ADMIN")).json()
    dump = created.result.data["file"]
    assert "Newest backup `backup-" in text, "the drill's own dump or the one created"
    assert f"Last drill {drilled.result.status.symbol} {drilled.result.status.value}" in text
    assert dump in [o["value"] for o in options["options"]]

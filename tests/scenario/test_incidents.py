"""Incidents over Slack HTTP with the Slack double: declare by command and by modal, the threaded
checklist with Done/Undo, Assign and Run, a destructive command from the thread through approval,
severity, resolve, the report, a restart in the middle, and two forge processes clicking at once."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC

import pytest
from PIL import Image

from bot.config.settings import Config
from bot.core.context import Actor
from bot.core.dispatch import Invocation
from bot.core.forge import Forge
from bot.core.registry import Role
from tests.conftest import empty_redis, make_settings, running_forge
from tests.support.services import redis_url
from tests.support.slack_flow import confirm, private, rows

pytestmark = pytest.mark.integration
URL = redis_url(7)
CONFIG = {
    "roles": {"viewer": ["*"], "operator": ["U0OPS", "U0ALICE"], "admin": ["U0ADMIN"]},
    "approvers": ["U0LEAD"],
    "channels": {"incidents": "C0INC", "destructive": ["C0INC", "C0OPS"]},
    "queues": ["email"],
}


def settings_for(state_dsn: str, slack_url: str, **config: object):  # type: ignore[no-untyped-def]
    """forge with an incidents channel, on real PostgreSQL and Redis."""
    return make_settings(
        Config.model_validate({**CONFIG, **config}),
        forge_state_database_url=state_dsn,
        slack_api_url=slack_url,
        redis_url=URL,
    )


@pytest.fixture
async def bot(state_dsn, slack) -> AsyncIterator:
    """forge over HTTP with its incident board running."""
    async with (
        empty_redis(URL),
        running_forge(settings_for(state_dsn, slack.url), slack) as harness,
    ):
        yield harness


async def until(predicate, timeout: float = 8.0, what: str = "") -> None:  # type: ignore[no-untyped-def]
    """Poll a synchronous predicate (the board renders twice a second)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.05)


def card(slack, channel: str = "C0INC") -> object:
    """The incident card: the top-level post in the incidents channel."""
    return next(
        c
        for c in slack.calls_to("chat.postMessage")
        if c.args.get("channel") == channel
        and not c.args.get("thread_ts")
        and "INC-" in c.args["text"]
    )


def thread(slack, ts: str) -> list:
    """Posts in a thread, oldest first."""
    return [c for c in slack.calls_to("chat.postMessage") if c.args.get("thread_ts") == ts]


def latest(slack, channel: str, ts: str) -> str:
    """What a message shows now: its last edit, or the post."""
    for call in reversed(slack.calls):
        if call.args.get("channel") == channel and (
            call.args.get("ts") == ts
            or (call.method == "chat.postMessage" and (call.response or {}).get("ts") == ts)
        ):
            return json.dumps(call.args.get("blocks"), ensure_ascii=False) + call.args.get(
                "text", ""
            )
    return ""


async def declared(
    bot, text: str = "incident declare P0 Checkout is down", steps: int = 6
) -> tuple[str, list]:
    """Declare by slash command; the card's ts and its step messages once the board posted them."""
    await bot.client.slash(text, user="U0OPS", channel="C0OPS")
    await bot.settle()
    await until(
        lambda: any(
            "INC-" in c.args["text"]
            for c in bot.slack.calls_to("chat.postMessage")
            if c.args.get("channel") == "C0INC"
        ),
        what="the card",
    )
    ts = card(bot.slack).response["ts"]
    await until(lambda: len(thread(bot.slack, ts)) >= steps, what="the checklist")
    return ts, thread(bot.slack, ts)


def buttons(call) -> list[tuple[str, str]]:
    """(label, value) of every button on a message."""
    return [
        (e["text"]["text"], e.get("value", ""))
        for b in call.args["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["type"] == "button"
    ]


async def events(bot, kind: str | None = None) -> list:
    """Timeline rows."""
    pool = await bot.forge.store.pool()
    found = await pool.fetch("SELECT * FROM forge.incident_events ORDER BY id")
    return [e for e in found if kind is None or e["kind"] == kind]


def timeline_marks(png: bytes) -> list[tuple[str, str]]:
    """The (UTC time, label) of each dot of a timeline PNG (its Description text chunk), after
    checking the picture is at most 200 KB and 1,600 px wide."""
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size[0] == 1600 and len(png) <= 200 * 1024
    return [tuple(line.split("  ", 1)) for line in image.text["Description"].splitlines()]


def stamp(at) -> str:  # type: ignore[no-untyped-def]
    """A timestamp as the picture writes it."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_declare_posts_a_card_and_the_p0_checklist_in_its_thread(bot):
    """Card: INC-n, severity, commander; six P0 steps follow in thread, Assess with Run buttons."""
    ts, steps = await declared(bot)
    shown = card(bot.slack).args["text"]
    assert "INC-1 · P0 · Checkout is down" in shown
    assert "<@U0OPS>" in json.dumps(card(bot.slack).args["blocks"])
    titles = [s.args["text"] for s in steps]
    assert [t.split(": ")[0].split(" step ")[1] for t in titles] == [
        "1. Acknowledge",
        "2. Assess",
        "3. Mitigate",
        "4. Communicate",
        "5. Monitor",
        "6. Document",
    ]
    assess = buttons(steps[1])
    assert ("Done", "incident check 2 --id INC-1") in assess and (
        "Run queue health",
        "queue health",
    ) in assess
    assert ("Run health", "health") in assess
    declared_reply = [
        c for c in bot.slack.calls_to("chat.postMessage") if c.args.get("channel") == "C0OPS"
    ]
    assert "Declared INC-1 (P0)" in declared_reply[-1].args["text"]


async def test_declare_by_modal(bot):
    """`/forge incident declare` alone opens the modal; its submission declares as the submitter."""
    await bot.client.slash("incident declare", user="U0OPS", channel="C0OPS")
    await bot.settle()
    [opened] = bot.slack.calls_to("views.open")
    view = opened.args["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert view["callback_id"] == "forge_incident_declare" and "P0: Critical" in json.dumps(view)
    short = {
        "severity": {"value": {"type": "static_select", "selected_option": {"value": "P1"}}},
        "title": {"value": {"type": "plain_text_input", "value": "x"}},
    }
    refused = await bot.client.submit_view(
        "forge_incident_declare", short, user="U0OPS", private_metadata=view["private_metadata"]
    )
    assert refused.json()["response_action"] == "errors"
    values = {
        **short,
        "title": {"value": {"type": "plain_text_input", "value": "Emails are not sent"}},
        "component": {
            "forge_pick:service": {
                "type": "external_select",
                "selected_option": {"value": "queues"},
            }
        },
    }
    await bot.client.submit_view(
        "forge_incident_declare", values, user="U0OPS", private_metadata=view["private_metadata"]
    )
    await bot.settle()
    await until(
        lambda: any(
            "INC-1 · P1 · Emails are not sent" in c.args["text"]
            for c in bot.slack.calls_to("chat.postMessage")
        ),
        what="the P1 card",
    )
    ts = card(bot.slack).response["ts"]
    await until(lambda: len(thread(bot.slack, ts)) == 6, what="the P1 checklist")
    assert "1. Investigate" in thread(bot.slack, ts)[0].args["text"]


async def test_done_undo_and_assign_record_who_once(bot):
    """Done (twice) records one entry and re-renders the step; a viewer may not; Undo reopens; the
    picker and the command both assign."""
    ts, steps = await declared(bot)
    first = steps[0].response["ts"]
    for _ in range(2):
        await bot.client.click(
            "forge_run:0",
            "incident check 1 --id INC-1",
            user="U0OPS",
            channel="C0INC",
            message_ts=first,
            thread_ts=ts,
        )
    await bot.settle()
    await until(lambda: "done by <@U0OPS>" in latest(bot.slack, "C0INC", first), what="step 1 done")
    assert len(await events(bot, "item_done")) == 1
    await until(lambda: "1/6 steps" in latest(bot.slack, "C0INC", ts), what="the card's progress")
    await bot.client.click(
        "forge_run:0",
        "incident check 2 --id INC-1",
        user="U0VIEW",
        channel="C0INC",
        message_ts=steps[1].response["ts"],
        thread_ts=ts,
    )
    await bot.settle()
    assert "needs the operator role" in private(bot) and len(await events(bot, "item_done")) == 1

    await bot.client.click(
        "forge_run:0",
        "incident check 1 --undo --id INC-1",
        user="U0OPS",
        channel="C0INC",
        message_ts=first,
        thread_ts=ts,
    )
    await bot.settle()
    await until(lambda: "⬜" in latest(bot.slack, "C0INC", first), what="step 1 reopened")

    await bot.client.click(
        "forge_incident_assign",
        "",
        user="U0OPS",
        channel="C0INC",
        block_id="incident:1:3",
        message_ts=steps[2].response["ts"],
        thread_ts=ts,
        selected_user="U0ALICE",
    )
    await bot.client.slash("incident assign 4 <@U0BOB|bob>", user="U0OPS", channel="C0INC")
    await bot.settle()
    await until(
        lambda: "Owner: <@U0ALICE>" in latest(bot.slack, "C0INC", steps[2].response["ts"]),
        what="owner 3",
    )
    await until(
        lambda: "Owner: <@U0BOB>" in latest(bot.slack, "C0INC", steps[3].response["ts"]),
        what="owner 4",
    )


async def test_run_buttons_answer_in_the_thread_and_go_on_the_timeline(bot):
    """`queue health` and `health` run from Assess: results in thread, each on the timeline once."""
    ts, steps = await declared(bot)
    assess = steps[1].response["ts"]
    for _ in range(2):
        await bot.client.click(
            "forge_run:1",
            "queue health",
            user="U0VIEW",
            channel="C0INC",
            message_ts=assess,
            thread_ts=ts,
        )
    await bot.client.click(
        "forge_run:2", "health", user="U0VIEW", channel="C0INC", message_ts=assess, thread_ts=ts
    )
    await bot.settle()
    answers = [
        c.args["text"]
        for c in thread(bot.slack, ts)
        if "queue health" in c.args["text"]
        or c.args["text"].startswith(("✅ health", "⚠️ health", "🔴 health"))
    ]
    assert len(answers) == 3
    runs = [e["text"] for e in await events(bot, "run")]
    assert sorted(runs)[0].startswith("health →") and sum("queue health" in r for r in runs) == 1


async def test_destructive_command_from_the_thread_goes_through_approval_and_is_linked(
    state_dsn, slack
):
    """A step whose Run button is `dlq clear email`: the dialog, a second person's approval, and the
    request and its outcome in the incident's report."""
    checklist = {
        "incidents": {"checklists": {"P1": [{"title": "Clear", "commands": ["dlq clear email"]}]}}
    }
    async with (
        empty_redis(URL),
        running_forge(settings_for(state_dsn, slack.url, **checklist), slack) as bot,
    ):
        ts, steps = await declared(bot, "incident declare P1 Emails bounce", steps=1)
        await bot.client.click(
            "forge_run:1",
            "dlq clear email",
            user="U0OPS",
            channel="C0INC",
            message_ts=steps[0].response["ts"],
            thread_ts=ts,
        )
        await bot.slack.wait_for("views.update")
        await bot.settle()
        [view] = bot.slack.views.values()
        await confirm(bot, view, "email")
        [request] = await rows(bot)
        approval_card = [
            c for c in slack.calls_to("chat.postMessage") if "approval" in c.args["text"].lower()
        ]
        await bot.client.click(
            "forge_approve",
            str(request["id"]),
            user="U0LEAD",
            channel="C0INC",
            message_ts=approval_card[-1].response["ts"],
        )
        await bot.settle()
        assert (await rows(bot))[0]["status"] == "succeeded"
        [linked] = await events(bot, "approval_requested")
        assert json.loads(linked["detail"])["approval"] == str(request["id"])
        outcome = await bot.forge.dispatcher.run(
            Invocation("incident report INC-1", "U0OPS", source="cli"),
            actor=Actor("U0OPS", Role.OPERATOR, source="cli"),
        )
        assert (
            "`dlq clear email` requested by @U0OPS: succeeded by @U0LEAD"
            in outcome.result.data["markdown"]
        )
        shown = timeline_marks(outcome.result.attachments[1].content)
        assert shown[0][1] == "declared P1"
        assert (stamp(linked["at"]), "Approval requested: dlq clear email") in shown
        assert "![INC-1 timeline](INC-1-timeline.png)" in outcome.result.data["markdown"]


async def test_severity_resolve_and_report(bot):
    """P1 → P0 adds the six P0 steps and keeps progress; resolve is refused with P0 steps open,
    forced with a reason; the thread gets the resolution and the report; the report has durations,
    participants, timeline."""
    ts, steps = await declared(bot, "incident declare P1 Search is slow")
    await bot.client.click(
        "forge_run:0",
        "incident check 1 --id INC-1",
        user="U0OPS",
        channel="C0INC",
        message_ts=steps[0].response["ts"],
        thread_ts=ts,
    )
    await bot.client.slash(
        "incident update Rolled back the search deploy", user="U0ALICE", channel="C0INC"
    )
    await bot.client.slash("incident severity p0", user="U0OPS", channel="C0INC")
    await bot.settle()
    await until(
        lambda: (
            len(thread(bot.slack, ts)) >= 6 + 6 + 2
            and any("P1 → P0" in c.args["text"] for c in thread(bot.slack, ts))
            and any(
                "Rolled back the search deploy" in c.args["text"] for c in thread(bot.slack, ts)
            )
        ),
        what="the added steps and the posts (the update's post may come after the others)",
    )
    texts = [c.args["text"] for c in thread(bot.slack, ts)]
    assert any("step 7. Acknowledge" in t for t in texts)
    status = await bot.forge.dispatcher.run(
        Invocation("incident status", "U0OPS", "C0INC", source="cli"),
        actor=Actor("U0OPS", Role.OPERATOR, source="cli"),
    )
    assert status.result.data["done"] == 1 and status.result.data["steps"] == 12

    await bot.client.slash("incident resolve Reverted", user="U0OPS", channel="C0INC")
    await bot.settle()
    assert "has open steps" in private(bot)
    await bot.client.slash(
        "incident resolve Reverted --force 'tracked in the postmortem'",
        user="U0OPS",
        channel="C0INC",
    )
    await bot.settle()
    await until(
        lambda: "resolved after" in latest(bot.slack, "C0INC", ts), what="the resolved card"
    )
    await until(
        lambda: len(bot.slack.calls_to("files.completeUploadExternal")) == 2,
        what="the timeline picture and the report",
    )
    [drawn] = [f for f in bot.slack.files if f.filename == "INC-1-timeline.png"]
    assert drawn.thread_ts == ts
    shown = timeline_marks(drawn.content)
    [changed] = await events(bot, "severity")
    [resolved] = await events(bot, "resolved")
    assert shown[0][1] == "declared P1" and shown[-1] == (stamp(resolved["at"]), "resolved")
    assert any(
        at == stamp(changed["at"]) and text.startswith("Severity P1 → P0") for at, text in shown
    )
    report = await bot.forge.dispatcher.run(
        Invocation("incident report INC-1", "U0OPS", source="cli"),
        actor=Actor("U0OPS", Role.OPERATOR, source="cli"),
    )
    markdown = report.result.data["markdown"]
    assert (
        report.result.data["durations"]["acknowledge"]
        and report.result.data["durations"]["resolve"]
    )
    assert (
        "tracked in the postmortem" in markdown
        and "@U0ALICE" in markdown
        and "Severity P1 → P0" in markdown
    )
    assert "- [x] 1. Investigate (done by @U0OPS" in markdown and "| item done |" in markdown


async def test_state_survives_a_restart_and_two_processes_never_double(state_dsn, slack):
    """Declared from the terminal while no board runs; two forge processes start on the same store:
    one card, one checklist; the same Done click delivered to both records once."""
    settings = settings_for(state_dsn, slack.url)
    offline = Forge(settings)
    await offline.start()
    await offline.dispatcher.run(
        Invocation("incident declare P2 Slow exports", "U0OPS", "C0OPS", source="cli"),
        actor=Actor("U0OPS", Role.OPERATOR, source="cli"),
    )
    await offline.aclose()
    async with (
        empty_redis(URL),
        running_forge(settings, slack) as one,
        running_forge(settings, slack) as two,
    ):
        await until(
            lambda: (
                len(
                    [
                        c
                        for c in slack.calls_to("chat.postMessage")
                        if c.args.get("channel") == "C0INC" and not c.args.get("thread_ts")
                    ]
                )
                == 1
            ),
            what="one card",
        )
        ts = card(slack).response["ts"]
        await until(lambda: len(thread(slack, ts)) == 3, what="the P2 checklist")
        await asyncio.sleep(1.2)
        assert (
            len(thread(slack, ts)) == 3
            and len(
                [c for c in slack.calls_to("chat.postMessage") if c.args.get("channel") == "C0INC"]
            )
            == 4
        )
        first = thread(slack, ts)[0].response["ts"]
        await asyncio.gather(
            *(
                b.client.click(
                    "forge_run:0",
                    "incident check 1 --id INC-1",
                    user="U0OPS",
                    channel="C0INC",
                    message_ts=first,
                    thread_ts=ts,
                )
                for b in (one, two)
            )
        )
        await one.settle()
        await two.settle()
        assert len(await events(one, "item_done")) == 1


async def test_a_channel_per_incident(state_dsn, slack):
    """channel_per_incident: forge makes inc-1-…, invites the declarer, announces where declared."""
    settings = settings_for(state_dsn, slack.url, incidents={"channel_per_incident": True})
    async with empty_redis(URL), running_forge(settings, slack) as bot:
        await bot.client.slash("incident declare P1 Login fails", user="U0OPS", channel="C0OPS")
        await bot.settle()
        await until(lambda: slack.calls_to("conversations.create"), what="the channel")
        [created] = slack.calls_to("conversations.create")
        assert created.args["name"] == "inc-1-login-fails"
        new = created.response["channel"]["id"]
        await until(
            lambda: any(
                c.args.get("channel") == new and "INC-1" in c.args["text"]
                for c in slack.calls_to("chat.postMessage")
            ),
            what="the card in it",
        )
        assert "U0OPS" in slack.calls_to("conversations.invite")[0].args["users"]
        assert any(
            f"<#{new}>" in c.args["text"]
            for c in slack.calls_to("chat.postMessage")
            if c.args.get("channel") == "C0INC"
        )

"""Scheduled reports over signed requests: added by slash command, fired by the test's clock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime

import pytest

from bot.background.schedules import ReportScheduler
from bot.config.settings import Config
from tests.conftest import CONFIG, make_settings, running_forge
from tests.support.backup_fixtures import MovableClock
from tests.support.slack_flow import private

pytestmark = pytest.mark.integration
MORNING = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)  # a Tuesday


@pytest.fixture
def clock() -> MovableClock:
    """Tuesday 10 March 2026, 08:00 UTC, shared by every forge of the test."""
    return MovableClock(MORNING)


def settings_for(state_dsn: str, slack, config: Config = CONFIG):
    """Settings on the test's state store and Slack double."""
    return make_settings(config, forge_state_database_url=state_dsn, slack_api_url=slack.url)


@pytest.fixture
async def bots(state_dsn, slack, clock) -> AsyncIterator[list]:
    """Two forge replicas on one state store and one clock, each with its report scheduler."""
    async with AsyncExitStack() as stack:
        made = []
        for _ in range(2):
            bot = await stack.enter_async_context(
                running_forge(settings_for(state_dsn, slack), slack, clock=clock)
            )
            made.append((bot, ReportScheduler(bot.forge, bot.surface.outbox)))
        yield made


def posts(slack, channel: str = "C0OPS") -> list[str]:
    """Texts posted to a channel, oldest first."""
    return [
        c.args["text"] for c in slack.calls_to("chat.postMessage") if c.args["channel"] == channel
    ]


async def add(bot, text: str, user: str = "U0OPS") -> str:
    """`/forge schedule add …` in C0OPS; what forge answered, in the channel or privately."""
    bot.slack.clear()
    await bot.client.slash(f"schedule add {text}", user=user, channel="C0OPS")
    await bot.settle()
    return json.dumps(posts(bot.slack), ensure_ascii=False) + private(bot)


async def rows(bot) -> list:
    pool = await bot.forge.store.pool()
    return await pool.fetch("SELECT * FROM forge.schedules ORDER BY id")


async def tick_all(made) -> list[list[str]]:
    """Both replicas look at the clock at the same moment."""
    return sorted(await asyncio.gather(*(scheduler.tick() for _, scheduler in made)))


async def test_a_schedule_fires_once_per_slot_across_two_replicas(bots, clock, slack):
    """Added by slash command; nothing runs early; each hourly slot runs on exactly one replica."""
    bot = bots[0][0]
    said = await add(bot, '"approvals" --every 1h')
    assert "Schedule #1" in said and "every 1h" in said and "2026-03-10 09:00 UTC" in said
    slack.clear()
    assert await tick_all(bots) == [[], []]
    for hour in range(3):
        clock.shift(hours=1, seconds=1 if hour == 0 else 0)
        assert await tick_all(bots) == [[], ["ran 1"]]
        assert await tick_all(bots) == [[], []]
    reports = posts(slack)
    assert len(reports) == 3 and all(r.startswith("✅ approvals — ok") for r in reports)
    footers = json.dumps([c.args["blocks"] for c in slack.calls_to("chat.postMessage")])
    assert footers.count("Schedule #1 \\u00b7 every 1h") == 3
    pool = await bot.forge.store.pool()
    audited = await pool.fetch(
        "SELECT actor_id, source FROM forge.audit_log WHERE command = 'approvals'"
    )
    assert [tuple(r) for r in audited] == [("U0OPS", "schedule")] * 3


async def test_missed_slots_are_reported_then_the_schedule_goes_on(bots, clock, slack):
    """After three hours with no replica running, the channel hears of the two runs missed."""
    bot = bots[0][0]
    await add(bot, '"approvals" --every 1h')
    clock.shift(hours=1, seconds=1)
    assert await tick_all(bots) == [[], ["ran 1"]]
    slack.clear()
    clock.shift(hours=3, minutes=10)
    assert await tick_all(bots) == [[], ["ran 1"]]
    [missed, report] = posts(slack)
    assert "Schedule #1" in missed and "missed 2 runs up to 2026-03-10 12:00 UTC" in missed
    assert report.startswith("✅ approvals — ok")


async def test_on_change_posts_only_when_the_status_moves(bots, clock, slack):
    """`--on-change`: the first run posts, a same-status run is quiet, a P1 makes it post again."""
    bot, scheduler = bots[0]
    await add(bot, '"incident list" --every 1h --on-change')
    slack.clear()
    clock.shift(hours=1, seconds=1)
    assert await scheduler.tick() == ["ran 1"]
    clock.shift(hours=1)
    assert await scheduler.tick() == ["unchanged 1"]
    await bot.forge.incidents.declare(
        title="Checkout down",
        severity="P1",
        commander="U0OPS",
        channel="C0INC",
        description="",
        component="api",
        items=[],
    )
    clock.shift(hours=1)
    assert await scheduler.tick() == ["ran 1"]
    [first, second] = posts(slack)
    assert first.startswith("✅ incident list — ok") and second.startswith("🔴 incident list")


async def test_schedule_run_runs_now_and_list_shows_it(bots, clock, slack):
    """`schedule run 1` asks the scheduler, which runs it at its next look even off the clock."""
    bot, scheduler = bots[0]
    await add(bot, '"approvals" --at 09:00 --days mon-fri --channel C0REPORTS')
    slack.clear()
    await bot.client.slash("schedule run 1", user="U0OPS", channel="C0OPS")
    await bot.settle()
    assert "runs within seconds" in posts(slack)[0]
    assert await tick_all(bots) == [[], ["ran 1"]]
    assert posts(slack, "C0REPORTS")[0].startswith("✅ approvals — ok")
    slack.clear()
    await bot.client.slash("schedule list", user="U0VIEW", channel="C0OPS")
    await bot.settle()
    [listing] = slack.calls_to("chat.postMessage")
    shown = json.dumps(listing.args["blocks"], ensure_ascii=False)
    assert "at 09:00 UTC on mon-fri" in shown and "ok" in shown and "approvals" in shown


@pytest.mark.parametrize(
    ("text", "user", "why"),
    [
        ('"dlq clear email" --every 1h', "U0OPS", "Only read commands may be scheduled"),
        ('"backup create" --every 1h', "U0ADMIN", "Only read commands may be scheduled"),
        ('"schedule list" --every 1h', "U0OPS", "cannot run schedule commands"),
        ('"audit" --every 1h', "U0OPS", "needs the admin role, so you cannot schedule it"),
        ('"approvals" --every 30s', "U0OPS", "whole minutes, 1m at least and 7d at most"),
        ('"approvals" --every soon', "U0OPS", "expected a duration such as 30s"),
        ('"approvals" --every 1h --at 09:00', "U0OPS", "Give either --every"),
        ('"approvals" --every 1h --days mon-fri', "U0OPS", "--days goes with --at"),
        ('"approvals" --at 25:00', "U0OPS", "expected a UTC time such as 09:00"),
        ('"approvals" --every 1h', "U0VIEW", "needs the operator role"),
    ],
)
async def test_bad_schedules_are_refused_and_nothing_is_stored(bots, text, user, why):
    """Writes, destructive commands, schedules of schedules, others' roles and bad clocks."""
    bot = bots[0][0]
    assert why in await add(bot, text, user=user)
    assert await rows(bot) == []


async def test_a_creator_who_lost_the_role_pauses_the_schedule(state_dsn, slack, clock):
    """Scheduled by an admin; after the admin role is taken away, the next run pauses it, says so
    in the channel, and no later slot runs."""
    demoted = Config.model_validate({**CONFIG.model_dump(), "roles": {"viewer": ["*"]}})
    async with running_forge(settings_for(state_dsn, slack), slack, clock=clock) as before:
        said = await add(before, '"audit --limit 5" --every 1h', user="U0ADMIN")
        assert "Schedule #1" in said
    slack.clear()
    async with running_forge(settings_for(state_dsn, slack, demoted), slack, clock=clock) as after:
        scheduler = ReportScheduler(after.forge, after.surface.outbox)
        clock.shift(hours=1, seconds=1)
        assert await scheduler.tick() == ["paused 1"]
        [notice] = posts(slack)
        assert "Schedule #1" in notice and "is paused" in notice and "admin role" in notice
        clock.shift(hours=1)
        assert await scheduler.tick() == []
        [row] = await rows(after)
        assert row["paused_at"] is not None and row["last_run_at"] is None

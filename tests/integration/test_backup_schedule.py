"""`backup schedule`, the nightly job: one of two forges runs each slot, posts, reports misses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.background.backups import BackupScheduler
from bot.core.forge import Forge
from bot.slack.outbox import Outbox, close_client, make_client
from tests.support.backup_fixtures import (
    MovableClock,
    backup_settings,
    cf,  # noqa: F401  (the fixture)
    run,
)

pytestmark = pytest.mark.integration
NIGHT = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> MovableClock:
    """The night of 10 March, 01:00 UTC, shared by both processes."""
    return MovableClock(NIGHT)


@pytest.fixture
async def pair(state_dsn, cf, slack, tmp_path: Path, clock) -> AsyncIterator[list[BackupScheduler]]:
    """Two forge processes on one state store, each with a scheduler posting to the Slack double."""
    settings = backup_settings(state_dsn, cf, tmp_path, slack_api_url=slack.url)
    made = []
    for _ in range(2):
        forge, client = Forge(settings, clock=clock), make_client(settings)
        await forge.start()
        made.append((forge, client, BackupScheduler(forge, Outbox(client, 5))))
    yield [m[2] for m in made]
    for forge, client, _ in made:
        await forge.aclose()
        await close_client(client)


def alerts(slack) -> list[str]:
    return [
        c.args["text"]
        for c in slack.calls_to("chat.postMessage")
        if c.args["channel"] == "C0ALERTS"
    ]


async def backups(forge: Forge) -> list:
    pool = await forge.store.pool()
    return await pool.fetch("SELECT file, kind, actor_id FROM forge.backups ORDER BY created_at")


async def test_one_of_two_processes_runs_the_slot_and_posts_to_alerts(pair, clock, slack):
    """Set at 01:00 for 02:00: none runs early; at 02:00:20 both tick at once, just one backs up."""
    forge = pair[0].forge
    shown = await run(forge, "backup schedule 02:00")
    assert (
        shown.result.ok
        and "Nightly backup at 02:00 UTC; next run 2026-03-10 02:00 UTC" in shown.result.summary
    )
    assert await asyncio.gather(*(s.tick() for s in pair)) == [[], []]
    clock.shift(hours=1, seconds=20)
    done = await asyncio.gather(*(s.tick() for s in pair))
    assert sorted(done) == [[], ["ran"]]
    [row] = await backups(forge)
    assert (row["kind"], row["actor_id"]) == ("scheduled", "forge-scheduler")
    [posted] = alerts(slack)
    assert posted.startswith("✅ backup create — ok") and row["file"] in posted
    clock.shift(minutes=5)
    assert await asyncio.gather(*(s.tick() for s in pair)) == [[], []]
    clock.shift(days=1)
    assert sorted(await asyncio.gather(*(s.tick() for s in pair))) == [[], ["ran"]]
    assert len(await backups(forge)) == 2 and len(alerts(slack)) == 2
    pool = await forge.store.pool()
    events = await pool.fetch(
        "SELECT actor_id, source, event FROM forge.audit_log WHERE command = 'backup create'"
    )
    assert {(e["actor_id"], e["source"]) for e in events} == {("forge-scheduler", "schedule")}


async def test_a_failed_nightly_backup_is_posted(state_dsn, slack, tmp_path, clock):
    """DATABASE_URL names a database that is gone: the alerts channel gets a 🔴 line."""
    settings = backup_settings(
        state_dsn, state_dsn.rsplit("/", 1)[0] + "/gone_forge_db", tmp_path, slack_api_url=slack.url
    )
    forge, client = Forge(settings, clock=clock), make_client(settings)
    await forge.start()
    try:
        await run(forge, "backup schedule 01:00")
        clock.shift(days=1)
        assert await BackupScheduler(forge, Outbox(client, 5)).tick() == ["ran"]
    finally:
        await forge.aclose()
        await close_client(client)
    [posted] = alerts(slack)
    assert posted.startswith("🔴 Nightly backup failed: postgres:") and "gone_forge_db" in posted


async def test_a_missed_run_is_reported_once(pair, clock, slack):
    """Due 30 h ago, no backup since (forge was down at 02:00): one report, not one per tick."""
    forge = pair[0].forge
    await run(forge, "backup schedule 23:00")
    clock.shift(hours=30)
    assert sorted(await asyncio.gather(*(s.tick() for s in pair))) == [[], ["missed"]]
    [posted] = alerts(slack)
    assert "Missed nightly backup: none in the last 26 h (there is none)" in posted
    assert await pair[1].tick() == [] and len(alerts(slack)) == 1
    shown = (await run(forge, "backup schedule", user="U0OPS")).result
    assert shown.status.value == "critical" and "Missed" in shown.summary
    await run(forge, "backup create")
    clock.shift(hours=27)
    assert await pair[0].tick() == ["missed"] and len(alerts(slack)) == 2


async def test_schedule_off_and_validation(pair, clock):
    forge = pair[0].forge
    await run(forge, "backup schedule 02:00")
    off = (await run(forge, "backup schedule off")).result
    assert off.status.value == "warning" and "No nightly backup is scheduled" in off.summary
    clock.shift(hours=1, seconds=5)
    assert await pair[0].tick() == [] and await backups(forge) == []
    bad = await run(forge, "backup schedule 2am")
    assert bad.kind == "failed" and "is not a time" in bad.message
    viewer = await run(forge, "backup schedule 03:00", user="U0VIEW")
    assert viewer.kind == "denied"

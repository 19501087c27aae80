"""Every `db` read answers while a table is held under ACCESS EXCLUSIVE by another session (or
while an ALTER TABLE waits for it): the locked table is named with the pid, sized from the catalog.
Times are printed (`pytest -s`) for the report."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from bot.core.result import Status
from tests.support.db_fixtures import clientforge, cluster, forge, run  # noqa: F401
from tests.support.pg_cluster import unavailable_reason

_why = unavailable_reason()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(_why is not None, reason=f"PostgreSQL cluster: {_why}"),
]
READS = [
    "db slow",
    "db top",
    "db indexes",
    "db size",
    "db tables",
    "db connections",
    "db locks",
    "db long",
    "db bloat",
    "db extensions",
    "db cache-hit",
]
SIZED = ("db size", "db tables", "db indexes", "db bloat")


@pytest.fixture
async def holder(clientforge):
    """A session that holds ACCESS EXCLUSIVE on `contacts` in an open transaction: its pid."""
    conn = await asyncpg.connect(clientforge)
    tx = conn.transaction()
    await tx.start()
    await conn.execute("LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE")
    yield conn.get_server_pid()
    await tx.rollback()
    await conn.close()


async def answers(forge, text: str):  # type: ignore[no-untyped-def]
    """The command's result and its duration in ms; it must answer, not fail."""
    started = time.perf_counter()
    outcome = await run(forge, text)
    took = (time.perf_counter() - started) * 1000
    assert outcome.kind == "result", (text, outcome.message)
    return outcome.result, took


async def test_every_read_answers_under_access_exclusive(forge, holder):
    """LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE, held: each read answers well within its
    statement timeout; size, tables, indexes and bloat name `contacts` as locked by that pid, with
    a size estimated from relpages, and warn."""
    timings = {}
    for text in READS:
        result, timings[text] = await answers(forge, text)
        assert timings[text] < 4000, (text, timings[text])
        if text in SIZED:
            [entry] = result.data["locked"]
            assert entry["table"] == "public.contacts" and entry["pid"] == holder
            assert entry["granted"] and entry["size_estimate"] > 1 << 20
            assert result.status is not Status.OK and f"pid {holder}" in result.text
    tables = (await answers(forge, "db tables"))[0]
    [contacts] = [t for t in tables.data["tables"] if t["name"] == "public.contacts"]
    assert contacts["locked_by"] == holder and contacts["total"] > 1 << 20
    assert any("≈" in cell for row in tables.tables[0].rows for cell in row)
    print("\nunder ACCESS EXCLUSIVE: " + ", ".join(f"{t} {ms:.0f} ms" for t, ms in timings.items()))


async def test_a_queued_alter_table_is_reported_not_waited_behind(forge, clientforge):
    """A transaction reads `accounts`; an ALTER TABLE queues for ACCESS EXCLUSIVE behind it, and
    every new reader of `accounts` would queue behind the ALTER: `db tables` still answers and
    names the waiting pid and whom it waits behind."""
    reader, alter = await asyncpg.connect(clientforge), await asyncpg.connect(clientforge)
    tx = reader.transaction()
    await tx.start()
    await reader.fetchval("SELECT count(*) FROM accounts")
    altering = asyncio.create_task(alter.execute("ALTER TABLE accounts ADD COLUMN note text"))
    try:
        while not await _waits(clientforge, alter.get_server_pid()):
            await asyncio.sleep(0.05)
        result, took = await answers(forge, "db tables")
        [entry] = result.data["locked"]
        assert entry["table"] == "public.accounts" and entry["pid"] == alter.get_server_pid()
        assert not entry["granted"] and entry["blockers"] == [reader.get_server_pid()]
        assert f"waiting behind {reader.get_server_pid()}" in result.text and took < 4000
        size = (await answers(forge, "db size"))[0]
        assert size.data["locked"][0]["table"] == "public.accounts"
    finally:
        await tx.rollback()
        await asyncio.wait_for(altering, 10)
        await alter.execute("ALTER TABLE accounts DROP COLUMN note")
        await reader.close()
        await alter.close()


async def _waits(dsn: str, pid: int) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        return bool(
            await conn.fetchval(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
            )
        )
    finally:
        await conn.close()


async def test_without_locks_nothing_is_marked(forge):
    """No lock: no table is marked, sizes are exact (no ≈), the status is unchanged by locks."""
    for text in SIZED:
        result, _ = await answers(forge, text)
        assert result.data["locked"] == [] and "≈" not in str(result.tables)

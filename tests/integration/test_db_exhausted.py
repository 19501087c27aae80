"""ClientForge has taken every connection a throwaway cluster allows non-superusers: forge's warm
diagnostic connection still answers `db connections|long|locks|cancel`; `forge check`'s reserve
advice names the role that can take them all. Times are printed (`pytest -s`) for the report."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from bot.core.context import Actor
from bot.core.dispatch import Invocation
from bot.core.forge import Forge
from bot.core.registry import Role
from commands.db.reserve import reservation
from tests.support.db_fixtures import db_settings, run
from tests.support.pg_cluster import throwaway_cluster, unavailable_reason

_why = unavailable_reason()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(_why is not None, reason=f"PostgreSQL cluster: {_why}"),
]
MAX_CONNECTIONS = 12  # 9 for non-superusers beside superuser_reserved_connections = 3
SETUP = """
CREATE ROLE cf_app LOGIN;
CREATE ROLE forge_ops LOGIN;
GRANT pg_read_all_stats, pg_signal_backend TO forge_ops;
"""
SCHEMA = """
CREATE TABLE accounts (id int PRIMARY KEY, name text);
INSERT INTO accounts SELECT i, 'a' || i FROM generate_series(1, 10) i;
GRANT ALL ON accounts TO cf_app, forge_ops;
"""


@pytest.fixture(scope="module")
def small_cluster() -> Iterator[str]:
    """A cluster with max_connections 12, roles cf_app and forge_ops, and database `cf`."""
    with throwaway_cluster({"max_connections": str(MAX_CONNECTIONS)}) as dsn:

        async def prepare() -> None:
            admin = await asyncpg.connect(dsn)
            await admin.execute(SETUP)
            await admin.execute("CREATE DATABASE cf")
            await admin.close()
            conn = await asyncpg.connect(dsn.rsplit("/", 1)[0] + "/cf")
            await conn.execute(SCHEMA)
            await conn.close()

        asyncio.run(prepare())
        yield dsn.rsplit("/", 1)[0]


@pytest.fixture
async def warm_forge(small_cluster: str, state_dsn: str) -> AsyncIterator[Forge]:
    """forge as `serve` starts it, on `cf` as forge_ops, once its diagnostic connection is open."""
    url = small_cluster.replace("postgres@", "forge_ops@") + "/cf"
    forge = Forge(db_settings(url, state_dsn))
    await forge.start(keep_trying=True)
    deadline = time.monotonic() + 10
    while not await _diagnostic_open(small_cluster):
        assert time.monotonic() < deadline, "the diagnostic connection never opened"
        await asyncio.sleep(0.1)
    yield forge
    await forge.aclose()


async def _diagnostic_open(cluster: str) -> bool:
    admin = await asyncpg.connect(cluster + "/postgres")
    try:
        return bool(
            await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'forge-diagnostic'"
            )
        )
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def exhausted(cluster: str) -> AsyncIterator[list[asyncpg.Connection]]:
    """cf_app connections to `cf` until the server refuses more: ClientForge has them all."""
    conns: list[asyncpg.Connection] = []
    try:
        while True:
            try:
                conns.append(await asyncpg.connect(cluster.replace("postgres@", "cf_app@") + "/cf"))
            except asyncpg.TooManyConnectionsError:
                break
        yield conns
    finally:
        for conn in conns:
            conn.terminate()


async def timed(forge: Forge, text: str):  # type: ignore[no-untyped-def]
    """The command's result and its duration in ms; it must answer."""
    started = time.perf_counter()
    outcome = await run(forge, text)
    assert outcome.kind == "result", (text, outcome.message)
    return outcome.result, (time.perf_counter() - started) * 1000


async def test_diagnostics_answer_when_connections_are_exhausted(warm_forge, small_cluster):
    """All 9 non-superuser slots taken (8 by cf_app, 1 by forge's diagnostic connection): a new
    connection is refused and `db size` (the pool) fails, but `db connections`, `db long`,
    `db locks` and `db cancel` answer on the diagnostic connection, and the cancel works."""
    async with exhausted(small_cluster) as conns:
        sleeper, holder, waiter = conns[0], conns[1], conns[2]
        sleeping = asyncio.create_task(sleeper.execute("SELECT pg_sleep(120)"))
        holder_tx = holder.transaction()
        await holder_tx.start()
        await holder.execute("UPDATE accounts SET name = 'held' WHERE id = 1")
        blocked = asyncio.create_task(waiter.execute("UPDATE accounts SET name = 'w' WHERE id = 1"))
        await asyncio.sleep(1.2)
        assert len(conns) == MAX_CONNECTIONS - 3 - 1
        pool_read = await run(warm_forge, "db size")
        assert pool_read.kind == "failed" and "diagnostic connection" in pool_read.message

        timings = {}
        connections, timings["db connections"] = await timed(warm_forge, "db connections")
        assert connections.data["used"] == MAX_CONNECTIONS - 3
        long, timings["db long"] = await timed(warm_forge, "db long --min 1s")
        assert sleeper.get_server_pid() in [s["pid"] for s in long.data["sessions"]]
        locks, timings["db locks"] = await timed(warm_forge, "db locks")
        assert locks.data["roots"] == [holder.get_server_pid()]
        cancel, timings["db cancel"] = await timed(
            warm_forge, f"db cancel {sleeper.get_server_pid()}"
        )
        assert cancel.data["stopped"] is True
        with pytest.raises(asyncpg.QueryCanceledError):
            await asyncio.wait_for(sleeping, 5)
        await holder_tx.rollback()
        await asyncio.wait_for(blocked, 5)
    print("\nunder exhaustion: " + ", ".join(f"{t} {ms:.0f} ms" for t, ms in timings.items()))


async def test_a_lost_diagnostic_connection_reopens_while_there_is_room(warm_forge, small_cluster):
    """The diagnostic connection is killed: with a slot free, the next `db long` opens a new one;
    with none free, it says plainly that PostgreSQL is full and where to reserve room."""
    admin = await asyncpg.connect(small_cluster + "/postgres")
    kill = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1"
    await admin.execute(kill, "forge-diagnostic")
    await asyncio.sleep(0.3)
    await timed(warm_forge, "db long")
    await admin.execute(kill, "forge-diagnostic")
    await admin.close()
    await asyncio.sleep(0.3)
    async with exhausted(small_cluster):
        refused = await run(warm_forge, "db long")
    assert refused.kind == "failed" and "forge check" in refused.message


async def test_reserve_advice_names_the_role_that_can_take_every_connection(
    warm_forge, small_cluster
):
    """cf_app has no CONNECTION LIMIT: not reserved, and the advice gives the statements; once
    cf_app is capped below what non-superusers get, it is reserved."""
    ctx = warm_forge.dispatcher.context(
        Actor("cli:test", Role.ADMIN, source="cli"), Invocation("check", "cli:test", source="cli")
    )
    reserved, said = await reservation(ctx)
    assert reserved is False and '"cf_app"' in said and "ALTER ROLE cf_app CONNECTION LIMIT" in said
    assert "pg_use_reserved_connections" in said and "superuser_reserved_connections" in said
    admin = await asyncpg.connect(small_cluster + "/postgres")
    await admin.execute("ALTER ROLE cf_app CONNECTION LIMIT 3")
    try:
        reserved, said = await reservation(ctx)
        assert reserved is True and said.startswith("ok"), said
    finally:
        await admin.execute("ALTER ROLE cf_app CONNECTION LIMIT -1")
        await admin.close()

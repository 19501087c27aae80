"""`db long|locks|connections|cancel|terminate` act on ClientForge's database only: real sessions
of another database on the same server are counted, never listed with a button, never signalled."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.conftest import running_forge
from tests.support.db_fixtures import clientforge, cluster, db_settings, dsn_in, forge, run  # noqa: F401
from tests.support.pg_cluster import unavailable_reason

_why = unavailable_reason()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(_why is not None, reason=f"PostgreSQL cluster: {_why}"),
]


@pytest.fixture
async def other(cluster) -> AsyncIterator[dict[str, int]]:
    """Another database on the ClientForge server, busy: a 60 s sleep, a session idle in a
    transaction for over a minute's worth of state, and an UPDATE waiting on its row lock."""
    name = f"other_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(cluster)
    await admin.execute(f'CREATE DATABASE "{name}"')
    conns = [await asyncpg.connect(dsn_in(cluster, name)) for _ in range(3)]
    sleeper, holder, waiter = conns
    await holder.execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
    tasks = [asyncio.create_task(sleeper.execute("SELECT pg_sleep(60)"))]
    await holder.execute("BEGIN; UPDATE t SET id = 1 WHERE id = 1")
    tasks.append(asyncio.create_task(waiter.execute("UPDATE t SET id = 1 WHERE id = 1")))
    await asyncio.sleep(1.5)
    yield {"sleeper": sleeper.get_server_pid(), "holder": holder.get_server_pid()}
    for task in tasks:
        task.cancel()
    for conn in conns:
        conn.terminate()
    await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    await admin.close()
    for task in tasks:
        with contextlib.suppress(BaseException):
            await task


@pytest.fixture
async def mine(clientforge) -> AsyncIterator[int]:
    """A 60 s statement in ClientForge's own database: its pid."""
    conn = await asyncpg.connect(clientforge)
    task = asyncio.create_task(conn.execute("SELECT pg_sleep(60)"))
    await asyncio.sleep(1.2)
    yield conn.get_server_pid()
    task.cancel()
    conn.terminate()
    with contextlib.suppress(BaseException):
        await task


async def test_reads_count_other_databases_but_list_and_offer_only_ours(forge, other, mine):
    """`db long` lists our sleeper with its Cancel button and only counts the other database's;
    `db connections` neither lists nor offers the other idle transaction; `db locks` shows no
    waiter of the other database."""
    long = (await run(forge, "db long --min 1s")).result
    pids = [s["pid"] for s in long.data["sessions"]]
    assert mine in pids and other["sleeper"] not in pids and other["holder"] not in pids
    assert long.data["other_databases"] >= 2 and "other databases" in long.text
    offered = [a.command for a in long.actions]
    assert any(c.startswith(f"db cancel {mine} --query-start ") for c in offered)
    assert not any(str(other["sleeper"]) in c for c in offered)

    connections = (await run(forge, "db connections")).result
    assert other["holder"] not in [s["pid"] for s in connections.data["idle_in_transaction"]]
    assert not any(str(other["holder"]) in a.command for a in connections.actions)
    assert int(dict(connections.fields)["In other databases"]) >= 3

    locks = (await run(forge, "db locks")).result
    assert locks.data["blocked"] == [] and not locks.actions


async def test_cancel_and_terminate_refuse_a_pid_of_another_database(forge, other):
    """`db cancel` and `db terminate --dry-run` of the other database's sessions are refused,
    saying why; the other statement keeps running."""
    for text in (f"db cancel {other['sleeper']}", f"db terminate {other['holder']} --dry-run"):
        refused = await run(forge, text)
        assert refused.kind == "failed" and "another database" in refused.message, text
    long = (await run(forge, "db long --min 1s")).result
    assert long.data["other_databases"] >= 2  # still running: nothing was signalled


async def test_over_slack_no_button_names_another_databases_pid(
    clientforge, state_dsn, slack, other
):
    """Through Slack: `db long` posts no button for the other database's pid, and `db cancel` of
    it is answered privately with the refusal."""
    settings = db_settings(clientforge, state_dsn, slack_api_url=slack.url)
    async with running_forge(settings, slack) as bot:
        await bot.client.slash("db long --min 1s", user="U0OPS", channel="C0OPS")
        await bot.settle()
        posted = json.dumps([c.args for c in slack.calls_to("chat.postMessage")])
        assert f"db cancel {other['sleeper']}" not in posted
        await bot.client.slash(f"db cancel {other['sleeper']}", user="U0OPS", channel="C0OPS")
        await bot.settle()
        said = json.dumps(slack.responses + slack.ephemerals, ensure_ascii=False)
        assert "another database" in said

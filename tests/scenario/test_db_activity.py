"""Real sessions on a real PostgreSQL: a lock conflict, a long statement cancelled, a blocker
terminated and a table rewritten through the whole approval path over Slack HTTP, and maintenance
that gives up on a busy lock."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from bot.core.result import Status
from tests.conftest import running_forge
from tests.support.db_fixtures import clientforge, cluster, db_settings, forge, result_of, run  # noqa: F401
from tests.support.pg_cluster import unavailable_reason
from tests.support.slack_flow import click, confirm, open_dialog, private, rows

_why = unavailable_reason()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(_why is not None, reason=f"PostgreSQL cluster: {_why}"),
]


async def until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Poll an async predicate until it holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.05)


async def waiting(dsn: str, pid: int) -> bool:
    """True once the session waits for a lock."""
    conn = await asyncpg.connect(dsn)
    try:
        return (
            await conn.fetchval(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
            )
            is True
        )
    finally:
        await conn.close()


async def test_long_statement_is_listed_then_cancelled(forge, clientforge):
    """A 30 s pg_sleep shows in `db long --min 1s`; `db cancel` ends the statement (the client sees
    the cancel) and says so; an idle session cannot be cancelled and the refusal says to terminate
    it instead."""
    sleeper = await asyncpg.connect(clientforge)
    idle = await asyncpg.connect(clientforge)
    pid = sleeper.get_server_pid()
    sleeping = asyncio.create_task(sleeper.execute("SELECT pg_sleep(30)"))
    try:
        await asyncio.sleep(1.2)
        long = await result_of(forge, "db long --min 1s")
        assert long.status is Status.WARNING and pid in [s["pid"] for s in long.data["sessions"]]
        assert any(a.command.startswith(f"db cancel {pid} --query-start ") for a in long.actions)
        assert pid not in [
            s["pid"] for s in (await result_of(forge, "db long --min 10m")).data["sessions"]
        ]

        cancelled = await result_of(forge, f"db cancel {pid}")
        assert cancelled.data["stopped"] is True and "Cancelled the statement" in cancelled.summary
        with pytest.raises(asyncpg.QueryCanceledError):
            await asyncio.wait_for(sleeping, 5)
        refused = await run(forge, f"db cancel {idle.get_server_pid()}")
        assert refused.kind == "failed" and "is idle" in refused.message
        gone = await run(forge, "db cancel 2147483000")
        assert gone.kind == "failed" and "No PostgreSQL session has pid" in gone.message
    finally:
        sleeping.cancel()
        await sleeper.close()
        await idle.close()


async def test_locks_show_who_blocks_whom_and_busy_maintenance_gives_up(forge, clientforge):
    """A session idle in a transaction holds a row lock another UPDATE waits for: `db locks` names
    the waiter, the lock it wants and the root blocker; a VACUUM that cannot get its lock in 5 s
    gives up without queueing."""
    holder, waiter = await asyncpg.connect(clientforge), await asyncpg.connect(clientforge)
    holder_tx = holder.transaction()
    await holder_tx.start()
    await holder.execute("UPDATE accounts SET name = name WHERE id = 1")
    await holder.execute("LOCK TABLE accounts IN SHARE MODE")
    blocked = asyncio.create_task(
        waiter.execute("UPDATE accounts SET name = 'renamed' WHERE id = 1")
    )
    try:
        await until(lambda: waiting(clientforge, waiter.get_server_pid()))
        locks = await result_of(forge, "db locks")
        [entry] = locks.data["blocked"]
        assert entry["pid"] == waiter.get_server_pid() and entry["blockers"] == [
            holder.get_server_pid()
        ]
        assert (
            locks.data["roots"] == [holder.get_server_pid()]
            and "RowExclusiveLock on accounts" in entry["wants"]
        )
        assert "idle in a transaction" in locks.text and "db terminate" in locks.text

        busy = await result_of(forge, "db vacuum accounts --full --dry-run")
        assert "ACCESS EXCLUSIVE" in busy.summary
        plain = await result_of(forge, "db vacuum accounts")
        assert plain.status is Status.WARNING and "not granted within 5 s" in plain.summary
        assert not blocked.done()
    finally:
        await holder_tx.rollback()
        await asyncio.wait_for(blocked, 5)
        await holder.close()
        await waiter.close()


@pytest.fixture
async def bot(clientforge, state_dsn, slack):
    """forge over HTTP on the ClientForge database, with the Slack double."""
    async with running_forge(
        db_settings(clientforge, state_dsn, slack_api_url=slack.url), slack
    ) as harness:
        yield harness


async def test_terminate_through_the_approval_path_ends_only_that_session(bot, clientforge):
    """`db terminate <pid>` of the blocking session: the dialog's dry run describes it, the wrong
    pid typed and self-approval are refused with the session alive; U0LEAD's approval ends it, the
    waiter proceeds, once."""
    holder, waiter = await asyncpg.connect(clientforge), await asyncpg.connect(clientforge)
    holder_tx = holder.transaction()
    await holder_tx.start()
    await holder.execute("UPDATE accounts SET name = name WHERE id = 2")
    blocked = asyncio.create_task(waiter.execute("UPDATE accounts SET name = 'freed' WHERE id = 2"))
    pid = holder.get_server_pid()
    try:
        await until(lambda: waiting(clientforge, waiter.get_server_pid()))
        view = await open_dialog(bot, f"db terminate {pid}")
        said = json.dumps(view["blocks"], ensure_ascii=False)
        assert (
            f"Would end session {pid}" in said
            and "rolled back" in said
            and f"Type {pid} to confirm" in said
        )
        wrong = await confirm(bot, view, str(pid + 1))
        assert wrong.json()["response_action"] == "errors" and await rows(bot) == []

        await confirm(bot, view, str(pid))
        [request] = await rows(bot)
        card_ts = bot.slack.calls_to("chat.postMessage")[0].response["ts"]
        await click(bot, request["id"], "U0OPS", card_ts)
        assert "can't approve your own request" in private(bot) and not blocked.done()

        await click(bot, request["id"], "U0LEAD", card_ts)
        assert (await rows(bot))[0]["status"] == "succeeded"
        await asyncio.wait_for(blocked, 5)  # the waiter got its lock
        assert holder.is_closed() or not await _alive(clientforge, pid)
        thread = [
            c.args["text"]
            for c in bot.slack.calls_to("chat.postMessage")
            if c.args.get("thread_ts") == card_ts
        ]
        assert len(thread) == 1 and f"Ended session {pid}" in thread[0]
        await click(bot, request["id"], "U0LEAD", card_ts)
        assert "already approved" in private(bot)
    finally:
        blocked.cancel()
        await holder.close(timeout=1)
        await waiter.close()


async def _alive(dsn: str, pid: int) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        return bool(
            await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)
        )
    finally:
        await conn.close()


async def test_vacuum_full_needs_approval_and_gives_space_back(bot, clientforge):
    """`db vacuum swollen --full` is destructive: the dialog says which lock and for how long; after
    a second person's approval the table is rewritten and smaller. Plain `db vacuum` needs no
    approval."""
    conn = await asyncpg.connect(clientforge)
    await conn.execute(
        "CREATE TABLE swollen (id int, payload text) WITH (autovacuum_enabled = false);"
        "INSERT INTO swollen SELECT i, repeat('x', 200) FROM generate_series(1, 30000) i;"
        "DELETE FROM swollen WHERE id % 10 <> 0"
    )
    before = await conn.fetchval("SELECT pg_total_relation_size('swollen')")
    try:
        view = await open_dialog(bot, "db vacuum swollen --full")
        said = json.dumps(view["blocks"], ensure_ascii=False)
        assert "ACCESS EXCLUSIVE" in said and "Type swollen to confirm" in said
        await confirm(bot, view, "swollen")
        [request] = await rows(bot)
        card_ts = bot.slack.calls_to("chat.postMessage")[0].response["ts"]
        assert await conn.fetchval("SELECT pg_total_relation_size('swollen')") == before
        await click(bot, request["id"], "U0LEAD", card_ts)
        assert (await rows(bot))[0]["status"] == "succeeded"
        assert await conn.fetchval("SELECT pg_total_relation_size('swollen')") < before / 4

        await bot.client.slash("db vacuum swollen", user="U0OPS", channel="C0OPS")
        await bot.settle()
        assert len(await rows(bot)) == 1  # no approval asked for a plain VACUUM
        assert any("VACUUM of swollen done" in (c.args.get("text") or "") for c in bot.slack.calls)
    finally:
        await conn.execute("DROP TABLE swollen")
        await conn.close()


async def test_terminate_refuses_forge_itself_and_server_processes(forge, clientforge):
    """forge's own connection and PostgreSQL's background processes are never signalled."""
    conn = await asyncpg.connect(clientforge)
    checkpointer = await conn.fetchval(
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'"
    )
    await conn.close()
    refused = await run(forge, f"db terminate {checkpointer} --dry-run")
    assert refused.kind == "failed" and "not a client session" in refused.message
    from_cli = await run(forge, f"db terminate {checkpointer}")
    assert (
        from_cli.kind == "approval"
    )  # the CLI then refuses it: destructive commands are requested in Slack

"""What you approve is what runs: the world moves between request and approval, for real, and the
approved command acts on the scope its dry run showed or refuses as stale, touching nothing.

Real Node BullMQ jobs failing between the request and the approval, a dump replaced by another (with
its catalog row, and without), a PostgreSQL pid recycled by a
new session, a session that ran a new statement, a table dropped and created again under the same
name (each over Slack HTTP, through the whole approval path but the statement's race)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from bot.config.settings import Config
from bot.core.context import Actor
from bot.core.dispatch import Invocation
from bot.core.registry import Role
from bot.core.scope import StaleScope
from commands.db.signals import frozen, session, signal
from commands.queues import bullmq as bullmq_redis
from tests.conftest import empty_redis, make_settings, running_forge
from tests.fakes.bullmq_node import NodeBullMQ, node_unavailable_reason
from tests.support.backup_fixtures import backup_settings, cf, table_counts  # noqa: F401
from tests.support.backup_fixtures import run as run_as_slack
from tests.support.db_fixtures import clientforge, cluster, db_settings, forge  # noqa: F401
from tests.support.pg_cluster import unavailable_reason
from tests.support.services import redis_url
from tests.support.slack_flow import click, confirm, open_dialog, private, rows

_why = unavailable_reason()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(_why is not None, reason=f"PostgreSQL cluster: {_why}"),
]
NEXT_PID = Path("/proc/sys/kernel/ns_last_pid")
QUEUES_URL = redis_url(5)
NODE = NodeBullMQ(5, QUEUES_URL)
QUEUES_CONFIG = Config.model_validate(
    {
        "roles": {"viewer": ["*"], "operator": ["U0OPS"], "admin": ["U0ADMIN"]},
        "approvers": ["U0LEAD"],
        "channels": {"destructive": ["C0OPS"]},
        "queues": ["email"],
    }
)


@pytest.fixture
async def bot(clientforge, state_dsn, slack):
    """forge over HTTP on the ClientForge database, with the Slack double."""
    async with running_forge(
        db_settings(clientforge, state_dsn, slack_api_url=slack.url), slack
    ) as harness:
        yield harness


async def request(bot, text: str, typed: str):  # type: ignore[no-untyped-def]
    """Ask for a destructive command in C0OPS as U0OPS; the stored request and its card's ts."""
    view = await open_dialog(bot, text)
    await confirm(bot, view, typed)
    [row] = await rows(bot)
    return row, bot.slack.calls_to("chat.postMessage")[0].response["ts"]


async def approve(bot, row, card_ts: str):  # type: ignore[no-untyped-def]
    """U0LEAD approves; the request as stored afterwards, the card's last text and its outcome."""
    await click(bot, row["id"], "U0LEAD", card_ts)
    [after] = await rows(bot)
    edits = [c for c in bot.slack.calls_to("chat.update") if c.args.get("ts") == card_ts]
    card = edits[-1].args
    return after, card["text"], json.dumps(card["blocks"], ensure_ascii=False)


async def audit_outcome(bot) -> tuple[str, dict]:  # type: ignore[no-untyped-def]
    """The outcome audit row of the approved run: its outcome and detail."""
    [row] = await rows(
        bot, "SELECT outcome, detail FROM forge.audit_log WHERE event = 'outcome' ORDER BY id"
    )
    return row["outcome"], json.loads(row["detail"])


async def alive(dsn: str, pid: int) -> bool:
    """True while some session has this pid."""
    conn = await asyncpg.connect(dsn)
    try:
        return bool(
            await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)
        )
    finally:
        await conn.close()


async def session_with_pid(dsn: str, pid: int, tries: int = 200) -> asyncpg.Connection:
    """A new session that gets an ended session's pid: the kernel's last pid is set just below it,
    so the postmaster's next fork reuses it (other processes may fork first: try again)."""
    if not NEXT_PID.exists() or not NEXT_PID.stat().st_mode & 0o222:
        pytest.skip("cannot set the kernel's next pid to recycle one")
    for _ in range(tries):
        try:
            NEXT_PID.write_text(str(pid - 1))
        except OSError as exc:
            pytest.skip(f"cannot set the kernel's next pid: {exc}")
        conn = await asyncpg.connect(dsn)
        if conn.get_server_pid() == pid:
            return conn
        await conn.close()
    pytest.fail(f"pid {pid} was never recycled in {tries} tries")


async def test_terminate_refuses_a_recycled_pid(bot, clientforge):
    """The session of the request ends, and a new session gets its pid: the approved terminate
    finds another backend_start, signals nothing, and the card says stale — request again."""
    first = await asyncpg.connect(clientforge)
    pid = first.get_server_pid()
    row, card_ts = await request(bot, f"db terminate {pid}", str(pid))
    assert row["scope"] is not None and json.loads(row["scope"])["pid"] == pid
    await first.close()
    for _ in range(100):
        if not await alive(clientforge, pid):
            break
        await asyncio.sleep(0.05)
    newcomer = await session_with_pid(clientforge, pid)
    try:
        after, card, blocks = await approve(bot, row, card_ts)
        assert after["status"] == "stale" and "another session" in after["outcome"]
        assert "stale — request again" in card and "another session" in blocks
        assert await newcomer.fetchval("SELECT 1") == 1  # still connected, never signalled
        assert await audit_outcome(bot) == (
            "stale",
            {"approval_id": str(row["id"]), "scope": "stale"},
        )
    finally:
        await newcomer.close()


async def test_terminate_of_the_same_session_is_done_on_the_approved_scope(bot, clientforge):
    """The session the dry run showed is still there (it ran other statements meanwhile, which a
    terminate does not care about): ended, and the card says done on the approved scope."""
    target = await asyncpg.connect(clientforge)
    pid = target.get_server_pid()
    try:
        row, card_ts = await request(bot, f"db terminate {pid}", str(pid))
        await target.execute("SELECT pg_sleep(0.01)")
        after, card, _ = await approve(bot, row, card_ts)
        assert after["status"] == "succeeded" and "done on the approved scope" in card
        assert not await alive(clientforge, pid)
        assert await audit_outcome(bot) == (
            "succeeded",
            {"approval_id": str(row["id"]), "scope": "approved"},
        )
    finally:
        await target.close(timeout=1)


async def test_terminate_of_a_session_that_ended_is_stale(bot, clientforge):
    """The session ended before the approval: nothing to signal, and the card says why."""
    target = await asyncpg.connect(clientforge)
    pid = target.get_server_pid()
    row, card_ts = await request(bot, f"db terminate {pid}", str(pid))
    await target.close()
    for _ in range(100):
        if not await alive(clientforge, pid):
            break
        await asyncio.sleep(0.05)
    after, card, _ = await approve(bot, row, card_ts)
    assert after["status"] == "stale" and "has ended since the request" in after["outcome"]
    assert "stale — request again" in card


async def test_cancel_never_hits_a_statement_newer_than_the_one_seen(forge, clientforge):
    """`db cancel` signals only the statement it saw: the session finished it and started another
    between the look and the signal, so the new one runs on and the refusal names the change."""
    busy = await asyncpg.connect(clientforge)
    pid = busy.get_server_pid()
    first = asyncio.create_task(busy.execute("SELECT pg_sleep(0.5)"))
    ctx = forge.dispatcher.context(
        Actor("U0OPS", Role.OPERATOR, source="cli"), Invocation("db cancel", "U0OPS", "C0OPS")
    )
    try:
        await asyncio.sleep(0.2)
        seen = frozen(await session(ctx, pid), statement=True)
        await first
        second = asyncio.create_task(busy.execute("SELECT pg_sleep(1.5)"))
        await asyncio.sleep(0.2)
        with pytest.raises(StaleScope, match="another statement"):
            await signal(ctx, "cancel", seen)
        await asyncio.wait_for(second, 5)  # finished on its own: never cancelled
        running = asyncio.create_task(busy.execute("SELECT pg_sleep(30)"))
        await asyncio.sleep(0.2)
        assert await signal(ctx, "cancel", frozen(await session(ctx, pid), statement=True))
        with pytest.raises(asyncpg.QueryCanceledError):
            await asyncio.wait_for(running, 5)
    finally:
        await busy.close()


def cancel_buttons(bot) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The Cancel buttons of the last posted message: label → the command it runs."""
    blocks = bot.slack.calls_to("chat.postMessage")[-1].args["blocks"]
    return {
        e["text"]["text"]: e["value"]
        for b in blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e["text"]["text"].startswith("Cancel pid")
    }


async def test_cancel_button_of_db_long_never_hits_a_newer_statement(bot, clientforge):
    """`db long` shows a statement with a Cancel button; it finishes and the session starts another
    before the click: the click cancels nothing and says so; the next look's button cancels it."""
    busy = await asyncpg.connect(clientforge)
    pid = busy.get_server_pid()
    first = asyncio.create_task(busy.execute("SELECT pg_sleep(1.6)"))
    try:
        await asyncio.sleep(1.2)
        await bot.client.slash("db long --min 1s", user="U0OPS", channel="C0OPS")
        await bot.slack.wait_for("chat.postMessage")
        await bot.settle()
        button = cancel_buttons(bot)[f"Cancel pid {pid}"]
        assert button.startswith(f"db cancel {pid} --query-start ")
        await first
        second = asyncio.create_task(busy.execute("SELECT pg_sleep(30)"))
        await asyncio.sleep(1.2)
        await bot.client.click("forge_run:0", button, user="U0OPS", channel="C0OPS")
        await bot.settle()
        assert "running another statement" in private(bot) and not second.done()

        bot.slack.clear()
        await bot.client.slash("db long --min 1s", user="U0OPS", channel="C0OPS")
        await bot.slack.wait_for("chat.postMessage")
        await bot.settle()
        fresh = cancel_buttons(bot)[f"Cancel pid {pid}"]
        await bot.client.click("forge_run:0", fresh, user="U0OPS", channel="C0OPS")
        await bot.settle()
        with pytest.raises(asyncpg.QueryCanceledError):
            await asyncio.wait_for(second, 5)
    finally:
        await busy.close(timeout=1)


async def test_vacuum_full_of_a_table_dropped_and_created_again_is_stale(bot, clientforge):
    """The table the dry run sized is dropped and a new one of the same name created: its oid
    differs, so it is not rewritten; a table merely dropped is stale too."""
    conn = await asyncpg.connect(clientforge)
    await conn.execute("CREATE TABLE reborn (id int)")
    try:
        row, card_ts = await request(bot, "db vacuum reborn --full", "reborn")
        oid = json.loads(row["scope"])["oid"]
        await conn.execute("DROP TABLE reborn; CREATE TABLE reborn (id int, note text)")
        relfile = await conn.fetchval("SELECT pg_relation_filenode('reborn')")
        after, card, _ = await approve(bot, row, card_ts)
        assert after["status"] == "stale" and "dropped and created again" in after["outcome"]
        assert str(oid) in after["outcome"] and "stale — request again" in card
        assert await conn.fetchval("SELECT pg_relation_filenode('reborn')") == relfile  # unwritten
    finally:
        await conn.execute("DROP TABLE IF EXISTS reborn")
        await conn.close()


async def test_vacuum_full_of_a_dropped_table_is_stale(bot, clientforge):
    """The table is gone by the approval: stale, and the card says it was dropped."""
    conn = await asyncpg.connect(clientforge)
    await conn.execute("CREATE TABLE doomed (id int)")
    try:
        row, card_ts = await request(bot, "db vacuum doomed --full", "doomed")
        await conn.execute("DROP TABLE doomed")
        after, card, _ = await approve(bot, row, card_ts)
        assert after["status"] == "stale" and "was dropped since the request" in after["outcome"]
        assert "stale — request again" in card
    finally:
        with contextlib.suppress(Exception):
            await conn.execute("DROP TABLE IF EXISTS doomed")
        await conn.close()


@pytest.fixture
async def queues_bot(state_dsn, slack):  # type: ignore[no-untyped-def]
    """forge over HTTP on an empty Redis db of its own, for real Node BullMQ queues."""
    if (why := node_unavailable_reason()) is not None:
        pytest.skip(f"Node BullMQ harness: {why}")
    async with empty_redis(QUEUES_URL) as client:
        bullmq_redis._discovered.pop(QUEUES_URL, None)  # queue discovery is cached per Redis URL
        settings = make_settings(
            QUEUES_CONFIG,
            redis_url=QUEUES_URL,
            forge_state_database_url=state_dsn,
            slack_api_url=slack.url,
        )
        async with running_forge(settings, slack) as harness:
            harness.rdb = client
            yield harness


async def failed_ids(rdb: aioredis.Redis) -> set[str]:
    """The ids in email's failed set."""
    return set(await rdb.zrange("bull:email:failed", 0, -1))


async def test_dlq_clear_removes_only_what_the_preview_counted(queues_bot):
    """30 jobs failed when the dry run counted them; 25 more fail (real Node BullMQ workers)
    before the approval. The approved clear removes the 30 only, archived; the 25 stay, and the
    result and card say so: 25 jobs failed after the request; not touched."""
    bot = queues_bot
    await NODE.fail("email", 30, attempts=3)
    counted = await failed_ids(bot.rdb)
    row, card_ts = await request(bot, "dlq clear email", "email")
    scope = json.loads(row["scope"])
    assert scope["jobs"] == 30 and scope["newest_id"] in counted
    assert "Newest failed: " in row["preview"]  # the approver sees the frozen bound
    await asyncio.sleep(0.01)  # the newcomers fail in a later millisecond than the request
    await NODE.fail("email", 25, attempts=3)
    later = await failed_ids(bot.rdb) - counted
    assert len(later) == 25

    after, card, blocks = await approve(bot, row, card_ts)
    assert after["status"] == "succeeded" and "done on the approved scope" in card
    assert "25 jobs failed after the request; not touched." in after["outcome"]
    assert "25 jobs failed after the request; not touched." in blocks
    assert await failed_ids(bot.rdb) == later
    assert await rows(bot, "SELECT count(*) AS n FROM forge.job_archive") == [(30,)]
    assert await audit_outcome(bot) == (
        "succeeded",
        {"approval_id": str(row["id"]), "scope": "approved"},
    )
    thread = [
        c.args["text"]
        for c in bot.slack.calls_to("chat.postMessage")
        if c.args.get("thread_ts") == card_ts
    ]
    assert len(thread) == 1 and "Removed 30 DLQ jobs" in thread[0]


async def test_dlq_clear_of_an_empty_preview_removes_nothing_that_failed_later(queues_bot):
    """The dry run counted no DLQ job; 5 fail before the approval: none is removed."""
    bot = queues_bot
    await NODE.fail("email", 1, attempts=1)  # the queue exists, but nothing in it is a DLQ job
    row, card_ts = await request(bot, "dlq clear email", "email")
    assert json.loads(row["scope"])["newest_id"] is None
    await NODE.fail("email", 5, attempts=3)
    after, card, _ = await approve(bot, row, card_ts)
    assert after["status"] == "succeeded" and "5 jobs failed after the request" in after["outcome"]
    assert len(await failed_ids(bot.rdb)) == 6


@pytest.fixture
async def backup_bot(state_dsn, slack, cf, tmp_path: Path):  # type: ignore[no-untyped-def]
    """forge over HTTP on a ClientForge-shaped database, dumps in a temporary directory."""
    async with running_forge(
        backup_settings(state_dsn, cf, tmp_path, slack_api_url=slack.url), slack
    ) as harness:
        yield harness


async def admin_request(bot, text: str, typed: str):  # type: ignore[no-untyped-def]
    """Ask for an admin's destructive command in C0OPS as U0ADMIN; the request and its card."""
    view = await open_dialog(bot, text, user="U0ADMIN")
    await confirm(bot, view, typed, user="U0ADMIN")
    [row] = await rows(bot)
    return row, bot.slack.calls_to("chat.postMessage")[0].response["ts"]


@pytest.mark.parametrize("catalogued", [True, False], ids=["catalog-updated", "file-only"])
async def test_backup_restore_of_a_dump_changed_since_the_request_is_stale(
    backup_bot, cf, tmp_path, catalogued
):
    """After the request the dump's file is overwritten with another dump's bytes (and, in one
    case, its catalog row's checksum updated to match, so it would pass every other check): the
    approved restore sees another SHA-256, takes no safety dump and restores nothing."""
    bot = backup_bot
    dump = (await run_as_slack(bot.forge, "backup create")).result.data["file"]
    row, card_ts = await admin_request(bot, f"backup restore --file {dump}", dump)
    approved_sha = json.loads(row["scope"])["sha256"]
    pool = await bot.forge.store.pool()
    assert approved_sha == await pool.fetchval(
        "SELECT sha256 FROM forge.backups WHERE file = $1", dump
    )
    conn = await asyncpg.connect(cf)
    await conn.execute("DELETE FROM contacts WHERE id > 1500")
    await conn.close()
    other = (await run_as_slack(bot.forge, "backup create")).result.data["file"]
    folder = tmp_path / "backups" / "database"
    (folder / dump).write_bytes((folder / other).read_bytes())
    if catalogued:
        new_sha = await pool.fetchval("SELECT sha256 FROM forge.backups WHERE file = $1", other)
        await pool.execute("UPDATE forge.backups SET sha256 = $2 WHERE file = $1", dump, new_sha)
    before = await table_counts(cf)
    dumps = await pool.fetchval("SELECT count(*) FROM forge.backups")

    after, card, blocks = await approve(bot, row, card_ts)
    assert after["status"] == "stale" and "changed since the request" in after["outcome"]
    assert approved_sha[:12] in after["outcome"] and "stale — request again" in card
    assert await table_counts(cf) == before
    assert await pool.fetchval("SELECT count(*) FROM forge.backups") == dumps  # no safety dump
    assert await audit_outcome(bot) == ("stale", {"approval_id": str(row["id"]), "scope": "stale"})

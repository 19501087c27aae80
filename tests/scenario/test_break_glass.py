"""Break-glass from the terminal: `forge run --break-glass` while Slack is down, for real.

The console script runs as a subprocess against real PostgreSQL and Redis (failed jobs made by
Node BullMQ); Slack is the double, down while the command runs and up once `forge serve` starts,
whose courier then delivers the queued notice, once per channel.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import asyncpg
import pytest

from bot.cli.break_glass import unix_user
from tests.conftest import empty_redis
from tests.fakes.bullmq_node import NodeBullMQ, node_unavailable_reason
from tests.fakes.slack_double import SlackDouble
from tests.support.db_fixtures import clientforge, cluster  # noqa: F401
from tests.support.pg_cluster import unavailable_reason
from tests.support.replicas import FORGE, Replica, base_env, free_port, write_config
from tests.support.services import redis_url

_why = node_unavailable_reason()
_cluster_why = unavailable_reason()
pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
REDIS = redis_url(5)
REASON = "Slack is down and the email DLQ blocks the workers (INC-42)"
CHANNELS = {"incidents": "C0INCIDENTS", "destructive": ["C0OPS", "C0INCIDENTS"]}


def config(folder: Path, users: list[str] | None) -> Path:
    """forge.yml with the break-glass users (None: the key left out) and the two channels."""
    extra: dict = {"channels": CHANNELS, "replicas": {"lease_seconds": 2}}
    if users is not None:
        extra["break_glass"] = {"users": users}
    return write_config(folder, **extra)


def env_for(state_dsn: str, slack_url: str, path: Path) -> dict[str, str]:
    """The console script's environment: the test's Redis database and Slack at `slack_url`."""
    return {**base_env(state_dsn, slack_url, path), "REDIS_URL": REDIS}


async def forge_run(env: dict[str, str], *argv: str, typed: str = "") -> tuple[int, str, str]:
    """`forge run …` as a subprocess, `typed` on its stdin; exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        FORGE,
        "run",
        *argv,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(typed.encode()), 120)
    return process.returncode or 0, out.decode(), err.decode()


async def fetch(dsn: str, sql: str) -> list[asyncpg.Record]:
    """Rows of the state store."""
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


async def break_glass_rows(dsn: str) -> list[asyncpg.Record]:
    """The `break_glass` audit rows, oldest first."""
    return await fetch(
        dsn,
        "SELECT outcome, actor_id, command, detail FROM forge.audit_log "
        "WHERE event = 'break_glass' ORDER BY id",
    )


async def failed(node: NodeBullMQ) -> int:
    """The email queue's failed count, as Node BullMQ reads it."""
    return (await node.counts("email"))["counts"]["failed"]


async def test_refused_without_reason_or_without_being_listed(state_dsn, tmp_path):
    """No --reason, no break_glass.users, or a Unix user not listed: exit 2, saying why, and
    nothing runs; the refusal of an unlisted user is audited."""
    slack_down = f"http://127.0.0.1:{free_port()}/api/"
    allowed = env_for(state_dsn, slack_down, config(tmp_path, [unix_user()]))
    text = "dlq clear email"
    code, _, err = await forge_run(allowed, "--break-glass", "--yes", text)
    assert code == 2 and "--reason" in err
    code, _, err = await forge_run(allowed, "--reason", REASON, "--yes", text)
    assert code == 2 and "--break-glass" in err
    code, _, err = await forge_run(
        allowed, "--break-glass", "--reason", REASON, "--as", "U0X", text
    )
    assert code == 2 and "never --as" in err
    (tmp_path / "off").mkdir()
    off = env_for(state_dsn, slack_down, config(tmp_path / "off", None))
    code, _, err = await forge_run(off, "--break-glass", "--reason", REASON, "--yes", text)
    assert code == 2 and "break_glass.users" in err and "off" in err
    others = env_for(state_dsn, slack_down, config(tmp_path, ["someone-else"]))
    code, _, err = await forge_run(others, "--break-glass", "--reason", REASON, "--yes", text)
    assert code == 2 and f"Unix user {unix_user()!r} is not listed" in err
    rows = await break_glass_rows(state_dsn)
    assert [r["outcome"] for r in rows] == ["refused", "refused"]
    assert json.loads(rows[-1]["detail"])["unix_user"] == unix_user()
    assert not await fetch(state_dsn, "SELECT 1 FROM forge.break_glass_notices")
    assert not await fetch(state_dsn, "SELECT 1 FROM forge.archive_batches")


@pytest.mark.skipif(_why is not None, reason=f"Node BullMQ harness: {_why}")
async def test_break_glass_while_slack_is_down_then_serve_delivers_the_notice_once(
    state_dsn, tmp_path
):
    """Slack down: the preview shows, a wrong typed target runs nothing, the right one clears the
    DLQ (archived first) with audit rows naming the reason and the Unix user; the notice waits
    in the state store until a `forge serve` posts it to both channels, once each."""
    port = free_port()
    slack_url = f"http://127.0.0.1:{port}/api/"
    path = config(tmp_path, [unix_user()])
    env = env_for(state_dsn, slack_url, path)
    async with empty_redis(REDIS):
        node = NodeBullMQ(5, REDIS)
        await node.fail("email", 40, attempts=3)
        argv = ("--break-glass", "--reason", REASON, "dlq clear email")
        code, out, err = await forge_run(env, *argv, typed="emails\n")
        assert code == 1 and "did not match" in err and "Would" in out
        assert await failed(node) == 40
        code, out, err = await forge_run(env, *argv, typed="email\n")
        assert code == 0, err
        assert "Would" in out and "Type email to confirm" in err and "queued" in err
        assert await failed(node) == 0
        archived = await fetch(state_dsn, "SELECT count(*) AS n FROM forge.job_archive")
        assert archived[0]["n"] == 40
        rows = await break_glass_rows(state_dsn)
        assert [r["outcome"] for r in rows] == ["confirm_mismatch", "started", "succeeded"]
        detail = json.loads(rows[-1]["detail"])
        assert detail["reason"] == REASON and detail["unix_user"] == unix_user()
        assert rows[-1]["actor_id"] == f"cli:{unix_user()}" and rows[-1]["command"] == "dlq clear"
        queued = await fetch(state_dsn, "SELECT channel_id, sent_at FROM forge.break_glass_notices")
        assert sorted(r["channel_id"] for r in queued) == ["C0INCIDENTS", "C0OPS"]
        assert all(r["sent_at"] is None for r in queued)
        async with SlackDouble(port=port) as slack:
            serve = Replica("serve", {**env, "SLACK_API_URL": slack.url}, tmp_path)
            await serve.start()
            try:
                await until_posted(slack, timeout=60)
                await serve.stop()
                await serve.start()  # a restart must not post it again
                await asyncio.sleep(12)
            finally:
                await serve.stop(signal.SIGKILL)
            posts = {c: notices(slack, c) for c in ("C0OPS", "C0INCIDENTS")}
    assert [len(p) for p in posts.values()] == [1, 1]
    shown = json.dumps(posts["C0OPS"][0], ensure_ascii=False)
    assert "Break-glass" in shown and "dlq clear email" in shown and unix_user() in shown
    assert "INC-42" in shown
    sent = await fetch(state_dsn, "SELECT sent_at FROM forge.break_glass_notices")
    assert all(r["sent_at"] is not None for r in sent)


@pytest.mark.skipif(_why is not None, reason=f"Node BullMQ harness: {_why}")
async def test_break_glass_posts_at_once_when_slack_answers(state_dsn, tmp_path):
    """With Slack up, `--yes` skips the typed target and the notice is posted at once."""
    async with SlackDouble() as slack, empty_redis(REDIS):
        env = env_for(state_dsn, slack.url, config(tmp_path, [unix_user()]))
        node = NodeBullMQ(5, REDIS)
        await node.fail("email", 5, attempts=3)
        code, _, err = await forge_run(
            env, "--break-glass", "--yes", "--reason", REASON, "dlq clear email"
        )
        assert code == 0, err
        assert "Type" not in err and await failed(node) == 0
        assert [len(notices(slack, c)) for c in ("C0OPS", "C0INCIDENTS")] == [1, 1]
    sent = await fetch(state_dsn, "SELECT sent_at FROM forge.break_glass_notices")
    assert len(sent) == 2 and all(r["sent_at"] is not None for r in sent)


def notices(slack: SlackDouble, channel: str) -> list[dict]:
    """The break-glass notices posted in a channel."""
    return [m for m in slack.messages(channel) if "Break-glass" in m.get("text", "")]


async def until_posted(slack: SlackDouble, timeout: float) -> None:
    """Until both channels hold a notice."""
    deadline = time.monotonic() + timeout
    while not all(notices(slack, c) for c in ("C0OPS", "C0INCIDENTS")):
        assert time.monotonic() < deadline, "the queued notice was not delivered"
        await asyncio.sleep(0.2)


@pytest.mark.skipif(_cluster_why is not None, reason=f"PostgreSQL cluster: {_cluster_why}")
async def test_break_glass_runs_on_the_scope_its_dry_run_showed(state_dsn, tmp_path, clientforge):
    """The table the break-glass dry run sized is dropped and created again before the typed
    confirmation: the run acts on the scope that dry run showed, so it is stale and rewrites
    nothing, and the audit row says stale."""
    slack_down = f"http://127.0.0.1:{free_port()}/api/"
    env = {
        **env_for(state_dsn, slack_down, config(tmp_path, [unix_user()])),
        "DATABASE_URL": clientforge,
    }
    conn = await asyncpg.connect(clientforge)
    await conn.execute("CREATE TABLE reborn (id int)")
    try:
        process = await asyncio.create_subprocess_exec(
            FORGE,
            "run",
            "--break-glass",
            "--reason",
            REASON,
            "db vacuum reborn --full",
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stderr is not None
        asked = await asyncio.wait_for(process.stderr.readuntil(b"to confirm: "), 60)
        assert b"Type reborn" in asked
        await conn.execute("DROP TABLE reborn; CREATE TABLE reborn (id int, note text)")
        relfile = await conn.fetchval("SELECT pg_relation_filenode('reborn')")
        out, err = await asyncio.wait_for(process.communicate(b"reborn\n"), 120)
        assert process.returncode == 1, err
        assert "Stale" in out.decode() and "dropped and created again" in out.decode()
        assert await conn.fetchval("SELECT pg_relation_filenode('reborn')") == relfile
    finally:
        await conn.execute("DROP TABLE IF EXISTS reborn")
        await conn.close()
    rows = await break_glass_rows(state_dsn)
    assert [r["outcome"] for r in rows] == ["started", "stale"]

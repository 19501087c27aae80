"""`forge playground --demo` as a real process tree: refusals, reset, no orphan, no leftovers."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis

from bot.demo.monitoring import binaries
from tests.conftest import PG_ADMIN, dsn_for, empty_redis
from tests.scenario.test_playground import free_port
from tests.support.demo_process import (
    DEMO_REDIS,
    THRESHOLD,
    children,
    demo_database_exists,
    demo_env,
    output,
    run_forge,
    start_demo,
    stop,
    wait_gone,
    wait_up,
)

pytestmark = pytest.mark.integration


async def drop_demo_database() -> None:
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        for name in ("forge_demo_crm", "forge_demo_state"):
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def demo_redis() -> AsyncIterator[aioredis.Redis]:
    """The demo's Redis database and PostgreSQL database, absent before and after the test."""
    await drop_demo_database()
    async with empty_redis(DEMO_REDIS) as client:
        yield client
    await drop_demo_database()


async def wait_for(check, seconds: float = 60) -> None:  # type: ignore[no-untyped-def]
    """Poll an async predicate until it holds."""
    async with asyncio.timeout(seconds):
        while not await check():
            await asyncio.sleep(0.2)


async def test_a_foreign_key_in_the_demo_redis_database_is_refused(tmp_path, state_dsn, demo_redis):
    """Someone's key in db 15: exit 2 with the key named, nothing written or created."""
    await demo_redis.set("session:42", "a real user's session")
    code, said = await run_forge(tmp_path, demo_env(state_dsn, free_port()), "playground", "--demo")
    assert code == 2 and "holds keys that are not the demo's, e.g. session:42" in said
    assert await demo_redis.keys("*") == ["session:42"]
    assert not await demo_database_exists() and not (tmp_path / ".forge-demo").exists()


async def test_production_is_refused(tmp_path, state_dsn, demo_redis):
    """FORGE_ENVIRONMENT=production: exit 2, nothing created."""
    env = demo_env(state_dsn, free_port(), FORGE_ENVIRONMENT="production")
    code, said = await run_forge(tmp_path, env, "playground", "--demo")
    assert code == 2 and "never runs in production" in said
    assert await demo_redis.dbsize() == 0 and not await demo_database_exists()


async def test_a_database_the_demo_did_not_make_is_refused_and_kept(
    tmp_path, state_dsn, demo_redis
):
    """forge_demo_crm without the demo's mark: refused, and --demo-clean leaves it alone."""
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute('CREATE DATABASE "forge_demo_crm"')
    finally:
        await admin.close()
    env = demo_env(state_dsn, free_port())
    code, said = await run_forge(tmp_path, env, "playground", "--demo")
    assert code == 2 and "forge_demo_crm exists that the demo did not make" in said
    code, said = await run_forge(tmp_path, env, "playground", "--demo-clean")
    assert code == 0 and await demo_database_exists()


@pytest.mark.timeout(180)
async def test_the_workers_stop_with_the_playground_and_clean_leaves_nothing(
    tmp_path, state_dsn, demo_redis
):
    """SIGTERM, then SIGKILL of the playground: its child goes too; --demo-clean takes the rest
    (forge's state included: no FORGE_STATE_DATABASE_URL, so it is in forge_demo_state)."""
    for how in (signal.SIGTERM, signal.SIGKILL):
        port = free_port()
        process = await start_demo(tmp_path, demo_env(None, port))
        try:
            await wait_up(f"http://127.0.0.1:{port}", process, tmp_path)
            await wait_for(lambda: _has_jobs(demo_redis))
            spawned = children(
                process.pid
            )  # the demo's child; Prometheus, Alertmanager if installed
            assert len(spawned) == (3 if binaries() else 1), output(tmp_path)[-2000:]
        finally:
            os.kill(process.pid, how)
            await asyncio.wait_for(process.wait(), 30)
        for pid in spawned:
            assert await wait_gone(pid), f"{pid} outlived the playground's {how.name}"
    assert await demo_database_exists() and await demo_database_exists("forge_demo_state")
    assert await demo_redis.dbsize() > 0
    env = demo_env(None, free_port())
    code, said = await run_forge(tmp_path, env, "playground", "--demo-clean")
    assert code == 0, said
    assert await demo_redis.dbsize() == 0 and not (tmp_path / ".forge-demo").exists()
    assert not await demo_database_exists() and not await demo_database_exists("forge_demo_state")


async def _has_jobs(client: aioredis.Redis) -> bool:
    return await client.exists("bull:email:id") == 1


@pytest.mark.timeout(180)
async def test_reset_puts_the_demo_back_to_its_start(tmp_path, state_dsn, demo_redis):
    """The alert fires; Reset (same-origin JSON with the CSRF token) resolves it, starts over."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = await start_demo(tmp_path, demo_env(state_dsn, port))
    try:
        await wait_up(base, process, tmp_path)
        await wait_for(lambda: _alert_is(demo_redis, "firing"), 90)
        assert await demo_redis.zcard("bull:email:failed") >= THRESHOLD
        assert not await demo_redis.exists("forge-demo:outage")
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            await wait_for(lambda: _card_says(session, base, "FIRING"), 60)
            async with session.get(base + "/playground/session") as response:
                csrf = (await response.json())["csrf"]
            forged = await session.post(base + "/playground/demo/reset", json={})
            assert forged.status == 403 and await _alert_is(demo_redis, "firing")
            reset = await session.post(
                base + "/playground/demo/reset",
                json={},
                headers={"Origin": base, "X-Forge-CSRF": csrf},
            )
            assert reset.status == 200 and (await reset.json())["ok"]
            assert await demo_redis.get("forge-demo:alert") is None
            assert await demo_redis.exists("forge-demo:outage")
            await wait_for(lambda: _card_says(session, base, "RESOLVED"), 30)
        await wait_for(lambda: _alert_is(demo_redis, "firing"), 90)
        assert len(children(process.pid)) == (3 if binaries() else 1)
    finally:
        await stop(process)


async def _alert_is(client: aioredis.Redis, kind: str) -> bool:
    return (await client.get("forge-demo:alert") or "").startswith(kind)


async def _card_says(session: aiohttp.ClientSession, base: str, text: str) -> bool:
    url = base + "/playground/state?channel=C0ALERTS&user=U0OPS"
    async with session.get(url) as response:
        items = (await response.json())["items"]
    return any(text in item.get("text", "") for item in items)


@pytest.mark.timeout(180)
async def test_the_demo_crm_and_log_carry_the_findings(tmp_path, state_dsn, demo_redis):
    """db indexes, search zero-results and logs find the demo's planted problems; secrets masked."""
    port = free_port()
    process = await start_demo(tmp_path, demo_env(state_dsn, port))
    log = tmp_path / ".forge-demo" / "logs" / "backend.log"
    try:
        await wait_up(f"http://127.0.0.1:{port}", process, tmp_path)
        await wait_for(_holds(log, "sk_live_"))
        env = demo_env(
            state_dsn,
            port,
            DATABASE_URL=dsn_for("forge_demo_crm"),
            REDIS_URL=DEMO_REDIS,
            FORGE_LOG_DIR=str(log.parent),
        )
        _, indexes = await run_forge(tmp_path, env, "run", "db indexes")
        _, zero = await run_forge(tmp_path, env, "run", "search zero-results")
        _, logs = await run_forge(tmp_path, env, "run", "logs backend")
    finally:
        await stop(process)
    assert "1 missing, 1 duplicate" in indexes and "public.deals" in indexes
    assert "invoce 2024" in zero and "renewel" in zero
    assert "Stripe request with api_key=[redacted]" in logs
    assert "sk_live_" not in logs and "Sup3r-s3cret" not in logs
    assert "sk_live_" in log.read_text()


def _holds(path, text: str):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return path.exists() and text in path.read_text()

    return check


@pytest.mark.timeout(180)
async def test_retried_jobs_succeed_and_injected_failures_really_fail(
    tmp_path, state_dsn, demo_redis
):
    """`dlq retry email` empties the DLQ into a worker that now delivers, and the alert resolves;
    `queue inject-failure` jobs use up their attempts and land in the DLQ. No Prometheus on the
    PATH: the demo posts the notifications itself."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    bare = demo_env(state_dsn, port, PATH=str(Path(sys.executable).parent))
    process = await start_demo(tmp_path, bare)
    env = demo_env(state_dsn, port, DATABASE_URL=dsn_for("forge_demo_crm"), REDIS_URL=DEMO_REDIS)
    try:
        await wait_up(f"http://127.0.0.1:{port}", process, tmp_path)
        spawned = children(process.pid)
        assert len(spawned) == 1  # the child alone
        await wait_for(lambda: _alert_is(demo_redis, "firing"), 90)
        dead = await demo_redis.zrange("bull:email:failed", 0, -1)
        code, said = await run_forge(tmp_path, env, "run", "dlq retry email")
        assert code == 0, said
        await wait_for(lambda: _alert_is(demo_redis, "resolved"), 60)
        done = await demo_redis.zrange("bull:email:completed", 0, -1)
        assert set(dead) <= set(done) and children(process.pid) == spawned
        async with aiohttp.ClientSession() as session:
            await wait_for(lambda: _card_says(session, base, "RESOLVED"), 30)
        code, said = await run_forge(tmp_path, env, "run", "queue inject-failure embeddings 2")
        assert code == 0, said
        await wait_for(lambda: _failed_count(demo_redis, "embeddings", 2), 60)
    finally:
        await stop(process)
    for job_id in await demo_redis.zrange("bull:embeddings:failed", 0, -1):
        job = await demo_redis.hgetall(f"bull:embeddings:{job_id}")
        assert job["name"] == "test-failure" and job["atm"] == "5"
        assert job["failedReason"] == "This job is designed to fail for DLQ testing"


async def _failed_count(client: aioredis.Redis, queue: str, count: int) -> bool:
    return await client.zcard(f"bull:{queue}:failed") >= count

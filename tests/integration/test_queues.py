"""`queue health|pause|resume|inject-failure` on real Redis with jobs made by Python bullmq."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis
from bullmq import Queue, Worker

from bot.config.settings import Config
from bot.core.context import Actor, SystemClock
from bot.core.dispatch import Invocation, Outcome
from bot.core.forge import Forge
from bot.core.registry import Role
from bot.core.result import Status
from bot.slack.mrkdwn import mrkdwn
from commands.queues.bullmq import Counts, worker_queue
from commands.queues.queue import grade
from tests.conftest import empty_redis, make_settings
from tests.support.services import redis_url

pytestmark = pytest.mark.integration
URL = redis_url(14)
QUEUES = ["email", "data-sync", "embeddings", "file-processing", "notifications"]
CONFIG = {
    "roles": {"viewer": ["*"], "operator": ["U0OPS"], "admin": ["U0ADMIN"]},
    "approvers": ["U0LEAD"],
    "queues": QUEUES,
    "queue_aliases": {"ai-processing": "embeddings", "reporting": "data-sync"},
}


class ShiftedClock(SystemClock):
    """The real clock moved by a number of milliseconds."""

    def __init__(self, shift_ms: int = 0) -> None:
        self.shift_ms = shift_ms

    def now(self) -> datetime:
        """Now, shifted."""
        return datetime.fromtimestamp(datetime.now(UTC).timestamp() + self.shift_ms / 1000, UTC)


@pytest.fixture
async def rdb() -> AsyncIterator[aioredis.Redis]:
    """A dedicated Redis database, empty before and after the test."""
    async with empty_redis(URL) as client:
        yield client


async def start_forge(
    state_dsn: str, clock: SystemClock | None = None, redis_url: str = URL, **config: object
) -> Forge:
    """A started forge on the test database with the queue config (overridable)."""
    settings = make_settings(
        Config.model_validate({**CONFIG, **config}),
        redis_url=redis_url,
        forge_state_database_url=state_dsn,
    )
    forge = Forge(settings, clock=clock)
    await forge.start()
    return forge


@pytest.fixture
async def forge(state_dsn: str, rdb: aioredis.Redis) -> AsyncIterator[Forge]:
    """forge with the default queue configuration."""
    started = await start_forge(state_dsn)
    yield started
    await started.aclose()


async def run(forge: Forge, text: str, user: str = "U0OPS", role: Role = Role.OPERATOR) -> Outcome:
    """Run a command through the real dispatcher, as the CLI would."""
    return await forge.dispatcher.run(
        Invocation(text, user, "C0OPS", source="cli"), actor=Actor(user, role, source="cli")
    )


async def make_jobs(
    queue: str,
    attempts: list[int],
    *,
    fail: bool = True,
    name: str = "sync-account",
    data: dict | None = None,
) -> list[str]:
    """The one job factory: jobs with these attempts; Python bullmq fails/completes each try."""
    q = Queue(queue, {"connection": URL})
    state = "failed" if fail else "completed"
    before = (await q.getJobCounts(state))[state]
    jobs = await q.addBulk(
        [
            {
                "name": name,
                "data": {**(data or {}), "n": i},
                "opts": {"attempts": a, "removeOnComplete": False, "removeOnFail": False},
            }
            for i, a in enumerate(attempts)
        ]
    )

    async def process(job, token):
        if fail:
            raise RuntimeError(
                f"Email account not found for {job.id}\n    at EmailSyncWorker.process"
            )
        return "ok"

    worker = Worker(queue, process, {"connection": URL, "concurrency": 50})
    try:
        async with asyncio.timeout(60):
            while (await q.getJobCounts(state))[state] < before + len(jobs):
                await asyncio.sleep(0.05)
    finally:
        await worker.close(force=True)
        await q.close()
    return [str(j.id) for j in jobs]


def data_of(outcome: Outcome) -> dict:
    """The result's data, asserting the command produced a result."""
    assert outcome.kind == "result", outcome.message
    return outcome.result.data


def by_queue(outcome: Outcome) -> dict[str, dict]:
    """`queue health` rows by queue name."""
    return {q["name"]: q for q in data_of(outcome)["queues"]}


async def test_counts_equal_bullmqs_own_getjobcounts(forge, rdb):
    """Every count `queue health` reports equals the Python bullmq package's getJobCounts()."""
    await make_jobs("email", [1, 3, 3, 5])
    await make_jobs("email", [1, 1], fail=False)
    q = Queue("email", {"connection": URL})
    await q.addBulk(
        [
            {"name": "send-email", "data": {}, "opts": o}
            for o in ({}, {}, {"delay": 60000}, {"priority": 3}, {"priority": 1})
        ]
    )
    held, release = asyncio.Event(), asyncio.Event()

    async def hold(job, token):
        held.set()
        await release.wait()

    other = Queue("notifications", {"connection": URL})
    await other.add("send-notification", {}, {})
    await other.add("send-notification", {}, {})
    worker = Worker("notifications", hold, {"connection": URL, "concurrency": 1})
    await held.wait()
    outcome = await run(forge, "queue health")
    expected = {"email": await q.getJobCounts(), "notifications": await other.getJobCounts()}
    release.set()
    await worker.close()
    await q.close()
    await other.close()
    rows = by_queue(outcome)
    for name in expected:
        row = rows[name]
        assert {
            k: row[k]
            for k in ("waiting", "active", "delayed", "prioritized", "failed", "completed")
        } == {
            k: expected[name][k]
            for k in ("waiting", "active", "delayed", "prioritized", "failed", "completed")
        }
    assert rows["email"]["dlq"] == 3 and rows["notifications"]["active"] == 1


async def test_health_lists_configured_and_discovered_queues_worst_first(forge, rdb):
    """Billing queues found in Redis are reported; DLQ jobs warn and offer list/clear buttons;
    each unhealthy queue gets a Graph button."""
    await make_jobs("payment-retry", [1])
    await make_jobs("email", [3])
    q = Queue("data-sync", {"connection": URL})
    await q.addBulk([{"name": "sync-search-index", "data": {}, "opts": {}} for _ in range(12)])
    await q.close()
    from commands.queues import bullmq as bullmq_redis

    bullmq_redis._discovered.clear()
    outcome = await run(forge, "queue health")
    rows = by_queue(outcome)
    assert set(rows) == {*QUEUES, "payment-retry"}
    names = [q["name"] for q in data_of(outcome)["queues"]]
    assert names[0] == "data-sync" and rows["data-sync"]["status"] == "critical"
    assert "no worker" in " ".join(rows["data-sync"]["reasons"])
    assert rows["email"]["status"] == "warning" and rows["email"]["dlq"] == 1
    assert rows["payment-retry"]["failed"] == 1 and rows["payment-retry"]["dlq"] == 0
    assert outcome.result.status is Status.CRITICAL
    commands = [a.command for a in outcome.result.actions]
    assert "dlq list email" in commands and "dlq clear email" in commands
    graphs = [c for c in commands if c.startswith("queue graph")]
    assert graphs == ["queue graph data-sync", "queue graph email"], commands


def test_thresholds_map_to_statuses():
    """ClientForge's thresholds: waiting, lag, DLQ, paused, failed and stuck queues."""

    def status(lag: float | None = None, **kw: object) -> Status:
        return grade(Counts("q", **{"workers": 1, **kw}), lag, 3)[0]

    assert status() is Status.OK
    assert status(waiting=1001) is Status.WARNING and status(waiting=1000) is Status.OK
    assert status(waiting=5001) is Status.CRITICAL
    assert status(lag=301) is Status.WARNING and status(lag=299) is Status.OK
    assert status(dlq=1) is Status.WARNING and status(paused=True) is Status.WARNING
    assert status(failed=51) is Status.WARNING and status(failed=50) is Status.OK
    assert status(waiting=11, workers=0) is Status.CRITICAL
    assert status(waiting=11, workers=0, active=1) is Status.OK
    assert status(waiting=10, workers=0) is Status.OK
    assert status(waiting=11, workers=None) is Status.OK


async def test_lag_is_the_oldest_waiting_jobs_age(forge, rdb):
    """Lag comes from the tail of the wait list: the oldest job's creation timestamp."""
    q = Queue("email", {"connection": URL})
    await q.add(
        "send-email", {}, {"timestamp": int(datetime.now(UTC).timestamp() * 1000) - 600_000}
    )
    await q.add("send-email", {}, {})
    await q.close()
    row = by_queue(await run(forge, "queue health email"))["email"]
    assert 599 <= row["lag_s"] <= 660
    assert any("oldest waiting job" in r for r in row["reasons"])


async def test_aliases_resolve_and_say_so(forge, rdb):
    """The runbook's names lead to ClientForge's queues, with a note."""
    outcome = await run(forge, "queue health ai-processing")
    assert list(by_queue(outcome)) == ["embeddings"]
    assert "`ai-processing` is the runbook's name; ClientForge's queue is `embeddings`" in mrkdwn(
        outcome.result.text
    )


async def test_unknown_and_invalid_queues_are_refused(forge, rdb):
    """A queue neither configured nor in Redis, or an invalid name, is a one-line error."""
    unknown = await run(forge, "queue health invoice-generation")
    assert unknown.kind == "failed"
    assert "No queue `invoice-generation`" in mrkdwn(unknown.message)
    await make_jobs("invoice-generation", [1])
    assert list(by_queue(await run(forge, "queue health invoice-generation"))) == [
        "invoice-generation"
    ]
    for bad in ("Email", "email:dlq", "'*'", "'email; FLUSHALL'"):
        outcome = await run(forge, f"queue health {bad}")
        assert outcome.kind == "failed" and "is not a queue name" in outcome.message, bad


async def test_invalid_names_are_refused_without_touching_redis(state_dsn):
    """Validation comes first: with Redis unreachable, a bad name still gets the name error."""
    forge = await start_forge(state_dsn, redis_url="redis://127.0.0.1:9/0")
    try:
        for text in (
            "queue pause 'email; FLUSHALL'",
            "queue health bull:*",
            "dlq list 'a b'",
            "dlq clear 'email; FLUSHALL' --dry-run",
        ):
            outcome = await run(forge, text)
            assert outcome.kind == "failed" and "is not a queue name" in outcome.message, text
    finally:
        await forge.aclose()


async def test_pause_and_resume_round_trip(forge, rdb):
    """Pause moves waiting jobs to the paused list like Node BullMQ; resume returns them to wait."""
    q = Queue("email", {"connection": URL})
    await q.addBulk([{"name": "send-email", "data": {}, "opts": {}} for _ in range(3)])
    paused = await run(forge, "queue pause email")
    assert paused.kind == "result" and data_of(paused)["paused"] is True and await q.isPaused()
    assert await rdb.llen("bull:email:paused") == 3 and await rdb.llen("bull:email:wait") == 0
    row = by_queue(await run(forge, "queue health email"))["email"]
    assert row["paused"] is True and row["waiting"] == 3 and "paused" in row["reasons"]
    assert "already paused" in (await run(forge, "queue pause email")).result.summary
    resumed = await run(forge, "queue resume email")
    assert data_of(resumed)["paused"] is False and not await q.isPaused()
    assert await rdb.llen("bull:email:wait") == 3 and not await rdb.exists("bull:email:paused")
    assert "was not paused" in (await run(forge, "queue resume email")).result.summary
    await q.close()


async def test_pause_needs_the_operator_role(forge, rdb):
    """A viewer may look but not pause."""
    outcome = await run(forge, "queue pause email", user="U0VIEW", role=Role.VIEWER)
    assert outcome.kind == "denied" and not await rdb.exists("bull:email:meta")


async def test_inject_failure_adds_clientforges_test_jobs(forge, rdb):
    """n `test-failure` jobs in the script's data shape, attempts 5, exponential backoff 1 s."""
    outcome = await run(forge, "queue inject-failure embeddings 7")
    ids = data_of(outcome)["job_ids"]
    assert len(ids) == 7
    q = Queue("embeddings", {"connection": URL})
    jobs = [await q.getJob(i) for i in ids]
    assert {j.name for j in jobs} == {"test-failure"}
    assert jobs[0].opts["attempts"] == 5 and jobs[0].opts["backoff"] == {
        "type": "exponential",
        "delay": 1000,
    }
    data = jobs[3].data
    assert data["testId"].startswith("test-failure-") and data["testId"].endswith("-3")
    assert (
        data["shouldFail"] is True
        and data["failureType"] == "intentional-test"
        and data["injectedAt"]
    )
    assert (await q.getJobCounts("waiting"))["waiting"] == 7
    await q.close()
    assert (await run(forge, "queue inject-failure email")).result.data["job_ids"].__len__() == 5
    for bad in ("email 0", "email 101", "email many"):
        assert (await run(forge, f"queue inject-failure {bad}")).kind == "usage", bad


async def test_inject_failure_is_refused_in_production(state_dsn, rdb):
    """In production nothing is added."""
    forge = await start_forge(state_dsn, environment="production")
    try:
        outcome = await run(forge, "queue inject-failure email 3")
        assert outcome.kind == "failed" and "refused in production" in outcome.message
        assert await rdb.dbsize() == 0
    finally:
        await forge.aclose()


def test_worker_names_of_node_and_python_bullmq_are_recognised():
    """`bull:<base64(q)>`, `bull:<base64(q)>:w:<name>` (Node), `bull:<q>` (Python) map to q."""
    b64 = base64.b64encode(b"data-sync").decode()
    queues = ["email", "data-sync"]
    assert worker_queue(f"bull:{b64}", queues) == "data-sync"
    assert worker_queue(f"bull:{b64}:w:sync-1", queues) == "data-sync"
    assert (
        worker_queue("bull:email", queues) == "email"
        and worker_queue("bull:email:w:x", queues) == "email"
    )
    assert worker_queue("bull:" + base64.b64encode(b"other").decode(), queues) is None
    assert worker_queue("forge", queues) is None and worker_queue("bull:@@@", queues) is None


async def test_workers_are_counted_per_queue_on_this_database(forge, rdb):
    """Connections named like BullMQ workers count, on this database only."""
    b64 = base64.b64encode(b"email").decode()
    here = [
        aioredis.Redis.from_url(URL, client_name=n) for n in (f"bull:{b64}", f"bull:{b64}:w:w1")
    ]
    elsewhere = aioredis.Redis.from_url(URL.rsplit("/", 1)[0] + "/13", client_name=f"bull:{b64}")
    for client in [*here, elsewhere]:
        await client.ping()

    async def idle(job, token):
        return None

    worker = Worker("data-sync", idle, {"connection": URL})
    await asyncio.sleep(0.3)
    rows = by_queue(await run(forge, "queue health"))
    await worker.close()
    for client in [*here, elsewhere]:
        await client.aclose()
    assert (
        rows["email"]["workers"] == 2
        and rows["data-sync"]["workers"] >= 1
        and rows["embeddings"]["workers"] == 0
    )

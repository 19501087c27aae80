"""The DLQ count stays exact while it re-reads only what changed: removals, retries, re-failures,
equal scores, late-stamped failures, small sets, a flushed Redis; real Node BullMQ failures and
forge's own retry; and `queue health` under 100 ms at 200,000 failed jobs (figures with -s)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from bot.config.settings import Config
from bot.core.context import Actor
from bot.core.dispatch import Invocation
from bot.core.forge import Forge
from bot.core.registry import Role
from commands.queues.bullmq import dlq_count, full_dlq_count
from commands.queues.tally import BUCKET
from tests.conftest import make_settings
from tests.fakes.bullmq_node import NodeBullMQ, node_unavailable_reason
from tests.support.services import redis_url

pytestmark = pytest.mark.integration
URL = redis_url(4)
Q = "storm"
# n jobs from `first`: atm 3, but 1 for every tenth; scored `base` + i // per (equal scores)
BUILD = """
local q, first, n, base, per = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5]
for i = first, first + n - 1 do
  local atm = (i % 10 == 0) and 1 or 3
  redis.call('HSET', 'bull:' .. q .. ':' .. i, 'name', 'job', 'data', '{}', 'atm', atm)
  redis.call('ZADD', 'bull:' .. q .. ':failed', tonumber(base) + math.floor(i / tonumber(per)), i)
end
"""
_why = node_unavailable_reason()
needs_node = pytest.mark.skipif(_why is not None, reason=f"Node BullMQ harness: {_why}")


@pytest.fixture
async def rdb() -> AsyncIterator[aioredis.Redis]:
    """Redis db 4, empty before and after."""
    client = aioredis.Redis.from_url(URL, decode_responses=True)
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


@pytest.fixture
async def forge(state_dsn: str, rdb) -> AsyncIterator[Forge]:  # type: ignore[no-untyped-def]
    """forge on db 4 with the storm queue configured."""
    config = Config.model_validate({"roles": {"viewer": ["*"]}, "queues": [Q]})
    started = Forge(make_settings(config, redis_url=URL, forge_state_database_url=state_dsn))
    await started.start()
    yield started
    await started.aclose()


def ctx_of(forge: Forge):  # type: ignore[no-untyped-def]
    """A handler context."""
    return forge.dispatcher.context(
        Actor("U0VIEW", Role.VIEWER, source="cli"), Invocation("queue health", "U0VIEW")
    )


async def build(rdb, n: int, first: int = 0, base: int | None = None, per: int = 1) -> int:  # type: ignore[no-untyped-def]
    """n failed jobs written straight into BullMQ's layout; the base score used (ms)."""
    base = base if base is not None else int(time.time() * 1000) - 3_600_000
    for start in range(first, first + n, 10_000):
        await rdb.eval(BUILD, 0, Q, start, min(10_000, first + n - start), base, per)
    return base


async def exact(forge: Forge, queue: str = Q) -> int:
    """The incremental count, asserted equal to a count read from scratch."""
    ctx = ctx_of(forge)
    counted, truth = await dlq_count(ctx, queue, 3), await full_dlq_count(ctx, queue, 3)
    assert counted == truth
    return counted


async def test_exact_through_removals_retries_refailures_and_new_failures(forge, rdb):
    """10,000 failed jobs in 5+ buckets: removing old ones, a retry that re-fails later with more
    attempts, new failures, and jobs whose hash lost its attempts all keep the count exact."""
    base = await build(rdb, 10_000)
    assert await exact(forge) == 9_000
    await rdb.zrem(f"bull:{Q}:failed", "15", "4000", "9999")  # 4000 had 1 attempt
    assert await exact(forge) == 8_998
    await rdb.zrem(f"bull:{Q}:failed", "20")  # a retry takes it out (1 attempt: not DLQ) …
    assert await exact(forge) == 8_998
    await rdb.hset(f"bull:{Q}:20", "atm", 3)  # … and it fails again, now with 3 attempts
    await rdb.zadd(f"bull:{Q}:failed", {"20": int(time.time() * 1000)})
    assert await exact(forge) == 8_999
    await build(rdb, 500, first=10_000, base=int(time.time() * 1000))
    assert await exact(forge) == 9_449
    await rdb.zrem(f"bull:{Q}:failed", *[str(i) for i in range(3000, 7000)])
    assert await exact(forge) == 5_849
    await rdb.delete(f"bull:{Q}:failed")
    assert await exact(forge) == 0 and base


async def test_a_late_stamped_failure_beside_a_removal_is_counted(forge, rdb):
    """A worker whose clock lags Redis's stamps a failure 2 s in the past, while a job of that
    same stretch is removed: the member count of the stretch is unchanged, the DLQ count is
    still exact."""
    now = int(time.time() * 1000)
    await build(rdb, 3000, base=now - 3000)
    assert await exact(forge) == 2700
    await rdb.zrem(f"bull:{Q}:failed", "1501")  # the late one lands in its bucket
    await rdb.hset(f"bull:{Q}:late", mapping={"atm": 1})
    await rdb.zadd(f"bull:{Q}:failed", {"late": now - 2000})
    assert await exact(forge) == 2699


async def test_equal_scores_across_buckets_and_small_sets(forge, rdb):
    """5,000 jobs sharing five scores (1,000 each, in buckets of 2,000) and a 50-job listpack set:
    exact, and after removing one member of a tie."""
    await build(rdb, 5000, per=1000)
    assert await exact(forge) == 4500
    await rdb.zrem(f"bull:{Q}:failed", "2501")
    assert await exact(forge) == 4499
    small = "tiny"
    for i in range(50):
        await rdb.hset(f"bull:{small}:{i}", mapping={"atm": 3 if i % 2 else 1})
        await rdb.zadd(f"bull:{small}:failed", {str(i): 1000 + i})
    assert await exact(forge, small) == 25
    assert await rdb.object("encoding", f"bull:{small}:failed") == "listpack"
    await rdb.zrem(f"bull:{small}:failed", "1")
    assert await exact(forge, small) == 24


async def test_a_flushed_and_rebuilt_redis_is_counted_again(forge, rdb):
    """The failed set emptied and filled with other jobs at other scores: counted again."""
    await build(rdb, 4000)
    assert await exact(forge) == 3600
    await rdb.flushdb()
    await build(rdb, 2500, first=50_000, base=int(time.time() * 1000) - 7_200_000)
    assert await exact(forge) == 2250


@pytest.fixture(params=[3, 5], ids=["bullmq3", "bullmq5"])
def node(request: pytest.FixtureRequest) -> NodeBullMQ:
    """Real Node BullMQ of one version on db 4."""
    return NodeBullMQ(request.param, URL)


async def dlq_member(rdb, node: NodeBullMQ, newest: bool = False) -> str:  # type: ignore[no-untyped-def]
    """The oldest (or newest) failed job with 3 attempts made."""
    field = "atm" if node.version == 5 else "attemptsMade"
    ids = await rdb.zrange(f"bull:{Q}:failed", 0, -1)
    for job in reversed(ids) if newest else ids:
        if int(await rdb.hget(f"bull:{Q}:{job}", field) or 0) >= 3:
            return job
    raise AssertionError("no DLQ member")


@needs_node
async def test_real_node_failures_and_forge_retries_stay_exact(node, forge, rdb):
    """Node fails 2,300 jobs (300 of them with 2 attempts, not DLQ); forge's `dlq retry --job`
    takes one out; Node fails 200 more (its worker fails the retried one again); Node's own clean
    removes 500: each look is exact."""
    await node.fail(Q, 2000, attempts=3, concurrency=400)
    await node.fail(Q, 300, attempts=2, concurrency=300)
    assert await exact(forge) == 2000
    for job in (await dlq_member(rdb, node, newest=True), await dlq_member(rdb, node)):
        outcome = await forge.dispatcher.run(
            Invocation(f"dlq retry {Q} --job {job}", "U0OPS", "C0OPS", source="cli"),
            actor=Actor("U0OPS", Role.OPERATOR, source="cli"),
        )
        assert outcome.kind == "result", outcome.message
    assert await exact(forge) in (1998, 2000)
    await node.fail(Q, 200, attempts=3, concurrency=200)
    assert await exact(forge) >= 2198
    await node.clean(Q, limit=500)
    assert await exact(forge) >= 1600


async def test_queue_health_at_200000_failed_answers_under_100_ms(forge, rdb):
    """200,000 failed jobs in one queue: the first look reads them all; every later look, with
    new failures in between, answers `queue health` in under 100 ms (median) with the exact DLQ."""
    await build(rdb, 200_000, per=3)

    async def look() -> tuple[float, int]:
        started = time.perf_counter()
        outcome = await forge.dispatcher.run(
            Invocation(f"queue health {Q}", "U0VIEW", source="cli"),
            actor=Actor("U0VIEW", Role.VIEWER, source="cli"),
        )
        took = (time.perf_counter() - started) * 1000
        return took, outcome.result.data["queues"][0]["dlq"]

    cold, dlq = await look()
    assert dlq == 180_000
    warm = []
    for round_ in range(8):
        await build(rdb, 50, first=300_000 + round_ * 50, base=int(time.time() * 1000))
        took, dlq = await look()
        assert dlq == 180_000 + 45 * (round_ + 1)
        warm.append(took)
        await asyncio.sleep(0.05)
    print(
        f"\nqueue health at 200,000 failed: cold {cold:.0f} ms; warm median "
        f"{statistics.median(warm):.0f} ms, worst {max(warm):.0f} ms (buckets of {BUCKET})"
    )
    assert statistics.median(warm) < 100 and await exact(forge) == dlq

"""`cache stats` and `cache test` against the machine's real Redis (database 10 only)."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

import commands.cache  # noqa: F401  (registers the commands)
from bot.core.result import Status
from bot.text.cells import plain
from commands.cache import Sample, grade, hit_rate, namespace, namespace_table, percentile
from tests.conftest import empty_redis
from tests.support.ops_support import run, started_forge
from tests.support.services import redis_url

pytestmark = pytest.mark.integration
URL = redis_url(10)
HEALTHY_MEMORY = {
    "used_memory": 10 << 20,
    "used_memory_peak": 12 << 20,
    "maxmemory": 0,
    "maxmemory_policy": "noeviction",
}


@pytest.fixture
async def rdb() -> AsyncIterator[aioredis.Redis]:
    """Redis database 10, empty before and after the test."""
    async with empty_redis(URL) as client:
        yield client


@pytest.fixture
async def forge(state_dsn, rdb):
    """forge with REDIS_URL on database 10."""
    async with started_forge(state_dsn, redis_url=URL) as started:
        yield started


async def seed(client: aioredis.Redis) -> None:
    """ClientForge-shaped keys: cache namespaces, BullMQ keys and one key without a namespace."""
    async with client.pipeline(transaction=False) as pipe:
        for i in range(30):
            pipe.set(f"contacts:tenant-a:contact:{i}", "{}", ex=300)
        for i in range(20):
            pipe.set(
                f"analytics:tenant:t1:filters:2025-11-0{i % 9 + 1}_2025-11-30:{i}", "{}", ex=300
            )
        for i in range(10):
            pipe.hset(f"bull:email:{i}", mapping={"name": "send-email", "data": "{}"})
        pipe.set("solo", "1")
        await pipe.execute()


async def command_calls(client: aioredis.Redis, name: str) -> int:
    """How often the server ran a command, from INFO commandstats."""
    return int((await client.info("commandstats")).get(f"cmdstat_{name}", {}).get("calls", 0))


async def test_stats_reports_info_and_namespaces_from_scan_never_keys(forge, rdb):
    """Hit rate, memory, policy and exact keys per namespace; SCAN ran and KEYS did not."""
    await seed(rdb)
    keys_before, scans_before = await command_calls(rdb, "keys"), await command_calls(rdb, "scan")
    outcome = await run(forge, "cache stats")
    assert outcome.kind == "result", outcome.message
    data = outcome.result.data
    assert data["namespaces"] == {"contacts": 30, "analytics": 20, "bull": 10, "(none)": 1}
    assert data["dbsize"] == 61 and data["sample_complete"] is True
    assert data["maxmemory_policy"] == (await rdb.info("memory"))["maxmemory_policy"]
    assert await command_calls(rdb, "keys") == keys_before
    assert await command_calls(rdb, "scan") > scans_before
    fields = dict(outcome.result.fields)
    assert {
        "Hit rate",
        "Memory used",
        "Memory peak",
        "Memory limit",
        "Eviction policy",
        "Evicted keys",
        "Expired keys",
        "Keys (DBSIZE)",
    } <= fields.keys()
    assert "BullMQ" in outcome.result.text
    assert outcome.result.tables[0].rows[0][:2] == ["contacts", "30"]


def test_hit_rate_under_60_percent_warns_and_names_the_threshold():
    """55 % hits is a warning; no lookups at all is not a rate."""
    status, why = grade({"keyspace_hits": 55, "keyspace_misses": 45}, HEALTHY_MEMORY)
    assert status is Status.WARNING and why == ["hit rate 55.0 % (< 60 %)"]
    assert grade({"keyspace_hits": 90, "keyspace_misses": 10}, HEALTHY_MEMORY) == (Status.OK, [])
    assert hit_rate({"keyspace_hits": 0, "keyspace_misses": 0}) is None


def test_eviction_policy_evictions_and_full_memory_are_graded():
    """allkeys-lru with evictions warns; 99 % of maxmemory is critical."""
    lru = {
        **HEALTHY_MEMORY,
        "maxmemory_policy": "allkeys-lru",
        "maxmemory": 100 << 20,
        "used_memory": 99 << 20,
    }
    status, why = grade({"keyspace_hits": 9, "keyspace_misses": 1, "evicted_keys": 12}, lru)
    assert status is Status.CRITICAL
    assert any("allkeys-lru" in w for w in why) and any("12 keys evicted" in w for w in why)
    half = {**HEALTHY_MEMORY, "maxmemory": 100 << 20, "used_memory": 92 << 20}
    assert grade({}, half)[0] is Status.WARNING


def test_an_early_stopped_scan_estimates_totals_from_dbsize():
    """A partial sample is labelled and scaled to DBSIZE."""
    table = namespace_table(Sample(Counter({"bull": 600, "contacts": 400}), 1000, False), 10_000)
    assert "sampled 1,000 of 10,000" in table.title
    assert table.rows[0] == ["bull", "600", "60.0 %", "6,000"]
    assert namespace("analytics:tenant:1") == "analytics" and namespace("plain") == "(none)"


async def test_cache_test_round_trips_on_its_own_key_and_removes_it(forge, rdb):
    """p50 ≤ p99, every GET read what was SET, and the test key is gone afterwards."""
    await rdb.set("contacts:keep", "1")
    outcome = await run(forge, "cache test --tries 25")
    assert outcome.kind == "result", outcome.message
    data = outcome.result.data
    assert (
        data["tries"] == 25
        and data["wrong_reads"] == 0
        and data["key"].startswith("forge:cache-test:")
    )
    assert 0 < data["p50_ms"] <= data["p99_ms"]
    assert outcome.result.status is (Status.OK if data["p99_ms"] <= 50 else Status.WARNING)
    assert await rdb.keys("*") == ["contacts:keep"]
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0 and percentile([5.0], 99) == 5.0


async def test_bad_input_is_a_short_usage_error_and_touches_nothing(forge, rdb):
    """Out-of-range or unknown input never reaches Redis."""
    for text in (
        "cache test --tries 0",
        "cache test --tries 5000",
        "cache test --tries x",
        "cache stats extra",
    ):
        outcome = await run(forge, text)
        assert outcome.kind == "usage" and len(plain(outcome.message)) < 120, text
    assert await rdb.dbsize() == 0


async def test_redis_down_is_one_clear_line(state_dsn):
    """A refused connection is reported as such, not as a crash."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with started_forge(state_dsn, redis_url=f"redis://127.0.0.1:{port}/10") as forge:
        outcome = await run(forge, "cache stats")
    assert outcome.kind == "failed" and outcome.message.startswith(
        "redis: connection refused; check that Redis runs and that REDIS_URL points at it"
    )

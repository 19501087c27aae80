"""`cache stats|test`: Redis hit rate, memory, evictions, key namespaces; round-trip latency."""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from bot.core.context import Context
from bot.core.registry import Args, NoArgs, Risk, Role, command, option
from bot.core.result import Result, Status, Table, worst
from bot.text.cells import Code, rich

T = TypeVar("T")
HIT_RATE_WARN = 60.0
MEMORY_WARN, MEMORY_CRIT = 0.90, 0.98
SCAN_BUDGET, SCAN_COUNT, TOP_NAMESPACES = 20_000, 1000, 15
P99_WARN_MS = 50.0
TEST_KEY = "forge:cache-test"
BULLMQ_NOTE = rich(
    "The hit rate is ",
    Code("keyspace_hits / (hits + misses)"),
    " from ",
    Code("INFO stats"),
    ": every lookup on this Redis since it started (or since CONFIG RESETSTAT), BullMQ's queue "
    "traffic included. ClientForge emits no cache hit/miss metrics of its own, so this is the "
    "only hit rate there is.",
)


class CacheTestArgs(Args):
    """Arguments of `cache test`."""

    tries: int = option(50, ge=1, le=1000, help="SET/GET/DEL round trips, 1 to 1000")


def mb(n: int) -> str:
    """Bytes as `12.3 MB`."""
    return f"{n / 1048576:,.1f} MB"


def hit_rate(stats: dict[str, Any]) -> float | None:
    """Percent of keyspace lookups that hit; None before the first lookup."""
    hits, misses = int(stats.get("keyspace_hits", 0)), int(stats.get("keyspace_misses", 0))
    return None if hits + misses == 0 else 100.0 * hits / (hits + misses)


def namespace(key: str) -> str:
    """`contacts` for `contacts:tenant:1`, `(none)` for a key without a colon."""
    return key.split(":", 1)[0] if ":" in key else "(none)"


@dataclass(frozen=True)
class Sample:
    """Keys per namespace from a bounded SCAN; `complete` when the cursor came back to 0."""

    counts: Counter[str]
    seen: int
    complete: bool


async def sample_namespaces(ctx: Context, budget: int | None = None) -> Sample:
    """SCAN (never KEYS) until the cursor wraps or `budget` (default SCAN_BUDGET) keys were seen."""
    client, counts, seen, cursor = ctx.backends.redis(), Counter[str](), 0, 0
    budget = budget or SCAN_BUDGET
    while True:
        cursor, keys = await ctx.backends.kv.call(client.scan(cursor=cursor, count=SCAN_COUNT))
        counts.update(namespace(str(k)) for k in keys)
        seen += len(keys)
        if int(cursor) == 0 or seen >= budget:
            return Sample(counts, seen, int(cursor) == 0)


def grade(stats: dict[str, Any], memory: dict[str, Any]) -> tuple[Status, list[str]]:
    """The runbook's hit-rate threshold plus memory, eviction policy, evictions: status, reasons."""
    rate, policy = hit_rate(stats), str(memory.get("maxmemory_policy", "unknown"))
    limit, evicted = int(memory.get("maxmemory", 0)), int(stats.get("evicted_keys", 0))
    full = int(memory.get("used_memory", 0)) / limit if limit else 0.0
    rules = [
        (
            rate is not None and rate < HIT_RATE_WARN,
            Status.WARNING,
            f"hit rate {rate or 0:.1f} % (< 60 %)",
        ),
        (
            policy != "noeviction",
            Status.WARNING,
            f"maxmemory-policy {policy}: BullMQ needs noeviction, or job "
            "keys are evicted like cache keys",
        ),
        (evicted > 0, Status.WARNING, f"{evicted:,} keys evicted since Redis started"),
        (
            full >= MEMORY_CRIT,
            Status.CRITICAL,
            f"memory {full:.0%} of maxmemory: writes fail under noeviction",
        ),
        (
            MEMORY_WARN <= full < MEMORY_CRIT,
            Status.WARNING,
            f"memory {full:.0%} of maxmemory (≥ 90 %)",
        ),
    ]
    hits = [(status, why) for hit, status, why in rules if hit]
    return worst([s for s, _ in hits]), [why for _, why in hits]


def namespace_table(sample: Sample, dbsize: int) -> Table:
    """The biggest namespaces first; an estimate of the total when the SCAN stopped early."""
    scale = 1.0 if sample.complete or not sample.seen else dbsize / sample.seen
    top = sample.counts.most_common(TOP_NAMESPACES)
    rest = sum(sample.counts.values()) - sum(n for _, n in top)
    if rest:
        top.append(("(other)", rest))
    rows = [
        [ns, f"{n:,}", f"{100 * n / sample.seen:.1f} %", f"{round(n * scale):,}"] for ns, n in top
    ]
    title = "Keys per namespace" + (
        "" if sample.complete else f" (sampled {sample.seen:,} of {dbsize:,} keys)"
    )
    return Table(["namespace", "keys seen", "share", "est. keys"], rows, title)


@command(
    "cache stats",
    summary="Redis hit rate, memory, eviction policy, evictions and keys per namespace.",
    args=NoArgs,
    role=Role.VIEWER,
    risk=Risk.READ,
    examples=("cache stats",),
    timeout=30.0,
)
async def cache_stats(ctx: Context, args: NoArgs) -> Result:
    """INFO stats and memory, DBSIZE, and a SCAN sample of key namespaces, graded by the runbook."""
    client = ctx.backends.redis()
    stats, memory = (
        await ctx.backends.kv.call(client.info("stats")),
        await ctx.backends.kv.call(client.info("memory")),
    )
    dbsize = int(await ctx.backends.kv.call(client.dbsize()))
    sample = await sample_namespaces(ctx)
    status, why = grade(stats, memory)
    rate, limit = hit_rate(stats), int(memory.get("maxmemory", 0))
    hits, misses = int(stats.get("keyspace_hits", 0)), int(stats.get("keyspace_misses", 0))
    rate_text = "no lookups yet" if rate is None else f"{rate:.1f} %"
    fields = [
        ("Hit rate", rate_text),
        ("Hits / misses", f"{hits:,} / {misses:,}"),
        ("Memory used", mb(int(memory.get("used_memory", 0)))),
        ("Memory peak", mb(int(memory.get("used_memory_peak", 0)))),
        ("Memory limit", mb(limit) if limit else "none (maxmemory 0)"),
        ("Eviction policy", str(memory.get("maxmemory_policy", "unknown"))),
        ("Evicted keys", f"{int(stats.get('evicted_keys', 0)):,}"),
        ("Expired keys", f"{int(stats.get('expired_keys', 0)):,}"),
        ("Keys (DBSIZE)", f"{dbsize:,}"),
    ]
    summary = (
        "; ".join(why)
        if why
        else f"Hit rate {rate_text}; memory, eviction policy and evictions fine"
    )
    summary = summary[0].upper() + summary[1:]
    text = BULLMQ_NOTE + " DBSIZE and the namespaces are for REDIS_URL's database only."
    data = {
        "hit_rate": rate,
        "hits": hits,
        "misses": misses,
        "used_memory": int(memory.get("used_memory", 0)),
        "used_memory_peak": int(memory.get("used_memory_peak", 0)),
        "maxmemory": limit,
        "maxmemory_policy": memory.get("maxmemory_policy"),
        "evicted_keys": int(stats.get("evicted_keys", 0)),
        "expired_keys": int(stats.get("expired_keys", 0)),
        "dbsize": dbsize,
        "namespaces": dict(sample.counts),
        "sampled": sample.seen,
        "sample_complete": sample.complete,
        "reasons": why,
    }
    return Result(
        "cache stats",
        status,
        summary=summary + ".",
        fields=fields,
        tables=[namespace_table(sample, dbsize)],
        text=text,
        data=data,
    )


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


async def _timed(ctx: Context, awaitable: Awaitable[T]) -> tuple[T, float]:
    """The call's result and its round trip in milliseconds."""
    start = ctx.clock.monotonic()
    value = await ctx.backends.kv.call(awaitable)
    return value, (ctx.clock.monotonic() - start) * 1000


async def round_trips(ctx: Context, key: str, tries: int) -> tuple[dict[str, list[float]], int]:
    """`tries` SET/GET/DEL cycles on the key: ms per operation, and GETs that read a wrong value."""
    samples: dict[str, list[float]] = {"SET": [], "GET": [], "DEL": [], "cycle": []}
    client, wrong = ctx.backends.redis(), 0
    for _ in range(tries):
        value = secrets.token_hex(8)
        _, set_ms = await _timed(ctx, client.set(key, value, ex=60))
        got, get_ms = await _timed(ctx, client.get(key))
        _, del_ms = await _timed(ctx, client.delete(key))
        wrong += got != value
        for op, ms in (
            ("SET", set_ms),
            ("GET", get_ms),
            ("DEL", del_ms),
            ("cycle", set_ms + get_ms + del_ms),
        ):
            samples[op].append(ms)
    return samples, wrong


@command(
    "cache test",
    summary="SET/GET/DEL round trips on a key of forge's own: p50 and p99 latency.",
    args=CacheTestArgs,
    role=Role.VIEWER,
    risk=Risk.READ,
    examples=("cache test", "cache test --tries 200"),
    timeout=60.0,
)
async def cache_test(ctx: Context, args: CacheTestArgs) -> Result:
    """Time `tries` SET (60 s TTL)/GET/DEL on `forge:cache-test:<request>`; the key always goes."""
    key = f"{TEST_KEY}:{ctx.request_id or secrets.token_hex(6)}"
    try:
        samples, wrong = await round_trips(ctx, key, args.tries)
    finally:
        await ctx.backends.kv.call(ctx.backends.redis().delete(key))
    p50, p99 = percentile(samples["cycle"], 50), percentile(samples["cycle"], 99)
    status = Status.CRITICAL if wrong else Status.WARNING if p99 > P99_WARN_MS else Status.OK
    rows = [
        [op, f"{percentile(ms, 50):.2f} ms", f"{percentile(ms, 99):.2f} ms", f"{max(ms):.2f} ms"]
        for op, ms in samples.items()
    ]
    summary = f"{args.tries} round trips: p50 {p50:.2f} ms, p99 {p99:.2f} ms per SET+GET+DEL"
    if wrong:
        summary += f"; {wrong} GETs returned another value than was SET"
    elif p99 > P99_WARN_MS:
        summary += f" (p99 > {P99_WARN_MS:g} ms)"
    return Result(
        "cache test",
        status,
        summary=summary + ".",
        fields=[
            ("Tries", str(args.tries)),
            ("Cycle p50", f"{p50:.2f} ms"),
            ("Cycle p99", f"{p99:.2f} ms"),
            ("Wrong reads", str(wrong)),
            ("Key", key),
        ],
        tables=[Table(["operation", "p50", "p99", "max"], rows)],
        text=rich(
            "Each GET counts as a keyspace hit in ", Code("INFO stats"), f": {args.tries} here."
        ),
        data={
            "tries": args.tries,
            "p50_ms": p50,
            "p99_ms": p99,
            "wrong_reads": wrong,
            "key": key,
            "ops": {
                op: {"p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99)}
                for op, ms in samples.items()
            },
        },
    )

"""Exact DLQ counts that cost what changed since the last look, not the size of the failed set.

The DLQ is the failed zset's members with at least `min_attempts` attempts made; classifying a
member reads its job hash, so counting 200,000 of them from scratch takes about half a second.
A job's attempts do not change while it stays in the failed set: a retry takes it out, and when
it fails again it comes back with a new score (its finishedOn). So the count is remembered per
queue as buckets: contiguous score ranges of about BUCKET members, each with how many members it
held and how many of them were in the DLQ. A look then costs one pipelined ZCOUNT per bucket:

- a bucket whose ZCOUNT still matches is trusted, without reading a job;
- a bucket whose ZCOUNT moved (a removal, a retry, a clean, a trim) is counted again, alone;
- everything scored after the last look's Redis time minus SKEW_MS is always counted again: new
  failures, and failures that workers whose clocks lag Redis's stamped slightly in the past.

What this trusts: no member joins an old bucket while another leaves it between two looks, which
would need a worker clock more than SKEW_MS behind Redis's; and a member's attempts stay fixed
while it stays failed, as BullMQ keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from bot.core.context import Context
from commands.queues.lua import TALLY

BUCKET = 2000
BUDGET = 20_000  # members one script call reads at most: Redis stays free for ClientForge
SKEW_MS = 5000


@dataclass(frozen=True)
class Bucket:
    """Failed members scored in (low, high], as Redis formats the scores, and how many are DLQ."""

    low: str
    high: str
    members: int
    dlq: int


@dataclass(frozen=True)
class Tally:
    """A queue's buckets, oldest first, and the Redis time (ms) they were last checked at."""

    buckets: tuple[Bucket, ...]
    checked_ms: int


# per set of backend clients (one forge), so a new forge or another Redis starts from scratch
_tallies: WeakKeyDictionary[Any, dict[tuple[str, int], Tally]] = WeakKeyDictionary()


@dataclass(frozen=True)
class Failed:
    """One queue's failed zset, the prefix of its job hashes, and the DLQ's attempts threshold."""

    ctx: Context
    zset: str
    jobs: str
    min_attempts: int

    async def redis(self, awaitable: Any) -> Any:
        """One Redis call within the backend timeout."""
        return await self.ctx.backends.kv.call(awaitable)


def _zrange(low: str, high: str) -> tuple[str, str]:
    return ("-inf" if low == "-inf" else f"({low}"), high


async def dlq_count(ctx: Context, zset: str, jobs: str, min_attempts: int) -> int:
    """Members of the failed `zset` whose job hash (`jobs` + id) has at least `min_attempts`
    attempts made: exact, re-reading only what changed since the last look."""
    failed = Failed(ctx, zset, jobs, min_attempts)
    remembered = _tallies.setdefault(ctx.backends, {})
    previous = remembered.get((zset, min_attempts))
    now_ms, current = await _check(failed, previous)
    buckets = _merged(await _refresh(failed, previous, current))
    remembered[(zset, min_attempts)] = Tally(tuple(buckets), now_ms)
    return sum(b.dlq for b in buckets)


async def _check(failed: Failed, previous: Tally | None) -> tuple[int, list[int]]:
    """Redis's time (ms) and each remembered bucket's member count now, in one round trip."""
    async with failed.ctx.backends.redis().pipeline(transaction=False) as pipe:
        pipe.time()
        for bucket in previous.buckets if previous else ():
            pipe.zcount(failed.zset, *_zrange(bucket.low, bucket.high))
        (seconds, micros), *counts = await failed.redis(pipe.execute())
    return int(seconds) * 1000 + int(micros) // 1000, counts


def _merged(buckets: list[Bucket]) -> list[Bucket]:
    """Neighbours that fit in one BUCKET together become one, so small ones do not pile up."""
    out: list[Bucket] = []
    for b in buckets:
        if out and out[-1].members + b.members <= BUCKET:
            a = out.pop()
            b = Bucket(a.low, b.high, a.members + b.members, a.dlq + b.dlq)
        out.append(b)
    return out


async def _refresh(failed: Failed, previous: Tally | None, current: list[int]) -> list[Bucket]:
    """The buckets to keep, runs of changed ones counted again, and the recent end counted anew."""
    kept: list[Bucket] = []
    stale: list[Bucket] = []
    settled = previous.checked_ms - SKEW_MS if previous else float("-inf")
    for bucket, members in zip(previous.buckets if previous else (), current, strict=False):
        if float(bucket.high) >= settled:
            break
        if members == bucket.members:
            kept += await _recount(failed, stale)
            stale = []
            kept.append(bucket)
        else:
            stale.append(bucket)
    kept += await _recount(failed, stale)
    low = kept[-1].high if kept else "-inf"
    return kept + await _count(failed, low, "+inf")


async def _recount(failed: Failed, run: list[Bucket]) -> list[Bucket]:
    """A run of neighbouring changed buckets counted again as one range, still ending where the
    run ended, so the buckets keep covering every score."""
    if not run:
        return []
    low, high = run[0].low, run[-1].high
    fresh = await _count(failed, low, high)
    if not fresh:
        return [Bucket(low, high, 0, 0)]
    last = fresh[-1]
    return [*fresh[:-1], Bucket(last.low, high, last.members, last.dlq)]


async def _count(failed: Failed, low: str, high: str) -> list[Bucket]:
    """The members scored in (low, high] as new buckets, read BUDGET members per script call."""
    found: list[Bucket] = []
    while True:
        reply = await failed.redis(
            TALLY.run(
                failed.ctx.backends.redis(),
                [failed.zset],
                [failed.jobs, low, high, failed.min_attempts, BUCKET, BUDGET],
            )
        )
        done, flat = int(reply[0]), reply[1:]
        for i in range(0, len(flat), 3):
            found.append(Bucket(low, str(flat[i]), int(flat[i + 1]), int(flat[i + 2])))
            low = found[-1].high
        if done:
            return found

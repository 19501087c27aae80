"""BullMQ's Redis layout in one place: queue names, counts, workers, DLQ scans and records."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from bot.core.context import Context
from bot.core.errors import BackendUnavailable, CommandError
from bot.text.cells import Code, Text, join, rich
from bot.text.redact import redact_value
from commands.queues import tally
from commands.queues.lua import SCAN

if TYPE_CHECKING:
    import redis.asyncio as aioredis

T = TypeVar("T")
PREFIX = "bull"
QUEUE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
JOB_ID = re.compile(r"^[A-Za-z0-9:_.-]{1,128}$")
QUEUE_KEYS = {
    "active",
    "wait",
    "waiting-children",
    "paused",
    "completed",
    "failed",
    "delayed",
    "repeat",
    "stalled",
    "limiter",
    "prioritized",
    "id",
    "stalled-check",
    "meta",
    "pc",
    "events",
    "marker",
    "de",
    "metrics",
}
COUNT_WINDOW = 5000
# the next jobs out; prioritized (3.x) and LIFO jobs jump ahead of older ones,
# so the oldest is among them
TAIL = 32
BATCH = 500
DISCOVERY_TTL = 300.0
_discovered: dict[str, tuple[float, list[str]]] = {}
JSON_FIELDS = ("data", "opts", "stacktrace", "returnvalue", "progress")


def key(queue: str, *parts: str) -> str:
    """`bull:<queue>:<part>…`."""
    return ":".join((PREFIX, queue, *parts))


def check_name(name: str) -> str:
    """The name when it may be a BullMQ queue name; a CommandError otherwise."""
    if not QUEUE_NAME.fullmatch(name):
        raise CommandError(
            rich(
                Code(_shown(name)),
                " is not a queue name: lowercase letters, digits, - _ and . only, "
                "at most 64 characters.",
            )
        )
    return name


def _shown(text: str) -> str:
    return text[:60]


def check_job_id(job_id: str) -> str:
    """The job id when it looks like a BullMQ job id; a CommandError otherwise."""
    if not JOB_ID.fullmatch(job_id) or job_id.split(":")[0] in QUEUE_KEYS - {"repeat"}:
        raise CommandError(
            rich(Code(_shown(job_id)), " is not a job id (letters, digits and : _ . -).")
        )
    return job_id


def public_record(record: dict[str, str]) -> dict[str, Any]:
    """A job hash with its JSON fields decoded and secrets redacted: safe for Slack and files."""
    decoded: dict[str, Any] = dict(record)
    for name in JSON_FIELDS:
        if name in decoded:
            try:
                decoded[name] = json.loads(decoded[name])
            except ValueError:
                pass
    return redact_value(decoded)


def _opts(raw: str | None) -> dict[str, Any]:
    try:
        opts = json.loads(raw or "{}")
    except ValueError:
        return {}
    return opts if isinstance(opts, dict) else {}


def attempts_allowed(opts: str | None) -> int:
    """`opts.attempts` of a job hash's raw `opts` (1 when absent)."""
    return int(_opts(opts).get("attempts", 1) or 1)


def is_lifo(opts: str | None) -> bool:
    """Whether the job was added LIFO, which retries honour."""
    return bool(_opts(opts).get("lifo"))


@dataclass(frozen=True)
class Target:
    """A queue forge accepted, and how the typed name led to it."""

    name: str
    note: Text = ""


def alias(ctx: Context, name: str) -> Target:
    """The queue a runbook name stands for, with a note when it differs."""
    target = ctx.settings.config.queue_aliases.get(name, name)
    if target == name:
        return Target(name)
    return Target(
        target, rich(Code(name), " is the runbook's name; ClientForge's queue is ", Code(target))
    )


async def resolve(ctx: Context, name: str) -> Target:
    """A configured queue or one that exists in Redis (`bull:<q>:id`); refused before any write."""
    found = alias(ctx, check_name(name))
    if found.name in ctx.settings.config.queues:
        return found
    if await ctx.backends.kv.call(ctx.backends.redis().exists(key(found.name, "id"))):
        return found
    known = join(", ", [Code(q) for q in ctx.settings.config.queues])
    raise CommandError(
        rich(
            "No queue ", Code(found.name), " in Redis and none configured. Configured: ", known, "."
        )
    )


async def discover(ctx: Context, fresh: bool = False) -> list[str]:
    """Queue names found by `SCAN MATCH bull:*:id`, cached a few minutes (the scan is O(keys))."""
    client, where = ctx.backends.redis(), ctx.settings.env.redis_url.get_secret_value()
    cached = _discovered.get(where)
    if cached and not fresh and time.monotonic() - cached[0] < DISCOVERY_TTL:
        return cached[1]
    names: set[str] = set()
    cursor = 0
    while True:
        cursor, keys = await ctx.backends.kv.call(
            client.scan(cursor, match=f"{PREFIX}:*:id", count=2000)
        )
        names.update(str(k)[len(PREFIX) + 1 : -3] for k in keys)
        if cursor == 0:
            break
    found = sorted(n for n in names if QUEUE_NAME.fullmatch(n))
    _discovered[where] = (time.monotonic(), found)
    return found


@dataclass
class Counts:
    """One queue's job counts, as BullMQ's getJobCounts would report them, plus lag and DLQ."""

    name: str
    waiting: int = 0
    active: int = 0
    delayed: int = 0
    prioritized: int = 0
    failed: int = 0
    completed: int = 0
    paused: bool = False
    oldest: int | None = None
    dlq: int = 0
    workers: int | None = 0
    tails: list[str] = field(default_factory=list)

    def lag(self, now_ms: int) -> float | None:
        """Seconds since the oldest waiting job was created."""
        return None if self.oldest is None else max(0.0, (now_ms - self.oldest) / 1000)


def _queue_commands(pipe: Any, q: str) -> None:
    pipe.llen(key(q, "wait"))
    pipe.llen(key(q, "paused"))
    pipe.llen(key(q, "active"))
    pipe.zcard(key(q, "delayed"))
    pipe.zcard(key(q, "prioritized"))
    pipe.zcard(key(q, "failed"))
    pipe.zcard(key(q, "completed"))
    pipe.hexists(key(q, "meta"), "paused")
    pipe.lrange(key(q, "wait"), -TAIL, -1)
    pipe.lrange(key(q, "paused"), -TAIL, -1)


def _counts_from(q: str, r: list[Any]) -> Counts:
    c = Counts(
        q,
        active=r[2],
        delayed=r[3],
        prioritized=r[4],
        failed=r[5],
        completed=r[6],
        paused=bool(r[7]),
    )
    for length, tail in ((r[0], r[8]), (r[1], r[9])):
        if tail and tail[-1].startswith("0:"):
            length, tail = length - 1, tail[:-1]
        c.waiting += length
        c.tails.extend(job for job in tail if not job.startswith("0:"))
    return c


async def counts(ctx: Context, queues: list[str]) -> dict[str, Counts]:
    """Exact counts for all queues in one pipelined round trip, then the oldest jobs' timestamps."""
    client = ctx.backends.redis()
    async with client.pipeline(transaction=False) as pipe:
        for q in queues:
            _queue_commands(pipe, q)
        raw = await ctx.backends.kv.call(pipe.execute())
    found = {q: _counts_from(q, raw[i * 10 : i * 10 + 10]) for i, q in enumerate(queues)}
    pairs = [(c, job) for c in found.values() for job in c.tails]
    if pairs:
        async with client.pipeline(transaction=False) as pipe:
            for c, job in pairs:
                pipe.hget(key(c.name, job), "timestamp")
            stamps = await ctx.backends.kv.call(pipe.execute())
        for (c, _), ts in zip(pairs, stamps, strict=True):
            if ts and ts.isdigit():
                c.oldest = min(int(ts), c.oldest or int(ts))
    return found


def _client_db(client: aioredis.Redis) -> str:
    return str(client.connection_pool.connection_kwargs.get("db", 0))


def worker_queue(name: str, queues: Iterable[str]) -> str | None:
    """A BullMQ connection name's queue: `bull:<base64(q)>[:w:<worker>]` (Node) or `bull:<q>…`."""
    if not name.startswith(PREFIX + ":"):
        return None
    part = name[len(PREFIX) + 1 :].split(":w:", 1)[0]
    known = set(queues)
    if part in known:
        return part
    try:
        decoded = base64.b64decode(part, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return decoded if decoded in known else None


async def workers(ctx: Context, queues: list[str]) -> dict[str, int | None]:
    """Distinct worker connections per queue on this db, from CLIENT LIST (None: not allowed)."""
    client = ctx.backends.redis()
    try:
        listing = await ctx.backends.kv.call(client.client_list())
    except BackendUnavailable:
        return dict.fromkeys(queues)
    db, seen = _client_db(client), {q: set[str]() for q in queues}
    for entry in listing:
        q = worker_queue(entry.get("name") or "", queues)
        if q is not None and str(entry.get("db")) == db:
            seen[q].add(str(entry.get("id")))
    return {q: len(ids) for q, ids in seen.items()}


async def snapshot(ctx: Context, queues: list[str], min_attempts: int) -> list[Counts]:
    """Counts, lag, workers and exact DLQ sizes of the queues, fetched concurrently."""
    found, conns, dlqs = await asyncio.gather(
        counts(ctx, queues),
        workers(ctx, queues),
        asyncio.gather(*(dlq_count(ctx, q, min_attempts) for q in queues)),
    )
    for q, dlq in zip(queues, dlqs, strict=True):
        found[q].dlq, found[q].workers = dlq, conns[q]
    return [found[q] for q in queues]


@dataclass
class Scan:
    """Newest-first windows over a queue's DLQ members finished at or before `cutoff` (ms)."""

    ctx: Context
    queue: str
    min_attempts: int
    cutoff: int | None = None
    mode: str = "rows"
    fields: tuple[str, ...] = ()
    window: int = BATCH
    offset: int = 0
    members: int = 0
    done: bool = False
    last: dict[str, Any] = field(default_factory=dict)

    async def next(self) -> Any:
        """The next window's members: `[id, attempts, *fields]` ('rows'), `[id, score, record]`
        ('records'), {first line: jobs} ('reasons'), nothing ('count'); `members` and `last` hold
        the window's totals."""
        if self.done:
            return []
        cutoff = "+inf" if self.cutoff is None else str(self.cutoff)
        raw = await self.ctx.backends.kv.call(
            SCAN.run(
                self.ctx.backends.redis(),
                [key(self.queue, "failed")],
                [
                    key(self.queue, ""),
                    cutoff,
                    self.offset,
                    self.window,
                    self.min_attempts,
                    self.mode,
                    *self.fields,
                ],
                raw=True,
            )
        )
        import msgpack

        data = self.last = msgpack.unpackb(raw, raw=False)
        self.offset += int(data["scanned"])
        self.done = int(data["scanned"]) < self.window
        self.members = int(data["members"])
        return data["rows"] or []

    def removed(self, n: int) -> None:
        """Account for members this caller removed from the failed set since the last window."""
        self.offset -= n


async def dlq_count(ctx: Context, queue: str, min_attempts: int) -> int:
    """Failed jobs with at least `min_attempts` attempts made: exact, and in a failure storm only
    what changed since the last look is read (commands/queues/tally.py)."""
    return await tally.dlq_count(ctx, key(queue, "failed"), key(queue, ""), min_attempts)


async def full_dlq_count(ctx: Context, queue: str, min_attempts: int) -> int:
    """The same count read from scratch over the whole failed set, as tally is checked against."""
    scan, total = Scan(ctx, queue, min_attempts, mode="count", window=COUNT_WINDOW), 0
    while not scan.done:
        await scan.next()
        total += scan.members
    return total


async def records(ctx: Context, queue: str, ids: list[str]) -> list[dict[str, str]]:
    """Whole job hashes, one pipelined HGETALL per job."""
    async with ctx.backends.redis().pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hgetall(key(queue, job_id))
        return list(await ctx.backends.kv.call(pipe.execute()))

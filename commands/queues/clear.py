"""The removal walk of `dlq clear`: whole DLQ jobs read by a cursor, and removed once archived."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.core.context import Context
from bot.core.scope import Scope
from commands.queues.bullmq import BATCH, Scan, key
from commands.queues.lua import DROP, TAKE, Call

if TYPE_CHECKING:
    from bot.state.archive import ArchivedJob


LOG_LINES = 100  # the newest lines of a job's log archived with it: 500 jobs a window stay small


@dataclass
class Window:
    """Jobs to remove: (id, name, record, log) to archive, and the removal's argument for just
    these."""

    jobs: list[ArchivedJob]
    plan: bytes = b""


@dataclass
class Take:
    """Newest-first windows of a queue's DLQ members failed by `cutoff` (ms), whole, to remove."""

    queue: str
    min_attempts: int
    cutoff: int
    form: str = "rdb"
    window: int = BATCH
    cursor: tuple[str, str] = ("", "")
    done: bool = False

    def call(self) -> Call:
        """The TAKE script call for the next window."""
        return (
            TAKE,
            [key(self.queue, "failed")],
            [
                key(self.queue, ""),
                str(self.cutoff),
                *self.cursor,
                self.window,
                self.min_attempts,
                "dump" if self.form == "rdb" else "pack",
                LOG_LINES,
            ],
            True,
        )

    def read(self, reply: list[Any]) -> Window:
        """The window in TAKE's reply; the cursor moves past it."""
        self.done = int(reply[0]) < self.window
        self.cursor = (reply[2].decode(), reply[3].decode())
        ids, names, records, logs = reply[5::4], reply[6::4], reply[7::4], reply[8::4]
        return Window(
            [
                (i.decode(), n.decode("utf-8", "replace"), r, log)
                for i, n, r, log in zip(ids, names, records, logs, strict=False)
            ],
            reply[4],
        )


async def take_next(ctx: Context, take: Take) -> Window:
    """The next window of `take`."""
    script, keys, args, raw = take.call()
    return take.read(
        await ctx.backends.kv.call(script.run(ctx.backends.redis(), keys, args, raw=raw))
    )


async def drop(ctx: Context, queue: str, archived: Window) -> list[str]:
    """Remove the archived jobs still failed with the score they had when read, and their keys:
    the ids DROP left alone (they changed meanwhile)."""
    keys, args = [key(queue, "failed"), key(queue, "events")], [key(queue, ""), archived.plan]
    return list(await ctx.backends.kv.call(DROP.run(ctx.backends.redis(), keys, args)) or [])


async def archive_format(ctx: Context) -> str:
    """`rdb` (hashes as DUMP payloads) on Redis 7+, whose format forge reads; else `msgpack`."""
    info = await ctx.backends.kv.call(ctx.backends.redis().info("server"))
    major = int(str(info.get("redis_version", "0")).split(".")[0] or 0)
    return "rdb" if major >= 7 else "msgpack"


def approved_cutoff(scope: Scope | None, cutoff: int) -> int:
    """The newest failure score to remove: the newest the approved dry run counted (none: -1)."""
    if scope is None:
        return cutoff
    newest = scope.get("newest_score")
    return -1 if newest is None else min(cutoff, int(newest))


async def failed_after(ctx: Context, queue: str, min_attempts: int, score: int) -> int:
    """DLQ members that failed after `score` (ms): the jobs an approved clear leaves alone."""
    failed = key(queue, "failed")
    later = await ctx.backends.kv.call(ctx.backends.redis().zcount(failed, f"({score}", "+inf"))
    if not later:
        return 0
    scan = Scan(ctx, queue, min_attempts, mode="count", window=int(later))
    await scan.next()
    return scan.members

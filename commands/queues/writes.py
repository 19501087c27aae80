"""BullMQ's writes on forge's client: pause and resume a queue, add jobs, retry failed ones."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from bot.core.context import Context
from commands.queues.bullmq import PREFIX, key
from commands.queues.lua import PAUSE

if TYPE_CHECKING:
    from bullmq import Queue

RETRY_CONCURRENCY = 16


def _bull(ctx: Context, queue: str) -> Queue:
    """A bullmq Queue on forge's own client; never closed here, as that would close the client."""
    from bullmq import Queue

    return Queue(queue, {"connection": ctx.backends.redis(), "prefix": PREFIX})


async def pause_queue(ctx: Context, queue: str) -> bool:
    """Pause as Node BullMQ 3 and 5 do, so workers of both stop; False when it already was."""
    keys = [key(queue, k) for k in ("wait", "paused", "meta", "events", "marker")]
    return bool(await ctx.backends.kv.call(PAUSE.run(ctx.backends.redis(), keys, [])))


async def resume_queue(ctx: Context, queue: str) -> None:
    """Resume the queue as Queue.resume() does; repeated while a legacy paused list still drains."""
    bull = _bull(ctx, queue)
    for _ in range(1000):
        if not await ctx.backends.kv.call(bull.resume()):
            return


async def add_jobs(ctx: Context, queue: str, jobs: list[dict[str, Any]]) -> list[str]:
    """Add jobs with Queue.addBulk; their ids."""
    added = await ctx.backends.kv.call(_bull(ctx, queue).addBulk(jobs))
    return [str(job.id) for job in added]


async def retry_jobs(ctx: Context, queue: str, jobs: list[tuple[str, bool]]) -> list[str]:
    """Move failed jobs (id, lifo) back to waiting by Job.retry(), a few at a time; ids moved."""
    from bullmq import Job

    bull = _bull(ctx, queue)

    async def retry(job_id: str, lifo: bool) -> bool:
        """True when it moved; False when BullMQ says it is gone or no longer failed."""
        try:
            await Job(bull, "", None, {"lifo": True} if lifo else {}, job_id).retry("failed")
        except TypeError as exc:
            if "reprocessJob" not in str(exc):
                raise
            return False
        return True

    moved: list[str] = []
    for i in range(0, len(jobs), RETRY_CONCURRENCY):
        chunk = jobs[i : i + RETRY_CONCURRENCY]
        done = await asyncio.gather(
            *(ctx.backends.kv.call(retry(job_id, lifo)) for job_id, lifo in chunk)
        )
        moved += [job_id for (job_id, _), ok in zip(chunk, done, strict=True) if ok]
    return moved

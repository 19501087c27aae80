"""`dlq retry`: move a queue's DLQ jobs, all or one, back to waiting."""

from __future__ import annotations

import asyncio

from bot.core.context import Context
from bot.core.errors import CommandError
from bot.core.registry import Risk, Role, command, option
from bot.core.result import Action, Result
from bot.text.cells import Code, lines, rich
from commands.queues.browse import PROGRESS_EVERY, QueueArgs, now_ms, page_ids
from commands.queues.bullmq import Scan, check_job_id, is_lifo, key, resolve
from commands.queues.writes import retry_jobs


class RetryArgs(QueueArgs):
    """Arguments of `dlq retry`."""

    job: str | None = option(help="only this job id")
    dry_run: bool = option(False, help="say what would move, move nothing")


async def _retry_one(ctx: Context, q: str, job_id: str, dry_run: bool) -> Result:
    client = ctx.backends.redis()
    score, fields = await asyncio.gather(
        ctx.backends.kv.call(client.zscore(key(q, "failed"), job_id)),
        ctx.backends.kv.call(client.hmget(key(q, job_id), "atm", "attemptsMade", "opts")),
    )
    if score is None or int(fields[0] or fields[1] or 0) < ctx.settings.config.dlq.min_attempts:
        raise CommandError(rich("Job ", Code(job_id), " is not in the DLQ of ", Code(q), "."))
    if dry_run:
        return Result(
            f"dlq retry {q} --job {job_id} --dry-run",
            summary=rich("Would move job ", Code(job_id), " back to waiting."),
        )
    moved = await retry_jobs(
        ctx, q, [(job_id, is_lifo(str(fields[2]) if fields[2] is not None else None))]
    )
    if not moved:
        raise CommandError(
            rich("Job ", Code(job_id), " left the failed set meanwhile; nothing moved.")
        )
    return Result(
        f"dlq retry {q} --job {job_id}",
        summary=rich("Job ", Code(job_id), " moved back to waiting."),
        data={"queue": q, "moved": moved},
    )


async def _retry_all(ctx: Context, q: str) -> tuple[int, int]:
    scan = Scan(ctx, q, ctx.settings.config.dlq.min_attempts, cutoff=now_ms(ctx), fields=("opts",))
    moved = seen = windows = 0
    while not scan.done:
        rows = await scan.next()
        done = await retry_jobs(ctx, q, [(r[0], is_lifo(r[2])) for r in rows])
        scan.removed(len(done))
        moved, seen, windows = moved + len(done), seen + len(rows), windows + 1
        if windows % PROGRESS_EVERY == 0:
            await ctx.progress(
                rich(f"Moved {moved:,} DLQ jobs of ", Code(q), " back to waiting so far…")
            )
    return moved, seen - moved


@command(
    "dlq retry",
    summary="Move DLQ jobs (all, or one) back to waiting, as BullMQ's job.retry() does.",
    args=RetryArgs,
    role=Role.OPERATOR,
    risk=Risk.WRITE,
    timeout=600,
    slow=True,
    examples=("dlq retry email", "dlq retry email --job 1234", "dlq retry email --dry-run"),
)
async def dlq_retry(ctx: Context, args: RetryArgs) -> Result:
    """Retry every DLQ member (only members: failed jobs with few attempts stay), or one job."""
    target = await resolve(ctx, args.queue)
    q = target.name
    if args.job:
        return await _retry_one(ctx, q, check_job_id(args.job), args.dry_run)
    if args.dry_run:
        total, ids = await page_ids(ctx, q, 0, 5)
        newest = "Newest: " + ", ".join(ids) if ids else ""
        return Result(
            f"dlq retry {q} --dry-run",
            summary=rich(f"Would move {total:,} DLQ jobs of ", Code(q), " back to waiting."),
            text=lines(target.note or None, newest or None),
            data={"would_move": total, "newest": ids},
        )
    moved, skipped = await _retry_all(ctx, q)
    return Result(
        f"dlq retry {q}",
        summary=rich(
            f"Moved {moved:,} DLQ jobs of ",
            Code(q),
            " back to waiting",
            f"; {skipped:,} had changed meanwhile and were left alone." if skipped else ".",
        ),
        text=target.note,
        actions=[Action(f"Health of {q}", f"queue health {q}")],
        data={"queue": q, "moved": moved, "skipped": skipped},
    )

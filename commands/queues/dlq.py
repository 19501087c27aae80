"""`dlq list|show|export|retry|clear|archive|archive-export`: failed jobs that used up their attempts."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.core.args import Duration
from bot.core.context import Context
from bot.core.errors import BackendError, BackendTimeout, CommandError
from bot.core.redact import redact
from bot.core.registry import Args, Risk, Role, command, option, positional
from bot.core.result import Action, Attachment, Result, Status, Table
from bot.state.archive import Archive
from commands.queues.bullmq import (
    BATCH,
    COUNT_WINDOW,
    Scan,
    alias,
    attempts_allowed,
    check_job_id,
    check_name,
    is_lifo,
    key,
    public_record,
    records,
    redis_call,
    resolve,
    retry_jobs,
)
from commands.queues.clear import Take, Window, archive_format, drop_and_take, take_next

PROGRESS_EVERY = 20


class QueueArgs(Args):
    """A queue name."""

    queue: str = positional(help="the queue, e.g. `email`")


class ListArgs(QueueArgs):
    """Arguments of `dlq list`."""

    page: int = option(1, ge=1, le=1_000_000, help="page number, newest jobs first")
    limit: int = option(20, ge=1, le=100, help="jobs per page, 1 to 100")


class ShowArgs(QueueArgs):
    """Arguments of `dlq show`."""

    job: str = positional(help="the job id, as `dlq list` shows it")


class RetryArgs(QueueArgs):
    """Arguments of `dlq retry`."""

    job: str | None = option(help="only this job id")
    dry_run: bool = option(False, help="say what would move, move nothing")


class ClearArgs(QueueArgs):
    """Arguments of `dlq clear`."""

    older_than: Duration | None = option(
        help="only jobs that failed longer ago than this, e.g. 2h or 7d"
    )
    dry_run: bool = option(False, help="say what would be removed, remove nothing")


class ArchiveArgs(Args):
    """Arguments of `dlq archive`."""

    queue: str | None = positional(None, help="only batches of this queue")


class BatchArgs(Args):
    """Arguments of `dlq archive-export`."""

    batch: str = positional(help="the batch id that `dlq archive` lists")


def first_line(text: str | None, width: int = 100) -> str:
    """The first line of a failure reason, shortened."""
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else "(no reason)"
    return redact(line if len(line) <= width else line[: width - 1] + "…")


def when(ms: Any) -> str:
    """A BullMQ millisecond timestamp as UTC text."""
    try:
        return datetime.fromtimestamp(int(ms) / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (TypeError, ValueError):
        return "—"


def span(delta: timedelta) -> str:
    """A duration as the largest whole unit: `90 min`, `2 h`, `7 d`."""
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _now_ms(ctx: Context) -> int:
    return int(ctx.clock.now().timestamp() * 1000)


async def _page_ids(ctx: Context, queue: str, start: int, limit: int) -> tuple[int, list[str]]:
    scan, total, ids = (
        Scan(ctx, queue, ctx.settings.config.dlq.min_attempts, window=COUNT_WINDOW),
        0,
        [],
    )
    while not scan.done:
        rows = await scan.next()
        ids += [r[0] for r in rows[max(0, start - total) : max(0, start + limit - total)]]
        total += len(rows)
    return total, ids


@command(
    "dlq list",
    summary="Jobs in a queue's DLQ, newest first, a page at a time.",
    args=ListArgs,
    examples=("dlq list email", "dlq list email --page 2 --limit 50"),
)
async def dlq_list(ctx: Context, args: ListArgs) -> Result:
    """One page of the DLQ: id, name, attempts, first line of the reason, when it failed."""
    target = await resolve(ctx, args.queue)
    q, start = target.name, (args.page - 1) * args.limit
    total, ids = await _page_ids(ctx, q, start, args.limit)
    jobs = await records(ctx, q, ids)
    rows = [
        [
            i,
            j.get("name", "—"),
            f"{j.get('atm') or j.get('attemptsMade') or 0}/{attempts_allowed(j.get('opts'))}",
            when(j.get("finishedOn")),
            first_line(j.get("failedReason"), 80),
        ]
        for i, j in zip(ids, jobs, strict=True)
    ]
    pages = max(1, -(-total // args.limit))
    summary = (
        f"DLQ of `{q}`: {total:,} jobs (failed after ≥ {ctx.settings.config.dlq.min_attempts} attempts); "
        f"page {args.page} of {pages}, newest first."
    )
    actions = (
        [Action("Next page", f"dlq list {q} --page {args.page + 1} --limit {args.limit}")]
        if args.page < pages
        else []
    )
    if total:
        actions += [
            Action("Export", f"dlq export {q}"),
            Action("Retry all", f"dlq retry {q}"),
            Action("Clear", f"dlq clear {q}", "danger"),
        ]
    return Result(
        f"dlq list {q}",
        Status.WARNING if total else Status.OK,
        summary=summary,
        text=target.note,
        tables=[Table(["id", "name", "attempts", "failed at", "reason"], rows)] if rows else [],
        actions=actions,
        data={"queue": q, "total": total, "page": args.page, "jobs": rows},
    )


@command(
    "dlq show",
    summary="One failed job: data (secrets redacted), reason, stack trace, attempts.",
    args=ShowArgs,
    examples=("dlq show email 1234",),
)
async def dlq_show(ctx: Context, args: ShowArgs) -> Result:
    """The job's record with secret-looking fields redacted and the top of its stack trace."""
    target = await resolve(ctx, args.queue)
    q, job_id = target.name, check_job_id(args.job)
    client = ctx.backends.redis()
    kind, score = await asyncio.gather(
        redis_call(ctx, client.type(key(q, job_id))),
        redis_call(ctx, client.zscore(key(q, "failed"), job_id)),
    )
    if kind != "hash":
        raise CommandError(f"No job `{job_id}` in `{q}`.")
    job = public_record((await records(ctx, q, [job_id]))[0])
    made = int(job.get("atm") or job.get("attemptsMade") or 0)
    state = (
        ("in the DLQ" if made >= ctx.settings.config.dlq.min_attempts else "failed, not in the DLQ")
        if score is not None
        else "not failed"
    )
    stack = job.get("stacktrace") if isinstance(job.get("stacktrace"), list) else []
    trace = "\n".join((stack[-1] if stack else "").splitlines()[:8])
    text = "\n".join(
        filter(
            None,
            [
                target.note,
                f"*Reason:* {first_line(str(job.get('failedReason', '')), 300)}",
                "*Data:*\n```" + json.dumps(job.get("data"), indent=2)[:1500] + "```",
                "*Stack trace:*\n```" + trace + "```" if trace else "",
            ],
        )
    )
    opts = job.get("opts") if isinstance(job.get("opts"), dict) else {}
    fields = [
        ("Job", f"{job_id} ({job.get('name', '—')})"),
        ("State", state),
        ("Attempts", f"{made} of {opts.get('attempts', 1)}"),
        ("Created", when(job.get("timestamp"))),
        ("Processed", when(job.get("processedOn"))),
        ("Failed at", when(job.get("finishedOn"))),
    ]
    return Result(
        f"dlq show {q} {job_id}",
        summary=f"Job `{job_id}` of `{q}`: {state}.",
        fields=fields,
        text=text,
        actions=[Action("Retry it", f"dlq retry {q} --job {job_id}")] if score is not None else [],
        data={"queue": q, "id": job_id, "state": state, "job": job},
    )


def _line(queue: str, job_id: str, record: dict[str, str]) -> str:
    return json.dumps({"queue": queue, "id": job_id, **public_record(record)}, ensure_ascii=False)


@command(
    "dlq export",
    summary="Every DLQ job of a queue as a JSON Lines file, secrets redacted.",
    args=QueueArgs,
    examples=("dlq export email",),
    slow=True,
)
async def dlq_export(ctx: Context, args: QueueArgs) -> Result:
    """All DLQ members, newest first, one JSON object per line."""
    target = await resolve(ctx, args.queue)
    q = target.name
    scan, lines = Scan(ctx, q, ctx.settings.config.dlq.min_attempts, mode="records"), []
    while not scan.done:
        lines += [_line(q, job_id, record) for job_id, _, record in await scan.next()]
    stamp = ctx.clock.now().strftime("%Y%m%d-%H%M%S")
    content = "".join(line + "\n" for line in lines).encode()
    return Result(
        f"dlq export {q}",
        summary=f"{len(lines):,} DLQ jobs of `{q}` exported (secrets redacted).",
        text=target.note,
        attachments=[Attachment(f"dlq-{q}-{stamp}.jsonl", content, f"DLQ of {q}")],
        data={"queue": q, "jobs": len(lines)},
    )


async def _retry_one(ctx: Context, q: str, job_id: str, dry_run: bool) -> Result:
    client = ctx.backends.redis()
    score, fields = await asyncio.gather(
        redis_call(ctx, client.zscore(key(q, "failed"), job_id)),
        redis_call(ctx, client.hmget(key(q, job_id), "atm", "attemptsMade", "opts")),
    )
    if score is None or int(fields[0] or fields[1] or 0) < ctx.settings.config.dlq.min_attempts:
        raise CommandError(f"Job `{job_id}` is not in the DLQ of `{q}`.")
    if dry_run:
        return Result(
            f"dlq retry {q} --job {job_id} --dry-run",
            summary=f"Would move job `{job_id}` back to waiting.",
        )
    moved = await retry_jobs(ctx, q, [(job_id, is_lifo(fields[2]))])
    if not moved:
        raise CommandError(f"Job `{job_id}` left the failed set meanwhile; nothing moved.")
    return Result(
        f"dlq retry {q} --job {job_id}",
        summary=f"Job `{job_id}` moved back to waiting.",
        data={"queue": q, "moved": moved},
    )


async def _retry_all(ctx: Context, q: str) -> tuple[int, int]:
    scan = Scan(ctx, q, ctx.settings.config.dlq.min_attempts, cutoff=_now_ms(ctx), fields=("opts",))
    moved = seen = windows = 0
    while not scan.done:
        rows = await scan.next()
        done = await retry_jobs(ctx, q, [(r[0], is_lifo(r[2])) for r in rows])
        scan.removed(len(done))
        moved, seen, windows = moved + len(done), seen + len(rows), windows + 1
        if windows % PROGRESS_EVERY == 0:
            await ctx.progress(f"Moved {moved:,} DLQ jobs of `{q}` back to waiting so far…")
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
        total, ids = await _page_ids(ctx, q, 0, 5)
        newest = "Newest: " + ", ".join(ids) if ids else ""
        return Result(
            f"dlq retry {q} --dry-run",
            summary=f"Would move {total:,} DLQ jobs of `{q}` back to waiting.",
            text="\n".join(filter(None, [target.note, newest])),
            data={"would_move": total, "newest": ids},
        )
    moved, skipped = await _retry_all(ctx, q)
    return Result(
        f"dlq retry {q}",
        summary=f"Moved {moved:,} DLQ jobs of `{q}` back to waiting"
        + (f"; {skipped:,} had changed meanwhile and were left alone." if skipped else "."),
        text=target.note,
        actions=[Action(f"Health of {q}", f"queue health {q}")],
        data={"queue": q, "moved": moved, "skipped": skipped},
    )


def _cutoff(ctx: Context, older_than: timedelta | None) -> int:
    return _now_ms(ctx) - int((older_than or timedelta(0)).total_seconds() * 1000)


async def clear_preview(ctx: Context, args: ClearArgs) -> Result:
    """The dry run of `dlq clear`: how many jobs would go, the oldest, the commonest reasons."""
    target = await resolve(ctx, args.queue)
    q = target.name
    scan = Scan(
        ctx,
        q,
        ctx.settings.config.dlq.min_attempts,
        cutoff=_cutoff(ctx, args.older_than),
        mode="reasons",
        fields=("finishedOn", "failedReason"),
        window=COUNT_WINDOW,
    )
    reasons: Counter[str] = Counter()
    oldest: int | None = None
    while not scan.done:
        for line, n in (await scan.next() or {}).items():
            reasons[first_line(line or None)] += n
        if scan.last.get("oldest"):
            oldest = min(int(scan.last["oldest"]), oldest or int(scan.last["oldest"]))
    total = sum(reasons.values())
    scope = f"failed more than {span(args.older_than)} ago" if args.older_than else "all of them"
    summary = (
        f"Would remove {total:,} DLQ jobs from `{q}` ({scope}), archiving each one first."
        if total
        else f"Nothing to remove: the DLQ of `{q}` has no such jobs."
    )
    return Result(
        f"dlq clear {q} --dry-run",
        Status.WARNING if total else Status.OK,
        summary=summary,
        text=target.note,
        fields=[
            ("Jobs", f"{total:,}"),
            ("Oldest failed", when(oldest)),
            ("Distinct reasons", f"{len(reasons):,}"),
        ],
        tables=[
            Table(["failure reason", "jobs"], [[r, f"{n:,}"] for r, n in reasons.most_common(10)])
        ],
        data={
            "queue": q,
            "would_remove": total,
            "oldest": oldest,
            "reasons": dict(reasons.most_common(10)),
        },
    )


class ClearStopped(BackendTimeout):
    """A timeout during `dlq clear`: the outcome of the window in flight is unknown."""

    def __init__(self, backend: str, seconds: float, message: str) -> None:
        super().__init__(backend, seconds)
        self.args = (message,)


def _stopped(exc: BackendError, q: str, removed: int, batch: uuid.UUID) -> Exception:
    message = (
        f"`dlq clear {q}` stopped after removing {removed:,} jobs: {exc}. The window in flight (at most "
        f"{BATCH} jobs) may or may not be removed; its jobs stay archived in batch {batch}. Nothing was "
        "retried: check `dlq list` before running `dlq clear` again."
    )
    if isinstance(exc, BackendTimeout):
        return ClearStopped(exc.backend, exc.seconds, message)
    return CommandError(message)


async def _settled(*awaitables: Awaitable[Any]) -> list[Any]:
    """Await all of them to the end; then raise the first failure, if any."""
    results = await asyncio.gather(*awaitables, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


@dataclass
class Clearing:
    """One `dlq clear` run: a window is archived while the previous one is removed and the next one read."""

    ctx: Context
    archive: Archive
    take: Take
    batch: uuid.UUID
    tally: Counter[str] = field(default_factory=Counter)

    async def run(self, window: Window) -> None:
        """Every window archived, then removed; a failure stops it and is never retried."""
        archived = Window([])
        while window.jobs or archived.jobs or not self.take.done:
            added, (left, upcoming) = await _settled(
                self.archive.add(self.batch, self.take.queue, window.jobs, self.take.form),
                drop_and_take(self.ctx, archived, self.take),
            )
            self.tally.update(archived=added)
            if archived.jobs:
                await self._count(archived, left)
            archived, window = window, upcoming

    async def _count(self, archived: Window, left: list[str]) -> None:
        if left:
            await self.archive.discard(self.batch, left)
        self.tally.update(removed=len(archived.jobs) - len(left), skipped=len(left), windows=1)
        if self.tally["windows"] % PROGRESS_EVERY == 0:
            await self.ctx.progress(
                f"Removed {self.tally['removed']:,} DLQ jobs of `{self.take.queue}` so far, "
                f"each archived first (batch {self.batch})…"
            )


@command(
    "dlq clear",
    summary="Remove DLQ jobs for good, each archived first; needs approval.",
    args=ClearArgs,
    role=Role.OPERATOR,
    risk=Risk.DESTRUCTIVE,
    preview=clear_preview,
    confirm=lambda args: args.queue,
    examples=("dlq clear email", "dlq clear email --older-than 2h", "dlq clear email --dry-run"),
    timeout=600,
)
async def dlq_clear(ctx: Context, args: ClearArgs) -> Result:
    """Archive every DLQ job's whole record, then remove the job and all its keys, in windows."""
    target = await resolve(ctx, args.queue)
    q = target.name
    if ctx.archive is None:
        raise CommandError("The job archive is unavailable, so nothing is removed.")
    started = ctx.clock.monotonic()
    take = Take(
        q,
        ctx.settings.config.dlq.min_attempts,
        _cutoff(ctx, args.older_than),
        await archive_format(ctx),
        window=BATCH,
    )
    first = await take_next(ctx, take)
    if not first.jobs and take.done:
        return Result(
            f"dlq clear {q}",
            summary=f"Nothing to remove: the DLQ of `{q}` has no such jobs.",
            text=target.note,
            data={"queue": q, "batch": None, "removed": 0, "skipped": 0},
        )
    batch = await ctx.archive.open_batch(q, reason="dlq clear", actor_id=ctx.actor.user_id)
    clearing = Clearing(ctx, ctx.archive, take, batch)
    tally = clearing.tally
    try:
        await clearing.run(first)
    except BackendError as exc:
        raise _stopped(exc, q, tally["removed"], batch) from exc
    seconds = ctx.clock.monotonic() - started
    skipped = (
        f"; {tally['skipped']:,} changed meanwhile (retried) and were left alone"
        if tally["skipped"]
        else ""
    )
    return Result(
        f"dlq clear {q}",
        summary=f"Removed {tally['removed']:,} DLQ jobs from `{q}` in {seconds:.1f} s"
        f"{skipped}. Archived in batch {batch}.",
        text=target.note,
        fields=[
            ("Removed", f"{tally['removed']:,} jobs"),
            ("Skipped", f"{tally['skipped']:,} jobs"),
            ("Duration", f"{seconds:.1f} s"),
            ("Archive batch", str(batch)),
        ],
        actions=[Action("Export archive", f"dlq archive-export {batch}")],
        data={
            "queue": q,
            "batch": str(batch),
            "removed": tally["removed"],
            "skipped": tally["skipped"],
            "seconds": round(seconds, 3),
        },
    )


@command(
    "dlq archive",
    summary="Recent archive batches: jobs removed by `dlq clear`, kept whole.",
    args=ArchiveArgs,
    examples=("dlq archive", "dlq archive email"),
)
async def dlq_archive(ctx: Context, args: ArchiveArgs) -> Result:
    """Archive batches, newest first: id, queue, jobs, when, who."""
    queue = alias(ctx, check_name(args.queue)).name if args.queue else None
    if ctx.archive is None:
        raise CommandError("The job archive is unavailable.")
    batches = await ctx.archive.batches(queue)
    rows = [
        [
            str(b.id),
            b.queue,
            f"{b.jobs:,}",
            b.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            f"<@{b.actor_id}>",
            b.reason,
        ]
        for b in batches
    ]
    where = f" of `{queue}`" if queue else ""
    return Result(
        "dlq archive",
        summary=f"{len(rows)} most recent archive batches{where}.",
        tables=[Table(["batch", "queue", "jobs", "when", "who", "why"], rows)] if rows else [],
        actions=[Action("Export newest", f"dlq archive-export {batches[0].id}")] if batches else [],
        data={
            "batches": [
                {
                    "id": r[0],
                    "queue": r[1],
                    "jobs": b.jobs,
                    "at": b.created_at.isoformat(),
                    "actor": b.actor_id,
                }
                for r, b in zip(rows, batches, strict=True)
            ]
        },
    )


@command(
    "dlq archive-export",
    summary="One archive batch as a JSON Lines file, secrets redacted.",
    args=BatchArgs,
    examples=("dlq archive-export 7d0c7a4e-1b1e-4c55-9d0e-3f5f8f2b8e11",),
)
async def dlq_archive_export(ctx: Context, args: BatchArgs) -> Result:
    """Every archived job of the batch, one JSON object per line."""
    try:
        batch = uuid.UUID(args.batch)
    except ValueError:
        raise CommandError(
            f"`{args.batch[:60]}` is not a batch id; `dlq archive` lists them."
        ) from None
    if ctx.archive is None:
        raise CommandError("The job archive is unavailable.")
    raw = await ctx.archive.export(batch)
    lines = [
        json.dumps(public_record(json.loads(line)), ensure_ascii=False)
        for line in raw.decode().splitlines()
    ]
    if not lines:
        raise CommandError(f"No archived jobs in batch {batch}.")
    content = "".join(line + "\n" for line in lines).encode()
    return Result(
        f"dlq archive-export {batch}",
        summary=f"{len(lines):,} archived jobs of batch {batch}.",
        attachments=[Attachment(f"archive-{batch}.jsonl", content, f"Archive batch {batch}")],
        data={"batch": str(batch), "jobs": len(lines)},
    )

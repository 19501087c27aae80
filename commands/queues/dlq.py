"""`dlq clear`: remove a queue's DLQ jobs for good, each archived first."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.core.args import Duration
from bot.core.context import Context
from bot.core.errors import BackendError, BackendTimeout, CommandError
from bot.core.registry import Risk, Role, command, option
from bot.core.result import Action, Result, Status, Table
from bot.core.scope import Scope
from bot.text.cells import Code, Text, plain, rich
from commands.queues.browse import PROGRESS_EVERY, QueueArgs, first_line, now_ms, span, when
from commands.queues.bullmq import BATCH, COUNT_WINDOW, Scan, resolve
from commands.queues.clear import (
    Take,
    Window,
    approved_cutoff,
    archive_format,
    drop,
    failed_after,
    take_next,
)

if TYPE_CHECKING:
    from bot.state.archive import Archive


READ_AHEAD = 2  # windows read and not yet archived: Redis reads on while the archive writes


class ClearArgs(QueueArgs):
    """Arguments of `dlq clear`."""

    older_than: Duration | None = option(
        help="only jobs that failed longer ago than this, e.g. 2h or 7d"
    )
    dry_run: bool = option(False, help="say what would be removed, remove nothing")


def _cutoff(ctx: Context, older_than: timedelta | None) -> int:
    return now_ms(ctx) - _span_ms(older_than)


def _span_ms(older_than: timedelta | None) -> int:
    return int((older_than or timedelta(0)).total_seconds() * 1000)


async def clear_preview(ctx: Context, args: ClearArgs) -> Result:
    """The dry run of `dlq clear`: how many jobs would go, the oldest, the commonest reasons."""
    target = await resolve(ctx, args.queue)
    q = target.name
    requested = now_ms(ctx)
    scan = Scan(
        ctx,
        q,
        ctx.settings.config.dlq.min_attempts,
        cutoff=requested - _span_ms(args.older_than),
        mode="reasons",
        fields=("finishedOn", "failedReason"),
        window=COUNT_WINDOW,
    )
    reasons: Counter[str] = Counter()
    oldest: int | None = None
    newest: list[Any] | None = None
    while not scan.done:
        for line, n in (await scan.next() or {}).items():
            reasons[first_line(line or None)] += n
        newest = newest or scan.last.get("newest") or None
        if scan.last.get("oldest"):
            oldest = min(int(scan.last["oldest"]), oldest or int(scan.last["oldest"]))
    total = sum(reasons.values())
    newest_ms = int(float(newest[1])) if newest else None
    scope = f"failed more than {span(args.older_than)} ago" if args.older_than else "all of them"
    summary = (
        rich(
            f"Would remove {total:,} DLQ jobs from ",
            Code(q),
            f" ({scope}), archiving each one first.",
        )
        if total
        else rich("Nothing to remove: the DLQ of ", Code(q), " has no such jobs.")
    )
    return Result(
        f"dlq clear {q} --dry-run",
        Status.WARNING if total else Status.OK,
        summary=summary,
        text=target.note,
        fields=[
            ("Jobs", f"{total:,}"),
            ("Oldest failed", when(oldest)),
            ("Newest failed", when(newest_ms)),
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
        scope=Scope.of(
            queue=q,
            jobs=total,
            requested_ms=requested,
            newest_id=newest[0] if newest else None,
            newest_score=newest_ms,
        ),
    )


class ClearStopped(BackendTimeout):
    """A timeout during `dlq clear`: the outcome of the window in flight is unknown."""

    def __init__(self, backend: str, seconds: float, message: Text) -> None:
        super().__init__(backend, seconds)
        self.args, self.text = (plain(message),), message


def _stopped(exc: BackendError, q: str, removed: int, batch: uuid.UUID) -> Exception:
    message = rich(
        Code(f"dlq clear {q}"),
        f" stopped after removing {removed:,} jobs: {exc}. The window in flight "
        f"(at most {BATCH} jobs) may or may not be removed; it, and any archived after it (still "
        f"in the queue), stay archived in batch {batch}. Nothing was retried: check ",
        Code("dlq list"),
        " before running ",
        Code("dlq clear"),
        " again.",
    )
    if isinstance(exc, BackendTimeout):
        return ClearStopped(exc.backend, exc.seconds, message)
    return CommandError(message)


async def _ended(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the tasks until each has ended: asyncpg can turn a cancelled COPY into its own
    error, which a stage then waits to hand on to a stage that is gone."""
    while pending := [t for t in tasks if not t.done()]:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=0.1)
    await asyncio.gather(*tasks, return_exceptions=True)


Stage = Window | Exception | None  # a window, or how the stage before it ended: failed, or None


@dataclass
class Clearing:
    """One `dlq clear` run in three stages at once: windows are read ahead, archived one by one,
    and each archived one removed, so Redis need not wait for the archive. A stage that
    fails hands its failure on behind the windows it finished: what was archived is removed,
    then the failure is raised. Nothing is retried."""

    ctx: Context
    archive: Archive
    take: Take
    batch: uuid.UUID
    tally: Counter[str] = field(default_factory=Counter)

    async def run(self, first: Window) -> None:
        """Every window archived, then removed; a failure is raised once the stages stop."""
        read: asyncio.Queue[Stage] = asyncio.Queue(READ_AHEAD)
        archived: asyncio.Queue[Stage] = asyncio.Queue(1)
        stages = [
            asyncio.create_task(self._read(first, read)),
            asyncio.create_task(self._archive(read, archived)),
        ]
        try:
            await self._remove(archived)
        finally:
            await _ended(stages)

    async def _read(self, window: Window, out: asyncio.Queue[Stage]) -> None:
        try:
            await out.put(window)
            while not self.take.done:
                await out.put(await take_next(self.ctx, self.take))
        except Exception as exc:
            await out.put(exc)
            return
        await out.put(None)

    async def _archive(self, windows: asyncio.Queue[Stage], out: asyncio.Queue[Stage]) -> None:
        while isinstance(window := await windows.get(), Window):
            if not window.jobs:
                continue
            try:
                added = await self.archive.add(
                    self.batch, self.take.queue, window.jobs, self.take.form
                )
            except Exception as exc:
                await out.put(exc)
                return
            self.tally.update(archived=added)
            await out.put(window)
        await out.put(window)

    async def _remove(self, windows: asyncio.Queue[Stage]) -> None:
        while isinstance(window := await windows.get(), Window):
            await self._count(window, await drop(self.ctx, self.take.queue, window))
        if window is not None:
            raise window

    async def _count(self, archived: Window, left: list[str]) -> None:
        if left:
            await self.archive.discard(self.batch, left)
        self.tally.update(removed=len(archived.jobs) - len(left), skipped=len(left), windows=1)
        if self.tally["windows"] % PROGRESS_EVERY == 0:
            await self.ctx.progress(
                rich(
                    f"Removed {self.tally['removed']:,} DLQ jobs of ",
                    Code(self.take.queue),
                    f" so far, each archived first (batch {self.batch})…",
                )
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
    if_unknown="the archive batch it opened (dlq archive <queue>: how many jobs it holds) and the "
    "queue's counts (queue health <queue>): jobs archived there were removed or are about to be; "
    "request it again only for what is still in the DLQ.",
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
        approved_cutoff(ctx.scope, _cutoff(ctx, args.older_than)),
        await archive_format(ctx),
        window=BATCH,
    )
    first = await take_next(ctx, take)
    if not first.jobs and take.done:
        later = await _later(ctx, take)
        return Result(
            f"dlq clear {q}",
            summary=rich(
                "Nothing to remove: the DLQ of ", Code(q), " has no such jobs.", _untouched(later)
            ),
            text=target.note,
            data={"queue": q, "batch": None, "removed": 0, "skipped": 0, "failed_after": later},
        )
    batch = await ctx.archive.open_batch(q, reason="dlq clear", actor_id=ctx.actor.user_id)
    clearing = Clearing(ctx, ctx.archive, take, batch)
    tally = clearing.tally
    try:
        await clearing.run(first)
    except BackendError as exc:
        raise _stopped(exc, q, tally["removed"], batch) from exc
    seconds = ctx.clock.monotonic() - started
    later = await _later(ctx, take)
    skipped = (
        f"; {tally['skipped']:,} changed meanwhile (retried) and were left alone"
        if tally["skipped"]
        else ""
    )
    return Result(
        f"dlq clear {q}",
        summary=rich(
            f"Removed {tally['removed']:,} DLQ jobs from ",
            Code(q),
            f" in {seconds:.1f} s{skipped}. Archived in batch {batch}.",
            _untouched(later),
        ),
        text=target.note,
        fields=[
            ("Removed", f"{tally['removed']:,} jobs"),
            ("Skipped", f"{tally['skipped']:,} jobs"),
            *([("Failed after the request", f"{later:,} jobs, not touched")] if later else []),
            ("Duration", f"{seconds:.1f} s"),
            ("Archive batch", str(batch)),
        ],
        actions=[Action("Export archive", f"dlq archive-export {batch}")],
        data={
            "queue": q,
            "batch": str(batch),
            "removed": tally["removed"],
            "skipped": tally["skipped"],
            "failed_after": later,
            "seconds": round(seconds, 3),
        },
    )


async def _later(ctx: Context, take: Take) -> int | None:
    """With an approved scope: the DLQ jobs that failed after the request (None without one)."""
    if ctx.scope is None:
        return None
    since = int(ctx.scope["requested_ms"])  # type: ignore[arg-type]
    return await failed_after(ctx, take.queue, take.min_attempts, since)


def _untouched(later: int | None) -> str:
    if not later:
        return ""
    return f" {later:,} {'job' if later == 1 else 'jobs'} failed after the request; not touched."

"""`dlq list|show|export`: read a queue's DLQ; the helpers the other `dlq` commands share."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.core.context import Context
from bot.core.errors import CommandError
from bot.core.paging import Page, page_option
from bot.core.registry import Args, command, option, positional
from bot.core.result import Action, Attachment, Result, Status, Table
from bot.text.cells import Code, Pre, Strong, lines, rich
from bot.text.redact import redact
from commands.queues.bullmq import (
    COUNT_WINDOW,
    Scan,
    attempts_allowed,
    check_job_id,
    key,
    public_record,
    records,
    resolve,
)

PROGRESS_EVERY = 20


class QueueArgs(Args):
    """A queue name."""

    queue: str = positional(help='the queue, e.g. "email"')


class ListArgs(QueueArgs):
    """Arguments of `dlq list`."""

    limit: int = option(20, ge=1, le=100, help="jobs per page, 1 to 100")
    page: int = page_option()


class ShowArgs(QueueArgs):
    """Arguments of `dlq show`."""

    job: str = positional(help="the job id, as dlq list shows it")


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


def now_ms(ctx: Context) -> int:
    """The clock's now in milliseconds, as BullMQ stamps jobs."""
    return int(ctx.clock.now().timestamp() * 1000)


async def page_ids(ctx: Context, queue: str, start: int, limit: int) -> tuple[int, list[str]]:
    """The DLQ size and the ids of `limit` members from `start`, newest first."""
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
    total, ids = await page_ids(ctx, q, start, args.limit)
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
    page = Page(args.page, args.limit, total)
    summary = rich(
        "DLQ of ",
        Code(q),
        f": {total:,} jobs (failed after ≥ {ctx.settings.config.dlq.min_attempts} attempts); "
        f"page {args.page} of {page.pages}, newest first.",
    )
    actions = []
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
        page=page,
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
        ctx.backends.kv.call(client.type(key(q, job_id))),
        ctx.backends.kv.call(client.zscore(key(q, "failed"), job_id)),
    )
    if kind != "hash":
        raise CommandError(rich("No job ", Code(job_id), " in ", Code(q), "."))
    job = public_record((await records(ctx, q, [job_id]))[0])
    made = int(job.get("atm") or job.get("attemptsMade") or 0)
    state = (
        ("in the DLQ" if made >= ctx.settings.config.dlq.min_attempts else "failed, not in the DLQ")
        if score is not None
        else "not failed"
    )
    stack = job.get("stacktrace") if isinstance(job.get("stacktrace"), list) else []
    trace = "\n".join((stack[-1] if stack else "").splitlines()[:8])
    text = lines(
        target.note or None,
        rich(Strong("Reason:"), " ", first_line(str(job.get("failedReason", "")), 300)),
        rich(Strong("Data:"), "\n", Pre(json.dumps(job.get("data"), indent=2)[:1500])),
        rich(Strong("Stack trace:"), "\n", Pre(trace)) if trace else None,
    )
    opts = job.get("opts")
    opts = opts if isinstance(opts, dict) else {}
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
        summary=rich("Job ", Code(job_id), " of ", Code(q), f": {state}."),
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
        summary=rich(f"{len(lines):,} DLQ jobs of ", Code(q), " exported (secrets redacted)."),
        text=target.note,
        attachments=[Attachment(f"dlq-{q}-{stamp}.jsonl", content, f"DLQ of {q}")],
        data={"queue": q, "jobs": len(lines)},
    )

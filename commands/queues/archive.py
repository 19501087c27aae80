"""`dlq archive|archive-export`: the batches `dlq clear` archived, listed and exported."""

from __future__ import annotations

import json
import uuid
from datetime import UTC

from bot.core.context import Context
from bot.core.errors import CommandError
from bot.core.registry import Args, command, positional
from bot.core.result import Action, Attachment, Result, Table
from bot.text.cells import Code, Text, User, rich
from commands.queues.bullmq import alias, check_name, public_record


class ArchiveArgs(Args):
    """Arguments of `dlq archive`."""

    queue: str | None = positional(None, help="only batches of this queue")


class BatchArgs(Args):
    """Arguments of `dlq archive-export`."""

    batch: str = positional(help="the batch id that dlq archive lists")


@command(
    "dlq archive",
    summary="Recent archive batches: jobs removed by dlq clear, kept whole.",
    args=ArchiveArgs,
    examples=("dlq archive", "dlq archive email"),
)
async def dlq_archive(ctx: Context, args: ArchiveArgs) -> Result:
    """Archive batches, newest first: id, queue, jobs, when, who."""
    queue = alias(ctx, check_name(args.queue)).name if args.queue else None
    if ctx.archive is None:
        raise CommandError("The job archive is unavailable.")
    batches = await ctx.archive.batches(queue)
    rows: list[list[Text]] = [
        [
            str(b.id),
            b.queue,
            f"{b.jobs:,}",
            b.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            User(b.actor_id),
            b.reason,
        ]
        for b in batches
    ]
    where = rich(" of ", Code(queue)) if queue else ""
    return Result(
        "dlq archive",
        summary=rich(f"{len(rows)} most recent archive batches", where, "."),
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
            rich(Code(args.batch[:60]), " is not a batch id; ", Code("dlq archive"), " lists them.")
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

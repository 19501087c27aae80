"""`approvals`: destructive requests waiting for a second person."""

from __future__ import annotations

from bot.approvals.store import ApprovalStore
from bot.core.cells import Channel, Code, Text, User
from bot.core.context import Context
from bot.core.paging import Paged, page_of
from bot.core.registry import command
from bot.core.result import Result, Table


@command(
    "approvals",
    summary="Destructive requests waiting for a second person's approval.",
    args=Paged,
    examples=("approvals", "approvals --page 2"),
)
async def approvals(ctx: Context, args: Paged) -> Result:
    """Pending requests, oldest first, with who asked and when they expire."""
    every = await ApprovalStore(ctx.store, ctx.settings.config.timeouts.backend).pending()
    pending, page = page_of(every, args.page)
    now = ctx.clock.now()
    rows: list[list[Text]] = [
        [
            Code(a.short_id),
            Code(a.text),
            User(a.requester_id),
            Channel(a.channel_id),
            f"{max(0, int((a.expires_at - now).total_seconds() // 60))} min",
        ]
        for a in pending
    ]
    summary = f"{len(every)} pending request{'s' if len(every) != 1 else ''}."
    return Result(
        "approvals",
        summary=summary if pending else "No destructive request is waiting for approval.",
        page=page,
        tables=[Table(["request", "command", "requested by", "channel", "expires in"], rows)]
        if rows
        else [],
        data={
            "pending": [
                {
                    "id": str(a.id),
                    "command": a.text,
                    "requester": a.requester_id,
                    "expires_at": a.expires_at.isoformat(),
                }
                for a in pending
            ]
        },
    )

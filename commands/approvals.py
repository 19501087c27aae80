"""`approvals`: destructive requests waiting for a second person."""

from __future__ import annotations

from bot.approvals.store import ApprovalStore
from bot.core.cells import Channel, Code, User
from bot.core.context import Context
from bot.core.registry import NoArgs, command
from bot.core.result import Result, Table


@command(
    "approvals",
    summary="Destructive requests waiting for a second person's approval.",
    examples=("approvals",),
)
async def approvals(ctx: Context, _: NoArgs) -> Result:
    """Pending requests, oldest first, with who asked and when they expire."""
    pending = await ApprovalStore(ctx.store, ctx.settings.config.timeouts.backend).pending()
    now = ctx.clock.now()
    rows = [
        [
            Code(a.short_id),
            Code(a.text),
            User(a.requester_id),
            Channel(a.channel_id),
            f"{max(0, int((a.expires_at - now).total_seconds() // 60))} min",
        ]
        for a in pending
    ]
    summary = f"{len(pending)} pending request{'s' if len(pending) != 1 else ''}."
    return Result(
        "approvals",
        summary=summary if pending else "No destructive request is waiting for approval.",
        tables=[Table(["request", "command", "requested by", "channel", "expires in"], rows)]
        if rows
        else [],
        data={
            "pending": [
                {
                    "id": str(a.id),
                    "command": a.text,
                    "requester": a.requester_id,
                    "channel": a.channel_id,
                    "expires_at": a.expires_at.isoformat(),
                }
                for a in pending
            ]
        },
    )

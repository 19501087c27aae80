"""`approvals`: destructive requests awaiting a second person, and those with an unknown outcome."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from bot.core.context import Context
from bot.core.paging import Paged, page_of
from bot.core.registry import command
from bot.core.result import Result, Status, Table
from bot.text.cells import Channel, Code, Text, Time, User, join, rich

if TYPE_CHECKING:
    from bot.approvals.store import Approval

UNKNOWN_SHOWN_FOR = timedelta(days=7)


@command(
    "approvals",
    summary="Destructive requests waiting for a second person's approval, and approved ones "
    "whose outcome is unknown.",
    args=Paged,
    examples=("approvals", "approvals --page 2"),
)
async def approvals(ctx: Context, args: Paged) -> Result:
    """Pending requests, oldest first, a page at a time; then executions of the last week whose
    outcome is unknown."""
    from bot.approvals.store import ApprovalStore

    store = ApprovalStore(ctx.store, ctx.settings.config.timeouts.backend)
    every = await store.pending()
    pending, page = page_of(every, args.page)
    unknown = await store.unknown(UNKNOWN_SHOWN_FOR)
    tables = [_pending_table(ctx, pending)] if pending else []
    tables += [_unknown_table(unknown)] if unknown else []
    return Result(
        "approvals",
        Status.WARNING if unknown else Status.OK,
        summary=_summary(every, unknown),
        page=page,
        tables=tables,
        text=join("\n", [rich(Code(a.short_id), " ", a.outcome or "") for a in unknown]),
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
            ],
            "outcome_unknown": [
                {
                    "id": str(a.id),
                    "command": a.text,
                    "approver": a.decided_by,
                    "stopped_at": a.finished_at.isoformat() if a.finished_at else None,
                    "check": a.outcome,
                }
                for a in unknown
            ],
        },
    )


def _summary(pending: list[Approval], unknown: list[Approval]) -> str:
    waiting = (
        f"{len(pending)} pending request{'s' if len(pending) != 1 else ''}."
        if pending
        else "No destructive request is waiting for approval."
    )
    if not unknown:
        return waiting
    return (
        f"{waiting} {len(unknown)} approved execution{'s' if len(unknown) != 1 else ''} "
        "stopped with an unknown outcome: check before requesting again."
    )


def _pending_table(ctx: Context, pending: list[Approval]) -> Table:
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
    return Table(["request", "command", "requested by", "channel", "expires in"], rows)


def _unknown_table(unknown: list[Approval]) -> Table:
    rows: list[list[Text]] = [
        [
            Code(a.short_id),
            Code(a.text),
            User(a.decided_by) if a.decided_by else "",
            Time(a.finished_at) if a.finished_at else "",
        ]
        for a in unknown
    ]
    return Table(["request", "command", "approved by", "stopped"], rows, "Outcome unknown")

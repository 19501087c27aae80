"""`backup schedule`: show or set the nightly backup time, or turn it off."""

from __future__ import annotations

import re
from datetime import time

from bot.core.context import Context
from bot.core.errors import CommandError
from bot.core.registry import Args, Risk, Role, command, positional
from bot.core.result import Result
from bot.text.cells import Channel, Code, rich
from commands.backup.catalog import Catalog, Entry
from commands.backup.schedule import describe, load, save


class ScheduleArgs(Args):
    """Arguments of `backup schedule`."""

    when: str | None = positional(
        None, help="HH:MM (UTC, daily) or off; default: show the schedule"
    )


def _parse_time(text: str) -> time | None:
    if text.lower() == "off":
        return None
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", text):
        raise CommandError(
            rich(
                Code(text[:20]),
                " is not a time: give ",
                Code("HH:MM"),
                " in UTC (e.g. ",
                Code("02:00"),
                ") or ",
                Code("off"),
                ".",
            )
        )
    return time(int(text[:2]), int(text[3:]))


@command(
    "backup schedule",
    summary="Show or set the nightly backup time (HH:MM UTC) or turn it off.",
    args=ScheduleArgs,
    role=Role.OPERATOR,
    risk=Risk.WRITE,
    examples=("backup schedule", "backup schedule 02:00", "backup schedule off"),
)
async def backup_schedule(ctx: Context, args: ScheduleArgs) -> Result:
    """Stored in the state store; every forge process reads it, one runs each night's backup."""
    pool, timeout = await ctx.store.pool(), ctx.settings.config.timeouts.backend
    if args.when is not None:
        await save(pool, timeout, _parse_time(args.when), ctx.actor.user_id, ctx.clock.now())
    status, summary = describe(await load(pool, timeout), await _newest(ctx), ctx.clock.now())
    channel = ctx.settings.config.channels.alerts
    where = (
        rich("Outcomes are posted to ", Channel(channel), ".")
        if channel
        else "No alerts channel is configured: outcomes are only logged."
    )
    return Result(
        "backup schedule",
        status,
        summary=rich(summary, " ", where),
        data={"alerts_channel": channel},
    )


async def _newest(ctx: Context) -> Entry | None:
    entries = await Catalog(ctx).live(1)
    return entries[0] if entries else None

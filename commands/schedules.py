"""`schedule add|list|remove|run`: read commands that report on a clock, as their creator."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import field_validator, model_validator

from bot.core.args import Duration
from bot.core.context import Context
from bot.core.errors import CommandError, ForgeError
from bot.core.parser import Parsed, parse
from bot.core.registry import Args, Risk, Role, command, option, positional
from bot.core.result import Result, Status, Table
from bot.schedules.slots import When, every_seconds, parse_at, parse_days
from bot.text.cells import Channel, Code, Text, User, rich

if TYPE_CHECKING:
    from bot.schedules.store import Schedule, ScheduleStore

CHANNEL = re.compile(r"<?#?([CG][A-Z0-9]{2,20})(?:\|[^>]*)?>?")
SCHEDULE_ID = re.compile(r"#?(\d{1,12})")


class AddArgs(Args):
    """Arguments of `schedule add`."""

    command: str = positional(help='the read command to run, quoted: "verify"')
    every: Duration | None = option(help="run every 15m, 1h or 1d (1m to 7d)")
    at: str | None = option(help="run at this UTC time, HH:MM")
    days: str | None = option(help="with --at, the days: mon-fri, sat,sun (default every day)")
    channel: str | None = option(help="post to this channel (default: this one)")
    on_change: bool = option(False, help="post only when the status differs from the last run's")

    @field_validator("every")
    @classmethod
    def _every(cls, value: timedelta | None) -> timedelta | None:
        if value is not None:
            every_seconds(value)  # raises ValueError with the reason
        return value

    @field_validator("at")
    @classmethod
    def _at(cls, value: str | None) -> str | None:
        if value is not None:
            parse_at(value)  # raises ValueError with the reason
        return value

    @field_validator("days")
    @classmethod
    def _days(cls, value: str | None) -> str | None:
        if value is not None:
            parse_days(value)  # raises ValueError with the reason
        return value

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        if value is not None and not CHANNEL.fullmatch(value):
            raise ValueError("expected a channel ID such as C012ABC")
        return value

    @model_validator(mode="after")
    def _one_clock(self) -> AddArgs:
        if (self.every is None) == (self.at is None):
            raise ValueError("Give either --every (15m, 1h, 1d) or --at HH:MM")
        if self.days is not None and self.at is None:
            raise ValueError("--days goes with --at")
        return self


class IdArgs(Args):
    """A schedule's id, as `schedule list` shows it."""

    id: str = positional(help="the schedule's id, e.g. 3")

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not SCHEDULE_ID.fullmatch(value):
            raise ValueError("expected a schedule id such as 3")
        return value.lstrip("#")


def schedules(ctx: Context) -> ScheduleStore:
    """The schedule store for this request."""
    from bot.schedules.store import ScheduleStore

    return ScheduleStore(ctx.store, ctx.settings.config.timeouts.backend)


def readable(ctx: Context, text: str) -> Parsed:
    """The scheduled command, parsed; refused unless it only reads and the creator may run it."""
    try:
        parsed = parse(text, ctx.registry)
    except ForgeError as exc:
        raise CommandError(rich("The command to schedule does not parse: ", exc.text)) from None
    spec = parsed.spec
    if spec.words[0] == "schedule":
        raise CommandError("A schedule cannot run schedule commands.")
    risk = spec.risk_for(parsed.args)
    if risk is not Risk.READ:
        raise CommandError(
            rich("Only read commands may be scheduled; ", Code(spec.name), f" is a {risk.value}.")
        )
    if not ctx.actor.may(spec.role):
        raise CommandError(
            rich(Code(spec.name), f" needs the {spec.role.label} role, so you cannot schedule it.")
        )
    return parsed


@command(
    "schedule add",
    summary="Run a read command on a clock and post its result (as you, re-checked each run).",
    args=AddArgs,
    role=Role.OPERATOR,
    risk=Risk.WRITE,
    examples=(
        'schedule add "verify" --at 09:00',
        'schedule add "queue health" --every 1h --on-change',
        'schedule add "db slow" --at 08:30 --days mon-fri --channel C0OPS',
    ),
)
async def schedule_add(ctx: Context, args: AddArgs) -> Result:
    """Store the schedule; its first slot is the next one to come."""
    from bot.schedules.store import NewSchedule

    parsed = readable(ctx, args.command)
    channel = _channel(ctx, args.channel)
    new = NewSchedule(
        parsed.text,
        every_seconds(args.every) if args.every else None,
        parse_at(args.at) if args.at else None,
        parse_days(args.days) if args.days else (1, 2, 3, 4, 5, 6, 7),
        channel,
        args.on_change,
        ctx.actor.user_id,
    )
    now = ctx.clock.now()
    schedule_id = await schedules(ctx).add(new, now)
    when = When(now, new.every_seconds, new.at_time, new.days)
    quiet = " when its status changes" if args.on_change else ""
    return Result(
        "schedule add",
        summary=rich(
            f"Schedule #{schedule_id}: ",
            Code(parsed.text),
            f" {when.describe()}, posted to ",
            Channel(channel),
            f"{quiet}; first run {when.next(now):%Y-%m-%d %H:%M} UTC.",
        ),
        data={"id": schedule_id, "command": parsed.text, "channel": channel},
    )


def _channel(ctx: Context, given: str | None) -> str:
    found = CHANNEL.fullmatch(given) if given else None
    channel = found[1] if found else ctx.channel_id
    if not channel or not re.fullmatch(r"[CG][A-Z0-9]{2,20}", channel):
        raise CommandError(rich("Say where to post: ", Code("--channel C012ABC"), "."))
    return channel


@command(
    "schedule list",
    summary="Scheduled reports: what runs when, where, as whom, and how the last run ended.",
    examples=("schedule list",),
)
async def schedule_list(ctx: Context, _: Any) -> Result:
    """Every schedule, oldest first; paused ones say why."""
    found = await schedules(ctx).all()
    paused = [s for s in found if s.paused_at]
    summary = f"{len(found)} schedule{'s' if len(found) != 1 else ''}" + (
        f", {len(paused)} paused." if paused else "."
    )
    return Result(
        "schedule list",
        Status.WARNING if paused else Status.OK,
        summary=summary if found else "Nothing is scheduled.",
        tables=[
            Table(
                ["id", "command", "when", "channel", "runs as", "posts", "state", "last run"],
                [_row(s) for s in found],
            )
        ]
        if found
        else [],
        data={"schedules": [{"id": s.id, "command": s.command} for s in found]},
    )


def _row(s: Schedule) -> list[Text]:
    state: Text = f"paused: {s.paused_reason}" if s.paused_at else "active"
    last = f"{s.last_run_at:%Y-%m-%d %H:%M} {s.last_status}" if s.last_run_at else "—"
    return [
        f"#{s.id}",
        Code(s.command),
        s.when.describe(),
        Channel(s.channel_id),
        User(s.creator_id),
        "on change" if s.on_change else "every run",
        state,
        last,
    ]


@command(
    "schedule remove",
    summary="Stop a scheduled report for good.",
    args=IdArgs,
    role=Role.OPERATOR,
    risk=Risk.WRITE,
    examples=("schedule remove 3",),
)
async def schedule_remove(ctx: Context, args: IdArgs) -> Result:
    """Delete the schedule."""
    if not await schedules(ctx).remove(int(args.id)):
        raise CommandError(f"No schedule #{args.id}; schedule list shows them.")
    return Result("schedule remove", summary=f"Schedule #{args.id} removed.")


@command(
    "schedule run",
    summary="Run a scheduled report now, as its creator, posting where it posts.",
    args=IdArgs,
    role=Role.OPERATOR,
    risk=Risk.WRITE,
    examples=("schedule run 3",),
)
async def schedule_run(ctx: Context, args: IdArgs) -> Result:
    """Ask the scheduler (one process of all) to run it at its next look, within seconds."""
    store = schedules(ctx)
    found = await store.get(int(args.id))
    if found is None:
        raise CommandError(f"No schedule #{args.id}; schedule list shows them.")
    if found.paused_at is not None:
        raise CommandError(
            rich(f"Schedule #{args.id} is paused ({found.paused_reason}); add it again.")
        )
    await store.request_run(found.id, ctx.actor.user_id, ctx.clock.now())
    return Result(
        "schedule run",
        summary=rich(
            f"Schedule #{found.id} (",
            Code(found.command),
            ") runs within seconds, as ",
            User(found.creator_id),
            ", and posts to ",
            Channel(found.channel_id),
            ".",
        ),
    )

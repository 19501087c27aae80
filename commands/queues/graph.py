"""`queue graph`: waiting, active, failed, DLQ and lag of one queue over a window, as a picture
from Prometheus's range queries of the `crm_queue_*` gauges forge exports."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import field_validator
from pydantic_core import PydanticCustomError

from bot.backends.prometheus import Series, label_value, step_for
from bot.core.args import Duration
from bot.core.context import Context
from bot.core.errors import BackendError
from bot.core.registry import Args, Risk, Role, command, option, positional
from bot.core.result import Attachment, Result, Status
from bot.text.cells import Code, Pre, Text, lines, rich
from bot.text.redact import redact
from bot.text.trend import change, direction, jobs
from bot.text.units import duration
from commands.queues import samples
from commands.queues.bullmq import resolve, snapshot

if TYPE_CHECKING:
    from bot.graphs.spec import Figure

LAG_WARN_S = 300


@dataclass(frozen=True)
class Gauge:
    """One plotted gauge: its legend label, metric, level and unit."""

    key: str
    label: str
    metric: str
    level: str


GAUGES = (
    Gauge("dlq", "DLQ", "crm_queue_jobs_dlq_total", "critical"),
    Gauge("failed", "failed", "crm_queue_failed", "warning"),
    Gauge("waiting", "waiting", "crm_queue_waiting", "info"),
    Gauge("active", "active", "crm_queue_active", "ok"),
    Gauge("lag", "lag", "crm_queue_lag_seconds", "warning"),
)


class GraphArgs(Args):
    """Arguments of `queue graph`."""

    queue: str = positional(help='the queue, e.g. "email" (runbook aliases work too)')
    window: Duration = option(timedelta(hours=6), help="how far back, e.g. 40m, 6h, 2d (5m to 7d)")

    @field_validator("window")
    @classmethod
    def _bounded(cls, window: timedelta) -> timedelta:
        if not timedelta(minutes=5) <= window <= timedelta(days=7):
            raise PydanticCustomError("window", "the window must be between 5m and 7d")
        return window


Data = dict[str, tuple[list[float], list[float]]]


async def fetch(ctx: Context, queue: str, window: timedelta) -> tuple[Data, float]:
    """Each gauge's times and values over the window (one range query each), and the step."""
    end = ctx.clock.now()
    step = step_for(window, ctx.settings.config.graphs.sample_seconds)
    matcher = "{queue=" + label_value(queue) + "}"
    found: list[list[Series]] = await asyncio.gather(
        *(
            ctx.backends.prom.range(f"max({g.metric}{matcher})", end - window, end, step)
            for g in GAUGES
        )
    )
    return {
        g.key: (list(s[0].times), list(s[0].values)) if s else ([], [])
        for g, s in zip(GAUGES, found, strict=True)
    }, step


def figure(queue: str, data: Data, start: float, end: float) -> Figure:
    """Jobs in one panel, lag in minutes (or seconds) in another with the 5-minute threshold."""
    from bot.graphs.spec import Figure, Line, Panel

    counted = tuple(
        Line(g.label, tuple(data[g.key][0]), tuple(data[g.key][1]), g.level)
        for g in GAUGES
        if g.key != "lag"
    )
    lag_t, lag_v = data["lag"]
    scale, unit = (60.0, "minutes") if max(lag_v, default=0) >= 120 else (1.0, "seconds")
    lag = Line("lag of the oldest waiting job", tuple(lag_t), tuple(v / scale for v in lag_v))
    return Figure(
        "queue",
        f"Queue {queue}: jobs and lag, {duration(end - start)} to {_utc(end)}",
        start,
        end,
        (Panel("Jobs", "jobs", counted), Panel("Lag", unit, (lag,), threshold=LAG_WARN_S / scale)),
    )


def _utc(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M UTC")


def summary(data: Data) -> str:
    """The trend in one line: what moved and how fast, and where lag stands."""
    parts = [
        change(g.label, *data[g.key], jobs) for g in GAUGES if g.key != "lag" and data[g.key][1]
    ]
    lag_t, lag_v = data["lag"]
    if lag_v and lag_v[-1] > 0:
        parts.append(f"lag {duration(lag_v[-1])} and {direction(lag_t, lag_v)}")
    return "; ".join(p for p in parts if p) or "Steady: nothing moved over the window"


def sparklines(data: Data) -> str:
    """One sparkline per gauge, with its first and last value."""
    from bot.graphs.sparkline import sparkline

    rows = []
    for g in GAUGES:
        values = data[g.key][1]
        fmt = duration if g.key == "lag" else jobs
        ends = f"{fmt(values[0])} → {fmt(values[-1])}" if values else ""
        rows.append(f"{g.label:<8} {sparkline(values)}  {ends}".rstrip())
    return "\n".join(rows)


def status(data: Data) -> Status:
    """Warning while jobs sit in the DLQ or the oldest waiting job is over 5 minutes old."""
    dlq, lag = data["dlq"][1], data["lag"][1]
    bad = (dlq and dlq[-1] > 0) or (lag and lag[-1] > LAG_WARN_S)
    return Status.WARNING if bad else Status.OK


@command(
    "queue graph",
    summary="A picture of one queue's waiting, active, failed, DLQ and lag over a window.",
    args=GraphArgs,
    role=Role.VIEWER,
    risk=Risk.READ,
    examples=("queue graph email", "queue graph email --window 40m"),
    timeout=45.0,
)
async def queue_graph(ctx: Context, args: GraphArgs) -> Result:
    """Prometheus's history of the queue as a PNG and a trend line; sparklines when it is down."""
    from bot.graphs.pool import GraphError, render  # the drawing side loads with the first graph

    target = await resolve(ctx, args.queue)
    q, seconds = target.name, args.window.total_seconds()
    try:
        data, step = await fetch(ctx, q, args.window)
    except BackendError as exc:
        return await _fallback(ctx, q, args.window, _unreachable(ctx, exc))
    if not any(values for _, values in data.values()):
        return Result(
            "queue graph",
            Status.WARNING,
            summary=rich(
                "Prometheus holds no samples of ",
                Code(q),
                f"'s gauges over the last {duration(seconds)}: is it scraping forge's /metrics?",
            ),
        )
    end = ctx.clock.now().timestamp()
    result = Result(
        "queue graph",
        status(data),
        summary=rich(Code(q), f": {summary(data)}."),
        data={"queue": q, "window_s": seconds, "step_s": step, "points": _points(data)},
    )
    try:
        png = await render(figure(q, data, end - seconds, end))
    except GraphError as exc:
        result.text = lines(f"No picture: {exc}.", Pre(sparklines(data)))
        return result
    result.attachments.append(Attachment(f"queue-{q}.png", png, f"Queue {q}"))
    if ctx.actor.source == "cli":
        result.text = Pre(sparklines(data))
    return result


def _points(data: Data) -> dict[str, int]:
    return {key: len(values) for key, (_, values) in data.items()}


def _unreachable(ctx: Context, exc: BackendError) -> str:
    url = redact(ctx.settings.env.prometheus_url)
    return f"No picture: Prometheus at {url} could not answer ({exc.detail})"


async def _fallback(ctx: Context, q: str, window: timedelta, why: str) -> Result:
    """Sparklines from forge's own readings of Redis, with the reason there is no picture."""
    now = ctx.clock.now().timestamp()
    redis = ctx.settings.env.redis_url.get_secret_value()
    samples.record(redis, await snapshot(ctx, [q], ctx.settings.config.dlq.min_attempts), now)
    kept = samples.kept(redis, q, now - window.total_seconds())
    data: Data = {
        g.key: ([s.at for s in kept], [float(getattr(s, g.key)) for s in kept]) for g in GAUGES
    }
    since = duration(now - kept[0].at) if len(kept) > 1 else "this moment"
    note: Text = f"{why}. These sparklines are forge's own {len(kept)} readings of Redis ({since})."
    return Result(
        "queue graph",
        status(data),
        summary=rich(Code(q), f": {summary(data)}."),
        text=lines(note, Pre(sparklines(data))),
        data={"queue": q, "fallback": why, "points": _points(data)},
    )

"""`perf --graph`: CPU, resident memory, event-loop lag, HTTP p95 and 5xx ratio over the window,
one panel each with its warning threshold, from Prometheus range queries of `perf`'s own checks."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING

from bot.backends.prometheus import Series, step_for
from bot.core.context import Context
from bot.core.errors import BackendError
from bot.core.result import Attachment, Result
from bot.graphs.pool import GraphError, render
from bot.graphs.sparkline import sparkline
from bot.graphs.spec import Figure, Line, Panel
from bot.text.cells import Pre, lines
from bot.text.redact import redact

if TYPE_CHECKING:
    from commands.perf import Metric

# each check's plotted unit: the factor from the query's unit, and the axis label
UNITS = {
    "cpu": (100.0, "% of a core"),
    "memory": (1 / 1048576, "MB"),
    "event_loop": (1000.0, "ms"),
    "http_p95": (1000.0, "ms"),
    "http_5xx": (100.0, "%"),
}


def _level(value: float, warn: float, crit: float) -> str:
    return "critical" if value > crit else "warning" if value > warn else "ok"


async def _fetch(ctx: Context, metrics: list[Metric], seconds: int) -> tuple[list[Series], float]:
    """Each check's series over the window; rates over four steps (at least a minute)."""
    step = step_for(timedelta(seconds=seconds), ctx.settings.config.graphs.sample_seconds)
    rate = max(60, int(step * 4))
    end = ctx.clock.now()
    start = end - timedelta(seconds=seconds)
    found = await asyncio.gather(
        *(
            ctx.backends.prom.range(m.expr.replace("{w}", f"{rate}s"), start, end, step)
            for m in metrics
        )
    )
    empty = Series({}, [], [])
    return [series[0] if series else empty for series in found], step


def figure(metrics: list[Metric], found: list[Series], start: float, end: float) -> Figure:
    """A panel per check, its line coloured by where it ends against the thresholds."""
    panels = []
    for m, s in zip(metrics, found, strict=True):
        factor, unit = UNITS[m.key]
        last = next((v for v in reversed(s.values) if v == v), 0.0)
        line = Line(
            m.label,
            tuple(s.times),
            tuple(v * factor for v in s.values),
            _level(last, m.warn, m.crit),
        )
        panels.append(Panel(m.label, unit, (line,), threshold=m.warn * factor))
    return Figure("perf", "ClientForge performance", start, end, tuple(panels))


def sparklines(metrics: list[Metric], found: list[Series]) -> str:
    """One sparkline per check, with its last value."""
    rows = []
    for m, s in zip(metrics, found, strict=True):
        known = [v for v in s.values if v == v]
        last = m.fmt(known[-1]) if known else "no data"
        rows.append(f"{m.label:<22} {sparkline(s.values)}  {last}")
    return "\n".join(rows)


async def add_graph(ctx: Context, result: Result, metrics: list[Metric], seconds: int) -> None:
    """The panels as a PNG on the result; sparklines and the plain reason when there is none."""
    try:
        found, step = await _fetch(ctx, metrics, seconds)
    except BackendError as exc:
        url = redact(ctx.settings.env.prometheus_url)
        result.text = f"No picture: Prometheus at {url} could not answer ({exc.detail})."
        return
    result.data["graph"] = {"step_s": step, "points": [len(s.values) for s in found]}
    end = ctx.clock.now().timestamp()
    try:
        png = await render(figure(metrics, found, end - seconds, end))
    except GraphError as exc:
        result.text = lines(f"No picture: {exc}.", Pre(sparklines(metrics, found)))
        return
    result.attachments.append(Attachment("perf.png", png, "ClientForge performance"))
    if ctx.actor.source == "cli":
        result.text = Pre(sparklines(metrics, found))

"""`perf`: the runbook's performance checks: CPU, memory, event loop, HTTP, Redis, PostgreSQL."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from pydantic import field_validator
from pydantic_core import PydanticCustomError

from bot.core.args import Duration
from bot.core.context import Context
from bot.core.errors import BackendError
from bot.core.registry import Args, Risk, Role, command, option
from bot.core.result import Result, Status, Table, worst
from bot.text.redact import redact

GIB = 1 << 30
ACTIVE_WARN = 20  # ClientForge's app pool holds at most 20 connections (DATABASE_POOL_MAX)
NO_DATA = "no data: is Prometheus scraping ClientForge's /metrics (job clientforge-backend)?"


@dataclass(frozen=True)
class Metric:
    """One PromQL check: `{w}` is the rate window; thresholds in the query's unit."""

    key: str
    label: str
    expr: str
    warn: float
    crit: float
    fmt: Callable[[float], str]
    source: str


def _pct_core(v: float) -> str:
    return f"{v * 100:.0f} % of a core"


def _bytes(v: float) -> str:
    return f"{v / 1048576:,.0f} MB"


def _seconds(v: float) -> str:
    return f"{v * 1000:,.0f} ms"


def _ratio(v: float) -> str:
    return f"{v * 100:.2f} %"


HTTP = "crm_http_request_duration_seconds"
METRICS = [
    Metric(
        "cpu",
        "CPU",
        "max(rate(crm_process_cpu_seconds_total[{w}]))",
        0.8,
        0.95,
        _pct_core,
        "HighCPUUsage > 0.8 (alert-rules.yml)",
    ),
    Metric(
        "memory",
        "Memory (RSS)",
        "max(crm_process_resident_memory_bytes)",
        1 * GIB,
        1.5 * GIB,
        _bytes,
        "HighMemoryUsage > 1 GB (alert-rules.yml)",
    ),
    Metric(
        "event_loop",
        "Event-loop lag (p99)",
        "max(crm_nodejs_eventloop_lag_p99_seconds) or max(crm_nodejs_eventloop_lag_seconds)",
        0.1,
        0.5,
        _seconds,
        "Node.js stalls over 100 ms",
    ),
    Metric(
        "http_p95",
        "HTTP p95",
        f"histogram_quantile(0.95, sum by (le) (rate({HTTP}_bucket[{{w}}])))",
        0.5,
        2.0,
        _seconds,
        "APILatencyHigh 0.5 s / APILatencyCritical 2 s",
    ),
    Metric(
        "http_5xx",
        "HTTP 5xx ratio",
        f'(sum(rate({HTTP}_count{{status=~"5.."}}[{{w}}])) or vector(0)) '
        f"/ sum(rate({HTTP}_count[{{w}}]))",
        0.01,
        0.05,
        _ratio,
        "APIErrorRateHigh 1 % / HighErrorRate 5 %",
    ),
]


@dataclass
class Row:
    """One check's outcome for the table and `data`."""

    key: str
    label: str
    status: Status
    value: str
    threshold: str
    detail: str = ""
    raw: float | None = None

    def cells(self) -> list[str]:
        """The table row."""
        return [
            self.label,
            f"{self.status.symbol} {self.status.value}",
            self.value,
            self.threshold,
            self.detail,
        ]


class PerfArgs(Args):
    """Arguments of `perf`."""

    window: Duration = option(
        timedelta(minutes=5), help="rate window, or with --graph the span shown, e.g. 5m (1m to 1h)"
    )
    graph: bool = option(False, help="add a picture of each check over the window")

    @field_validator("window")
    @classmethod
    def _bounded(cls, window: timedelta) -> timedelta:
        if not timedelta(minutes=1) <= window <= timedelta(hours=1):
            raise PydanticCustomError("window", "the window must be between 1m and 1h")
        return window


def level(value: float, warn: float, crit: float) -> Status:
    """OK, WARNING above warn, CRITICAL above crit."""
    return Status.CRITICAL if value > crit else Status.WARNING if value > warn else Status.OK


async def prom_query(ctx: Context, expr: str) -> float | None:
    """One instant query: the first sample's value, or None when the result is empty."""
    return await ctx.backends.prom.query(expr)


def minutes(seconds: int) -> str:
    """`5 min`, or `90 s` when not whole minutes."""
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


async def check_metric(ctx: Context, m: Metric, seconds: int) -> Row:
    """Query one metric and grade it; NaN (no traffic) is fine, an empty result is unknown."""
    threshold, window = f"> {m.fmt(m.warn)} warn, > {m.fmt(m.crit)} crit", minutes(seconds)
    try:
        value = await prom_query(ctx, m.expr.replace("{w}", f"{seconds}s"))
    except BackendError as exc:
        return Row(m.key, m.label, Status.WARNING, "—", threshold, f"Prometheus: {exc.detail}")
    if value is None:
        return Row(m.key, m.label, Status.WARNING, "—", threshold, NO_DATA)
    if math.isnan(value):
        return Row(
            m.key, m.label, Status.OK, "—", threshold, f"no HTTP requests in the last {window}"
        )
    return Row(
        m.key, m.label, level(value, m.warn, m.crit), m.fmt(value), threshold, m.source, value
    )


async def check_redis(ctx: Context) -> Row:
    """Redis used memory against maxmemory (RedisMemoryHigh > 90 %)."""
    info = await ctx.backends.kv.call(ctx.backends.redis().info("memory"))
    used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    if not limit:
        return Row(
            "redis_memory",
            "Redis memory",
            Status.OK,
            _bytes(used),
            "> 90 % / 98 % of maxmemory",
            "no maxmemory set",
            used,
        )
    share = used / limit
    return Row(
        "redis_memory",
        "Redis memory",
        level(share, 0.90, 0.98),
        f"{_bytes(used)} ({share:.0%} of {_bytes(limit)})",
        "> 90 % warn, > 98 % crit",
        "RedisMemoryHigh > 0.9",
        share,
    )


PG_CONNECTIONS = """
SELECT count(*) FILTER (WHERE state = 'active') AS active, count(*) AS total,
       current_setting('max_connections')::int AS max
FROM pg_stat_activity WHERE backend_type = 'client backend'"""


async def check_postgres(ctx: Context) -> Row:
    """Active connections (against the app pool's 20); all client ones against max_connections."""
    (row,) = await ctx.backends.pg.read(PG_CONNECTIONS)
    active, total, most = row["active"], row["total"], row["max"]
    share = total / most if most else 0.0
    status = worst([level(share, 0.8, 0.95), Status.WARNING if active > ACTIVE_WARN else Status.OK])
    return Row(
        "pg_connections",
        "PostgreSQL connections",
        status,
        f"{active} active, {total} of {most}",
        f"> {ACTIVE_WARN} active; > 80 % / 95 % of max",
        "pg_stat_activity",
        float(active),
    )


async def _direct(
    ctx: Context, key: str, label: str, probe: Callable[[Context], Awaitable[Row]]
) -> Row:
    """A Redis or PostgreSQL check whose failure becomes a critical row, not an error."""
    try:
        return await probe(ctx)
    except BackendError as exc:
        return Row(key, label, Status.CRITICAL, "—", "", exc.detail)


def summarize(rows: list[Row], url: str) -> str:
    """One line: what is wrong, or that all is within thresholds; Prometheus down said plainly."""
    prom = [r for r in rows if r.detail.startswith("Prometheus:")]
    head, skip = "", set()
    if len(prom) == len(METRICS):
        head = (
            f"Prometheus at {redact(url)} is unreachable "
            f"({prom[0].detail.removeprefix('Prometheus: ')}): CPU, "
            "memory, event-loop and HTTP checks were skipped; check that it runs and that "
            "PROMETHEUS_URL points at it. "
        )
        skip = {r.key for r in prom}
    bad = [
        f"{r.label} {r.value}" if r.value != "—" else f"{r.label} unknown"
        for r in rows
        if r.status is not Status.OK and r.key not in skip
    ]
    tail = (
        ("Needs attention: " + ", ".join(bad) + ".")
        if bad
        else "Everything else is within its thresholds."
    )
    return head + (tail if head or bad else "Every check is within its thresholds.")


@command(
    "perf",
    summary="CPU, memory, event-loop lag, HTTP p95 and 5xx ratio, Redis memory, "
    "PostgreSQL connections.",
    args=PerfArgs,
    role=Role.VIEWER,
    risk=Risk.READ,
    examples=("perf", "perf --window 15m", "perf --graph --window 1h"),
    timeout=30.0,
)
async def perf(ctx: Context, args: PerfArgs) -> Result:
    """Every check, each against its threshold; Prometheus, Redis or PostgreSQL may be down."""
    seconds = int(args.window.total_seconds())
    rows = list(
        await asyncio.gather(
            *(check_metric(ctx, m, seconds) for m in METRICS),
            _direct(ctx, "redis_memory", "Redis memory", check_redis),
            _direct(ctx, "pg_connections", "PostgreSQL connections", check_postgres),
        )
    )
    ranked = sorted(rows, key=lambda r: -r.status.rank)
    result = Result(
        "perf",
        worst([r.status for r in rows]),
        summary=summarize(rows, ctx.settings.env.prometheus_url),
        fields=[(r.label, r.value) for r in rows if r.value != "—"]
        + [("Window", minutes(seconds))],
        tables=[
            Table(
                ["check", "status", "value", "threshold", "source / detail"],
                [r.cells() for r in ranked],
            )
        ],
        data={
            "window_s": seconds,
            "checks": {
                r.key: {"status": r.status.value, "value": r.raw, "detail": r.detail} for r in rows
            },
        },
    )
    if args.graph:
        from commands.perf_panels import add_graph  # matplotlib's side: only for --graph

        await add_graph(ctx, result, METRICS, seconds)
    return result

"""`search zero-results|analyze`: search_telemetry, telling broken telemetry from good search."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from bot.core.context import Context
from bot.core.registry import Args, Risk, Role, command, option
from bot.core.result import Result, Status, Table, worst
from bot.text.cells import Code, Text, join, lines, plain, rich, shorten
from bot.text.units import ms

if TYPE_CHECKING:
    import asyncpg

T = TypeVar("T")
ZERO_MIN_TIMES, SLOW_MS, AVG_WARN_MS, CTR_WARN, STALE_HOURS = 3, 500, 200, 30.0, 24
BROKEN = rich(
    "ClientForge's search-telemetry service writes an unquoted ",
    Code("tenantId"),
    " column since commit e2db69a; the insert fails and the error is only logged, "
    "so no rows arrive (clientforge.md §6.4).",
)
CLICKS_BROKEN = rich(
    "No click was recorded at all: ClientForge's click update uses ",
    Code("UPDATE … ORDER BY … LIMIT"),
    " (invalid in PostgreSQL) and filters ",
    Code("clicked IS NULL"),
    " while the default is FALSE, so CTR reads 0 % whatever users do.",
)

FRESHNESS = """
SELECT count(*) FILTER (WHERE created_at >= now() - make_interval(days => $1)) AS in_window,
       max(created_at) AS latest,
       extract(epoch FROM now() - max(created_at))::float8 AS age_s
FROM search_telemetry"""
ZERO = """
SELECT query_lowercase AS query, count(*) AS times, count(DISTINCT tenant_id) AS tenants,
       max(created_at) AS last_seen
FROM search_telemetry
WHERE result_count = 0 AND created_at >= now() - make_interval(days => $1)
GROUP BY query_lowercase HAVING count(*) >= $3 ORDER BY times DESC, query LIMIT $2"""
OVERALL = """
SELECT count(*) AS searches, count(DISTINCT tenant_id) AS tenants,
       count(DISTINCT query_lowercase) AS queries,
       avg(result_count)::float8 AS avg_results, avg(response_time_ms)::float8 AS avg_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY response_time_ms) AS p95_ms,
       count(*) FILTER (WHERE clicked) AS clicks,
       avg(clicked_index) FILTER (WHERE clicked)::float8 AS avg_click_pos,
       count(*) FILTER (WHERE result_count = 0) AS zero,
       count(*) FILTER (WHERE response_time_ms > $2) AS slow
FROM search_telemetry WHERE created_at >= now() - make_interval(days => $1)"""
TOP = """
SELECT query_lowercase AS query, count(*) AS times, avg(result_count)::float8 AS avg_results,
       avg(response_time_ms)::float8 AS avg_ms
FROM search_telemetry WHERE created_at >= now() - make_interval(days => $1)
GROUP BY query_lowercase ORDER BY times DESC, query LIMIT $2"""
SLOW = """
SELECT query_lowercase AS query, count(*) AS times, avg(response_time_ms)::float8 AS avg_ms,
       max(response_time_ms) AS max_ms
FROM search_telemetry
WHERE response_time_ms > $3 AND created_at >= now() - make_interval(days => $1)
GROUP BY query_lowercase ORDER BY avg_ms DESC, query LIMIT $2"""
SYNONYMS = """
SELECT DISTINCT lower(word) AS word FROM search_synonyms, unnest(synonyms) AS word
WHERE lower(word) = ANY($1::text[])"""


class WindowArgs(Args):
    """The telemetry window and how many rows per list."""

    days: int = option(30, ge=1, le=365, help="look back this many days (1 to 365)")
    limit: int = option(10, ge=1, le=100, help="rows per list (1 to 100)")


@dataclass
class Telemetry:
    """What the window holds, with the reasons it is graded as it is."""

    days: int
    in_window: int = 0
    age_s: float | None = None
    broken: bool = False
    reasons: list[tuple[Status, Text]] = field(default_factory=list)

    def warn(self, why: Text, status: Status = Status.WARNING) -> None:
        """Add a reason."""
        self.reasons.append((status, why))

    @property
    def status(self) -> Status:
        """The worst reason's status."""
        return worst([s for s, _ in self.reasons])

    @property
    def why(self) -> list[Text]:
        """The reasons' text."""
        return [w for _, w in self.reasons]


def queries(n: int) -> str:
    """`1 query`, `3 queries`."""
    return f"{n:,} query" if n == 1 else f"{n:,} queries"


def ago(seconds: float) -> str:
    """`5 min`, `3.0 h`, `12.0 d`."""
    if seconds < 7200:
        return f"{max(seconds, 0) / 60:.0f} min"
    return f"{seconds / 3600:.1f} h" if seconds < 172800 else f"{seconds / 86400:.1f} d"


async def freshness(ctx: Context, conn: asyncpg.Connection, days: int) -> Telemetry | None:
    """None when the table is missing; else rows in the window and the newest row's age, graded."""
    if await ctx.backends.pg.call(conn.fetchval("SELECT to_regclass('search_telemetry')")) is None:
        return None
    row = await ctx.backends.pg.call(conn.fetchrow(FRESHNESS, days))
    t = Telemetry(days, row["in_window"], row["age_s"])
    if t.age_s is None:
        t.warn("search_telemetry is empty: telemetry looks broken, not quiet")
    elif t.in_window == 0:
        t.warn(
            f"no search_telemetry rows in the last {days} days (newest {ago(t.age_s)} old): "
            "telemetry looks broken, not quiet"
        )
    elif t.age_s > STALE_HOURS * 3600:
        t.warn(f"the newest search_telemetry row is {ago(t.age_s)} old: inserts may have stopped")
    t.broken = bool(t.reasons)
    return t


def notes(t: Telemetry, clicks_broken: bool = False) -> Text:
    """The reasons as bullets; when telemetry or clicks look broken, why ClientForge breaks them."""
    return lines(
        *(rich("• ", w) for w in t.why),
        BROKEN if t.broken else None,
        CLICKS_BROKEN if clicks_broken else None,
    )


def missing(name: str) -> Result:
    """The reply when ClientForge's migration 011 was never applied."""
    return Result(
        name,
        Status.CRITICAL,
        summary=rich(
            "Table ",
            Code("search_telemetry"),
            " does not exist in DATABASE_URL's database: ClientForge's migration 011 "
            "(search telemetry) has not been applied there.",
        ),
        data={"table": False},
    )


async def synonym_words(ctx: Context, conn: asyncpg.Connection, queries: list[str]) -> set[str]:
    """Which zero-result queries already belong to a synonym set (search_synonyms, if it exists)."""
    if (
        not queries
        or await ctx.backends.pg.call(conn.fetchval("SELECT to_regclass('search_synonyms')"))
        is None
    ):
        return set()
    return {r["word"] for r in await ctx.backends.pg.call(conn.fetch(SYNONYMS, queries))}


def zero_table(rows: list[Any], covered: set[str]) -> Table:
    """Zero-result queries, most frequent first."""
    return Table(
        ["query", "times", "tenants", "last seen", "synonym set"],
        [
            [
                r["query"],
                str(r["times"]),
                str(r["tenants"]),
                f"{r['last_seen']:%Y-%m-%d %H:%M}",
                "yes" if r["query"] in covered else "no",
            ]
            for r in rows
        ],
        f"Zero-result queries seen {ZERO_MIN_TIMES}+ times",
    )


@command(
    "search zero-results",
    summary="Searches that found nothing, seen 3+ times: synonym candidates.",
    args=WindowArgs,
    role=Role.VIEWER,
    risk=Risk.READ,
    examples=("search zero-results", "search zero-results --days 7 --limit 20"),
    timeout=30.0,
)
async def search_zero_results(ctx: Context, args: WindowArgs) -> Result:
    """Zero-result queries from search_telemetry; empty or stale telemetry is reported as broken."""
    async with ctx.backends.pg.connection() as conn:
        t = await freshness(ctx, conn, args.days)
        if t is None:
            return missing("search zero-results")
        rows = await ctx.backends.pg.call(conn.fetch(ZERO, args.days, args.limit, ZERO_MIN_TIMES))
        covered = await synonym_words(ctx, conn, [r["query"] for r in rows])
    candidates = [r["query"] for r in rows if r["query"] not in covered]
    if rows:
        t.warn(
            rich(
                f"{queries(len(rows))} found nothing {ZERO_MIN_TIMES}+ times; synonym candidates: ",
                join(", ", [Code(q) for q in candidates[:5]]) or "none new",
            )
        )
    head = (
        f"{queries(len(rows))} found nothing {ZERO_MIN_TIMES}+ times in {args.days} days"
        if rows
        else f"No query found nothing {ZERO_MIN_TIMES}+ times in {args.days} days"
    )
    summary = rich(head, rich(", but ", t.why[0]) if t.why and not rows else "", ".")
    return Result(
        "search zero-results",
        t.status,
        summary=summary,
        text=notes(t),
        fields=[
            ("Window", f"{args.days} days"),
            ("Searches in window", f"{t.in_window:,}"),
            ("Newest row", "none" if t.age_s is None else f"{ago(t.age_s)} ago"),
        ],
        tables=[zero_table(rows, covered)] if rows else [],
        data={
            "table": True,
            "days": args.days,
            "in_window": t.in_window,
            "newest_age_s": t.age_s,
            "queries": [
                {
                    "query": r["query"],
                    "times": r["times"],
                    "tenants": r["tenants"],
                    "synonym_set": r["query"] in covered,
                }
                for r in rows
            ],
            "candidates": candidates,
            "reasons": [plain(w) for w in t.why],
        },
    )


def grade_overall(t: Telemetry, o: dict[str, Any], zero: int) -> None:
    """search:analyze's recommendation thresholds, with the broken click tracking named as such."""
    if not o["searches"]:
        return
    ctr = 100.0 * o["clicks"] / o["searches"]
    if o["avg_ms"] > AVG_WARN_MS:
        t.warn(f"average response {o['avg_ms']:.0f} ms (> {AVG_WARN_MS} ms)")
    if o["slow"]:
        t.warn(f"{o['slow']:,} searches took over {SLOW_MS} ms")
    if zero:
        t.warn(
            rich(
                f"{queries(zero)} found nothing {ZERO_MIN_TIMES}+ times (see ",
                Code("search zero-results"),
                ")",
            )
        )
    if ctr < CTR_WARN:
        t.warn(
            f"click-through {ctr:.1f} % (< {CTR_WARN:g} %)"
            + (
                ": no click recorded at all, ClientForge's click tracking is broken"
                if not o["clicks"]
                else ""
            )
        )


def overall_fields(o: dict[str, Any], days: int) -> list[tuple[str, str]]:
    """The overall section as key figures; no NaN when the window is empty."""
    n = o["searches"]
    ctr = f"{100.0 * o['clicks'] / n:.1f} %" if n else "—"
    pos = "—" if o["avg_click_pos"] is None else f"{o['avg_click_pos']:.1f}"
    avg_results = "—" if o["avg_results"] is None else f"{o['avg_results']:.1f}"
    return [
        ("Window", f"{days} days"),
        ("Searches", f"{n:,}"),
        ("Tenants", str(o["tenants"])),
        ("Distinct queries", f"{o['queries']:,}"),
        ("Avg results", avg_results),
        ("Avg response", ms(o["avg_ms"])),
        ("p95 response", ms(o["p95_ms"])),
        ("Zero-result searches", f"{o['zero']:,}"),
        ("Click-through", ctr),
        ("Avg click position", pos),
    ]


def analysis_tables(
    top: list[Any], zero: list[Any], slow: list[Any], covered: set[str]
) -> list[Table]:
    """Top, zero-result and slow queries, each only when it has rows."""
    tables = []
    if top:
        tables.append(
            Table(
                ["query", "times", "avg results", "avg time"],
                [
                    [r["query"], str(r["times"]), f"{r['avg_results']:.1f}", ms(r["avg_ms"])]
                    for r in top
                ],
                "Top queries",
            )
        )
    if zero:
        tables.append(zero_table(zero, covered))
    if slow:
        tables.append(
            Table(
                ["query", "times", "avg time", "max time"],
                [[r["query"], str(r["times"]), ms(r["avg_ms"]), ms(r["max_ms"])] for r in slow],
                f"Slow queries (> {SLOW_MS} ms)",
            )
        )
    return tables


@command(
    "search analyze",
    summary="Search analytics: volume, latency, zero-result and slow queries, click-through.",
    args=WindowArgs,
    role=Role.VIEWER,
    risk=Risk.READ,
    examples=("search analyze", "search analyze --days 7"),
    timeout=30.0,
)
async def search_analyze(ctx: Context, args: WindowArgs) -> Result:
    """The runbook's search:analyze with its thresholds; never "fine" on an empty table."""
    async with ctx.backends.pg.connection() as conn:
        t = await freshness(ctx, conn, args.days)
        if t is None:
            return missing("search analyze")
        o = dict(await ctx.backends.pg.call(conn.fetchrow(OVERALL, args.days, SLOW_MS)))
        top = await ctx.backends.pg.call(conn.fetch(TOP, args.days, args.limit))
        zero = await ctx.backends.pg.call(conn.fetch(ZERO, args.days, args.limit, ZERO_MIN_TIMES))
        slow = await ctx.backends.pg.call(conn.fetch(SLOW, args.days, args.limit, SLOW_MS))
        covered = await synonym_words(ctx, conn, [r["query"] for r in zero])
    grade_overall(t, o, len(zero))
    summary = (
        rich(f"{o['searches']:,} searches in {args.days} days: ", join("; ", t.why))
        if t.why
        else f"{o['searches']:,} searches in {args.days} days; "
        "latency, results and click-through fine"
    )
    data = {
        "table": True,
        "days": args.days,
        "overall": o,
        "newest_age_s": t.age_s,
        "reasons": [plain(w) for w in t.why],
        "top": [dict(r) for r in top],
        "zero_results": [r["query"] for r in zero],
        "slow": [dict(r) for r in slow],
    }
    return Result(
        "search analyze",
        t.status,
        summary=rich(shorten(summary, 600), "…" if len(plain(summary)) > 600 else "."),
        fields=overall_fields(o, args.days),
        tables=analysis_tables(top, zero, slow, covered),
        text=notes(t, bool(o["searches"]) and not o["clicks"]),
        data=data,
    )

"""`db slow|top`: pg_stat_statements for the current database, as PgHero and pg-extras read it."""

from __future__ import annotations

from typing import Any

from bot.core.context import Context
from bot.core.paging import Page, page_option
from bot.core.registry import Args, command, option
from bot.core.result import Result, Status, Table
from bot.text.cells import Code, rich
from bot.text.units import ms
from commands.db.pg import one_line, percent, statements_file

STATUS = """SELECT (SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements')
                     AS installed,
                   (SELECT default_version FROM pg_available_extensions
                     WHERE name = 'pg_stat_statements') AS available,
                   current_setting('shared_preload_libraries') AS preload,
                   current_database() AS db"""
STATEMENTS = """WITH s AS (
    SELECT s.query, s.calls, s.{total} AS total, s.{mean} AS mean, s.{max} AS max, s.rows
      FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
     WHERE d.datname = current_database() AND s.calls > 0)"""
OVERVIEW = (
    STATEMENTS
    + " SELECT count(*) AS statements, coalesce(sum(calls), 0) AS calls, sum(total) AS total FROM s"
)
RANKED = (
    STATEMENTS
    + """
SELECT s.*, 100 * s.total / NULLIF((SELECT sum(total) FROM s), 0) AS share,
       count(*) OVER () AS matching FROM s
 WHERE s.mean >= $1 AND s.query NOT ILIKE '%pg_stat_statements%'
   AND s.query <> '<insufficient privilege>'
 ORDER BY s.{order} DESC LIMIT $2 OFFSET $3"""
)
COLUMNS = ["#", "mean", "max", "calls", "total", "rows", "share of all", "statement"]


class SlowArgs(Args):
    """Arguments of `db slow`."""

    min_time: float = option(
        100.0, ge=0, le=3_600_000, help="mean execution time threshold in ms (default 100)"
    )
    limit: int = option(20, ge=1, le=100, help="statements a page, 1 to 100 (default 20)")
    page: int = page_option()


class TopArgs(Args):
    """Arguments of `db top`."""

    limit: int = option(10, ge=1, le=100, help="statements a page, 1 to 100 (default 10)")
    page: int = page_option()


def version(text: str | None) -> tuple[int, ...]:
    """`1.10` as (1, 10), for comparing extension versions."""
    return tuple(int(p) for p in (text or "0").split(".") if p.isdigit())


def columns_for(installed: str) -> dict[str, str]:
    """Timing column names of the installed pg_stat_statements: 1.8 (PostgreSQL 13) renamed them."""
    if version(installed) >= (1, 8):
        return {"total": "total_exec_time", "mean": "mean_exec_time", "max": "max_exec_time"}
    return {"total": "total_time", "mean": "mean_time", "max": "max_time"}


def missing(command: str, state: Any) -> Result | None:
    """A result that says how to enable pg_stat_statements, or None when it is usable."""
    preload = "pg_stat_statements" in (state["preload"] or "")
    if state["available"] is None:
        fix = rich(
            "The extension is not available on this server: install PostgreSQL's contrib package, "
            "add ",
            Code("shared_preload_libraries = 'pg_stat_statements'"),
            " to postgresql.conf, restart, then run ",
            Code("CREATE EXTENSION pg_stat_statements;"),
            ".",
        )
    elif not preload:
        fix = rich(
            "Add ",
            Code("shared_preload_libraries = 'pg_stat_statements'"),
            " to postgresql.conf (ClientForge's compose file passes it as a server flag) and "
            "restart PostgreSQL",
        ) + (
            "."
            if state["installed"]
            else rich(
                ", then run ",
                Code("CREATE EXTENSION pg_stat_statements;"),
                " in ",
                Code(state["db"]),
                ".",
            )
        )
    elif state["installed"] is None:
        fix = rich(
            "Run ",
            Code("CREATE EXTENSION pg_stat_statements;"),
            " in database ",
            Code(state["db"]),
            " (the library is loaded).",
        )
    else:
        return None
    what = "installed but not loaded" if state["installed"] and not preload else "not enabled"
    return Result(
        command,
        Status.WARNING,
        summary=rich(
            f"pg_stat_statements is {what} in ",
            Code(state["db"]),
            ", so there are no statement statistics.",
        ),
        text=fix,
        data={
            "pg_stat_statements": {
                "installed": state["installed"],
                "available": state["available"],
                "preloaded": preload,
            }
        },
    )


async def ranked(
    ctx: Context, command: str, order: str, min_ms: float, args: SlowArgs | TopArgs
) -> tuple[Any, list[Any], Page] | Result:
    """Overview and a page of ranked statements, or the result that explains why there are none."""
    state = (await ctx.backends.pg.read(STATUS))[0]
    explained = missing(command, state)
    if explained:
        return explained
    names = columns_for(state["installed"])
    ranking = RANKED.format(order=order, **names)
    offset = (args.page - 1) * args.limit
    overview, rows = await ctx.backends.pg.read_many(
        [(OVERVIEW.format(**names), ()), (ranking, (min_ms, args.limit, offset))]
    )
    return overview[0], rows, Page(args.page, args.limit, rows[0]["matching"] if rows else 0)


def _table(rows: list[Any], page: Page) -> Table:
    first = (page.number - 1) * page.size + 1
    return Table(
        COLUMNS,
        [
            [
                str(i),
                ms(r["mean"]),
                ms(r["max"]),
                f"{r['calls']:,}",
                ms(r["total"]),
                f"{r['rows']:,}",
                percent(r["share"]),
                one_line(r["query"]),
            ]
            for i, r in enumerate(rows, first)
        ],
    )


def _fields(overview: Any) -> list[tuple[str, str]]:
    return [
        ("Statements", f"{overview['statements']:,}"),
        ("Calls", f"{overview['calls']:,}"),
        ("Total time", ms(overview["total"])),
    ]


def _data(rows: list[Any], overview: Any) -> dict[str, object]:
    return {
        "statements": overview["statements"],
        "total_ms": overview["total"],
        "rows": [
            {
                "query": r["query"],
                "calls": r["calls"],
                "mean_ms": r["mean"],
                "max_ms": r["max"],
                "total_ms": r["total"],
                "rows": r["rows"],
                "share": r["share"],
            }
            for r in rows
        ],
    }


def _file(name: str, rows: list[Any]) -> list:
    return statements_file(
        name,
        [
            (f"#{i}: mean {ms(r['mean'])}, {r['calls']:,} calls", r["query"])
            for i, r in enumerate(rows, 1)
        ],
    )


@command(
    "db slow",
    summary="Statements slower than a mean threshold, with their share of all statement time.",
    args=SlowArgs,
    examples=("db slow", "db slow --min-time 250 --limit 5"),
)
async def db_slow(ctx: Context, args: SlowArgs) -> Result:
    """Statements of this database by mean execution time above `--min-time`, worst first."""
    found = await ranked(ctx, "db slow", "mean", args.min_time, args)
    if isinstance(found, Result):
        return found
    overview, rows, page = found
    threshold = ms(args.min_time)
    summary = (
        f"{page.total} statement{'s' if page.total != 1 else ''} with a mean above {threshold}"
        f"{', worst first' if page.pages > 1 else ''}."
        if rows
        else f"No statement has a mean execution time above {threshold}."
    )
    return Result(
        "db slow",
        Status.WARNING if rows else Status.OK,
        summary=summary,
        fields=_fields(overview),
        tables=[_table(rows, page)] if rows else [],
        attachments=_file("slow-statements.sql", rows),
        page=page,
        text="Times are execution times since the statistics were last reset; share is of all "
        "statement time in this database.",
        data={"min_time_ms": args.min_time, **_data(rows, overview)},
    )


@command(
    "db top",
    summary="Statements by total execution time: where the database spends its time.",
    args=TopArgs,
    examples=("db top", "db top --limit 20"),
)
async def db_top(ctx: Context, args: TopArgs) -> Result:
    """Statements of this database by total execution time, largest first."""
    found = await ranked(ctx, "db top", "total", 0.0, args)
    if isinstance(found, Result):
        return found
    overview, rows, page = found
    return Result(
        "db top",
        summary=f"The {len(rows)} statements that took the most time in this database."
        if page.pages < 2
        else f"The {page.total} statements of this database by time taken, largest first.",
        fields=_fields(overview),
        tables=[_table(rows, page)] if rows else [],
        attachments=_file("top-statements.sql", rows),
        page=page,
        data=_data(rows, overview),
    )

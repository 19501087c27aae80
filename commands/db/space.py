"""`db size|tables|bloat|cache-hit|extensions`: where space goes; is the server set up right."""

from __future__ import annotations

from typing import Any

from bot.core.context import Context
from bot.core.paging import Page, page_option
from bot.core.registry import Args, command, option
from bot.core.result import Result, Status, Table
from bot.text.cells import Code, Text, join, rich
from bot.text.units import size
from commands.db import locked
from commands.db.pg import percent

USER_SCHEMAS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'"
USER_TABLES = f"pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {USER_SCHEMAS}"
SIZE = f"""WITH {locked.CTES}
SELECT current_database() AS db, pg_database_size(current_database()) AS size,
  (SELECT coalesce(sum({locked.TABLE}), 0) FROM pg_class c
     JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN held h ON h.oid = c.oid
    WHERE {USER_SCHEMAS} AND c.relkind IN ('r', 'm', 'p')) AS tables,
  (SELECT coalesce(sum({locked.RELATION}), 0) FROM pg_class c
     JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_index i ON i.indexrelid = c.oid
     LEFT JOIN held h ON h.oid = i.indrelid
    WHERE {USER_SCHEMAS} AND c.relkind = 'i') AS indexes,
  (SELECT count(*) FROM {USER_TABLES} AND c.relkind IN ('r', 'm', 'p')) AS table_count"""
DATABASES = """SELECT datname AS name, CASE WHEN has_database_privilege(datname, 'CONNECT')
       THEN pg_database_size(datname) END AS size
  FROM pg_database WHERE datallowconn ORDER BY 2 DESC NULLS LAST, 1 LIMIT 20"""
TABLES = f"""WITH {locked.CTES}
SELECT format('%I.%I', n.nspname, c.relname) AS name, h.pid AS locked_by,
       {locked.TOTAL} AS total, {locked.HEAP} AS heap, {locked.INDEXES} AS indexes,
       {locked.TOAST_SIZE} AS toast,
       greatest(s.n_live_tup, c.reltuples::bigint, 0) AS rows, coalesce(s.n_dead_tup, 0) AS dead,
       count(*) OVER () AS matching
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid LEFT JOIN held h ON h.oid = c.oid
 WHERE {USER_SCHEMAS} AND c.relkind IN ('r', 'm', 'p')
 ORDER BY total DESC, name LIMIT $1 OFFSET $2"""
# The table-bloat estimate of pg-extras (bloat.sql, after ioguix):
# expected pages from pg_stats' widths.
BLOAT = f"""
WITH {locked.CTES},
constants AS (SELECT current_setting('block_size')::numeric AS bs, 23 AS hdr, 8 AS ma),
widths AS (
  SELECT s.schemaname, s.tablename, hdr, ma, bs, sum((1 - s.null_frac) * s.avg_width) AS datawidth,
         max(s.null_frac) AS maxfracsum,
         hdr + (SELECT 1 + count(*) / 8 FROM pg_stats s2
                 WHERE s2.null_frac <> 0 AND s2.schemaname = s.schemaname
                 AND s2.tablename = s.tablename) AS nullhdr
    FROM pg_stats s, constants WHERE s.schemaname NOT IN ('pg_catalog', 'information_schema')
   GROUP BY 1, 2, 3, 4, 5),
info AS (
  SELECT schemaname, tablename, ma, bs,
         (datawidth + (hdr + ma - (CASE WHEN hdr % ma = 0 THEN ma ELSE hdr % ma END)))::numeric
           AS datahdr,
         (maxfracsum * (nullhdr + ma - (CASE WHEN nullhdr % ma = 0 THEN ma ELSE nullhdr % ma END)))
           AS nullhdr2
    FROM widths),
estimate AS (
  SELECT format('%I.%I', n.nspname, c.relname) AS name, c.relpages, bs, c.oid,
         ceil((c.reltuples * ((datahdr + ma
               - (CASE WHEN datahdr % ma = 0 THEN ma ELSE datahdr % ma END))
               + nullhdr2 + 4)) / (bs - 20::float)) AS otta
    FROM info JOIN pg_namespace n ON n.nspname = info.schemaname
    JOIN pg_class c
      ON c.relnamespace = n.oid AND c.relname = info.tablename AND c.relkind IN ('r', 'm'))
SELECT e.name, round(CASE WHEN otta = 0 THEN 0.0 ELSE e.relpages / otta::numeric END, 1) AS ratio,
       CASE WHEN e.relpages < otta THEN 0 ELSE (bs * (e.relpages - otta))::bigint END AS waste,
       CASE WHEN h.oid IS NULL THEN pg_relation_size(e.oid) ELSE e.relpages * bs END AS size,
       h.pid AS locked_by, coalesce(s.n_dead_tup, 0) AS dead,
       coalesce(s.n_live_tup, 0) AS live,
       greatest(s.last_vacuum, s.last_autovacuum) AS vacuumed
  FROM estimate e LEFT JOIN pg_stat_user_tables s ON s.relid = e.oid
  LEFT JOIN held h ON h.oid = e.oid
 ORDER BY waste DESC, e.name LIMIT 20"""
UNANALYZED = f"""SELECT count(*) AS n FROM {USER_TABLES} AND c.relkind = 'r' AND c.reltuples <> 0
   AND NOT EXISTS (SELECT 1 FROM pg_stats s
                    WHERE s.schemaname = n.nspname AND s.tablename = c.relname)"""
HIT = """SELECT (SELECT sum(heap_blks_hit)::float
                        / nullif(sum(heap_blks_hit) + sum(heap_blks_read), 0) * 100
                   FROM pg_statio_user_tables) AS tables,
                (SELECT sum(idx_blks_hit)::float
                        / nullif(sum(idx_blks_hit) + sum(idx_blks_read), 0) * 100
                   FROM pg_statio_user_indexes) AS indexes"""
HIT_TABLES = """SELECT format('%I.%I', schemaname, relname) AS name, heap_blks_read AS read,
       heap_blks_hit AS hit,
       heap_blks_hit::float / nullif(heap_blks_hit + heap_blks_read, 0) * 100 AS ratio
  FROM pg_statio_user_tables WHERE heap_blks_read > 0 ORDER BY heap_blks_read DESC LIMIT 10"""
EXTENSIONS = """SELECT name, default_version AS available, installed_version AS installed
  FROM pg_available_extensions ORDER BY installed_version IS NULL, name"""
SERVER = """SELECT current_setting('server_version_num')::int AS version,
                   current_setting('shared_preload_libraries') AS preload"""
NEEDED: dict[str, Text] = {
    "pg_stat_statements": (
        rich(
            "statement statistics: ",
            Code("db slow"),
            ", ",
            Code("db top"),
            ", monitoring views of migration 010",
        )
    ),
    "vector": rich("the ", Code("embeddings"), " table (pgvector, migrations 009 and 011)"),
    "pg_trgm": "trigram search indexes, where ClientForge's schema uses them",
}
HIT_HEALTHY, BLOAT_RATIO, BLOAT_WASTE = 99.0, 2.0, 1 << 20


class TablesArgs(Args):
    """Arguments of `db tables`."""

    limit: int = option(20, ge=1, le=100, help="tables a page, largest first (default 20)")
    page: int = page_option()


@command(
    "db size",
    summary="Size of this database, its tables and indexes, and of the server's databases.",
    examples=("db size",),
)
async def db_size(ctx: Context, _: object) -> Result:
    """Database size and the split between tables and indexes; locked tables estimated."""
    (total,), databases, held = await ctx.backends.pg.read_many(
        [(SIZE, ()), (DATABASES, ()), (locked.LIST, ())]
    )
    estimated = "≈ " if held else ""
    return Result(
        "db size",
        Status.WARNING if held else Status.OK,
        summary=rich(Code(total["db"]), f" takes {size(total['size'])}."),
        fields=[
            ("Database", size(total["size"])),
            ("Tables (with TOAST)", estimated + size(total["tables"])),
            ("Indexes", estimated + size(total["indexes"])),
            ("Tables", f"{total['table_count']:,}"),
        ],
        text=locked.note(held),
        tables=[
            Table(["database", "size"], [[d["name"], size(d["size"])] for d in databases]),
            *locked.table(held),
        ],
        data={
            **dict(total),
            "databases": [dict(d) for d in databases],
            "locked": locked.data(held),
        },
    )


@command(
    "db tables",
    summary="Tables by total size, with table, index and TOAST size, rows and dead rows.",
    args=TablesArgs,
    examples=("db tables", "db tables --limit 50"),
)
async def db_tables(ctx: Context, args: TablesArgs) -> Result:
    """The largest tables first; a locked table is marked and sized from the catalog."""
    offset = (args.page - 1) * args.limit
    rows, held = await ctx.backends.pg.read_many(
        [(TABLES, (args.limit, offset)), (locked.LIST, ())]
    )
    page = Page(args.page, args.limit, rows[0]["matching"] if rows else 0)
    return Result(
        "db tables",
        Status.WARNING if held else Status.OK,
        summary=_tables_summary(rows, page),
        page=page,
        text=locked.note(held),
        tables=[
            Table(
                ["table", "total", "table", "indexes", "TOAST", "rows", "dead rows"],
                [
                    [
                        r["name"] + (f" 🔒 pid {r['locked_by']}" if r["locked_by"] else ""),
                        locked.approx(r["total"], r["locked_by"]),
                        locked.approx(r["heap"], r["locked_by"]),
                        locked.approx(r["indexes"], r["locked_by"]),
                        locked.approx(r["toast"], r["locked_by"]),
                        f"{r['rows']:,}",
                        f"{r['dead']:,}",
                    ]
                    for r in rows
                ],
            ),
            *locked.table(held),
        ]
        if rows
        else [],
        data={"tables": [dict(r) for r in rows], "locked": locked.data(held)},
    )


def _tables_summary(rows: list[Any], page: Page) -> str:
    if not rows:
        return "No user tables." if page.number == 1 else f"No tables on page {page.number}."
    if page.pages == 1:
        return f"The {len(rows)} largest tables."
    return f"{page.total} tables, largest first."


def _bloated(row: Any) -> bool:
    return float(row["ratio"] or 0) >= BLOAT_RATIO and (row["waste"] or 0) >= BLOAT_WASTE


@command(
    "db bloat",
    summary="Estimated table bloat (wasted space) from planner statistics, worst first.",
    examples=("db bloat",),
)
async def db_bloat(ctx: Context, _: object) -> Result:
    """Bloat ratio, wasted bytes per table (pg-extras' estimate), dead rows and last vacuum."""
    rows, (unanalyzed,), held = await ctx.backends.pg.read_many(
        [(BLOAT, ()), (UNANALYZED, ()), (locked.LIST, ())]
    )
    bad = [r for r in rows if _bloated(r)]
    summary = (
        f"{len(bad)} table{'s' if len(bad) != 1 else ''} at least {BLOAT_RATIO:g}× "
        "their expected size."
        if bad
        else "No table is notably bloated."
    )
    have = "tables have" if unanalyzed["n"] != 1 else "table has"
    note = (
        rich(
            f"{unanalyzed['n']} {have} no statistics, so they are not estimated: run ",
            Code("db analyze"),
            " first. ",
        )
        if unanalyzed["n"]
        else ""
    )
    return Result(
        "db bloat",
        Status.WARNING if bad or held else Status.OK,
        summary=summary,
        text=rich(
            locked.note(held),
            " " if held else "",
            note,
            "An estimate: ",
            Code("db vacuum"),
            " makes dead rows reusable; only ",
            Code("db vacuum --full <table>"),
            " gives space back to the OS, and it locks the table.",
        ),
        tables=[
            Table(
                ["table", "bloat", "wasted", "size", "dead rows", "last vacuum"],
                [
                    [
                        r["name"],
                        f"{r['ratio']}×",
                        size(r["waste"]),
                        locked.approx(r["size"], r["locked_by"]),
                        f"{r['dead']:,}",
                        r["vacuumed"].strftime("%Y-%m-%d %H:%M") if r["vacuumed"] else "never",
                    ]
                    for r in rows
                ],
            ),
            *locked.table(held),
        ]
        if rows
        else locked.table(held),
        data={
            "tables": [{**dict(r), "ratio": float(r["ratio"] or 0)} for r in rows],
            "unanalyzed": unanalyzed["n"],
            "locked": locked.data(held),
        },
    )


@command(
    "db cache-hit",
    summary="Table and index cache hit ratios; healthy at 99 % or more.",
    examples=("db cache-hit",),
)
async def db_cache_hit(ctx: Context, _: object) -> Result:
    """Buffer cache hit ratios from pg_statio, and the tables read most from disk."""
    (hit,), tables = await ctx.backends.pg.read_many([(HIT, ()), (HIT_TABLES, ())])
    low = [
        name for name in ("tables", "indexes") if hit[name] is not None and hit[name] < HIT_HEALTHY
    ]
    summary = (
        f"Cache hit below {HIT_HEALTHY:g} % for {' and '.join(low)}: the working set does not "
        "fit in shared_buffers, or a query reads a large table from disk."
        if low
        else f"Cache hit ratios are healthy (≥ {HIT_HEALTHY:g} %)."
        if hit["tables"] is not None
        else "No table has been read yet, so there is no ratio."
    )
    return Result(
        "db cache-hit",
        Status.WARNING if low else Status.OK,
        summary=summary,
        fields=[("Tables", percent(hit["tables"])), ("Indexes", percent(hit["indexes"]))],
        tables=[
            Table(
                ["table", "blocks from disk", "from cache", "hit"],
                [
                    [t["name"], f"{t['read']:,}", f"{t['hit']:,}", percent(t["ratio"])]
                    for t in tables
                ],
                title="Tables read most from disk",
            )
        ]
        if tables
        else [],
        data={
            "tables": hit["tables"],
            "indexes": hit["indexes"],
            "worst": [dict(t) for t in tables],
        },
    )


def _needed(by_name: dict[str, Any], server: Any) -> list[tuple[str, Text, bool]]:
    """(extension, why ClientForge needs it, satisfied) for each need."""
    needs: list[tuple[str, Text, bool]] = [
        (name, why, by_name.get(name, {}).get("installed") is not None)
        for name, why in NEEDED.items()
    ]
    uuid = [n for n in ("pgcrypto", "uuid-ossp") if by_name.get(n, {}).get("installed")]
    builtin = server["version"] >= 130000
    why = "UUID keys: gen_random_uuid() is built in from PostgreSQL 13" if builtin else "UUID keys"
    needs.append(("pgcrypto or uuid-ossp", why, bool(uuid) or builtin))
    return needs


def extension_problems(by_name: dict[str, Any], server: Any) -> list[Text]:
    """What `db extensions` and `verify` warn about: a missing need (pg_trgm is optional), an idle
    pg_stat_statements."""
    problems: list[Text] = [
        rich(Code(name), " is missing: ", why)
        for name, why, ok in _needed(by_name, server)
        if not ok and name != "pg_trgm"
    ]
    preloaded = "pg_stat_statements" in (server["preload"] or "")
    if by_name.get("pg_stat_statements", {}).get("installed") and not preloaded:
        problems.append(
            rich(
                Code("pg_stat_statements"),
                " is installed but not in shared_preload_libraries, so it records nothing",
            )
        )
    return problems


def _state(row: dict[str, Any] | None) -> str:
    if row is None:
        return "✗ not available"
    return f"✓ {row['installed']}" if row["installed"] else f"○ available ({row['available']})"


@command(
    "db extensions",
    summary="Installed and available extensions, and which ClientForge needs.",
    examples=("db extensions",),
)
async def db_extensions(ctx: Context, _: object) -> Result:
    """Extensions ClientForge needs, then all installed; pg_stat_statements' preload checked."""
    rows, (server,) = await ctx.backends.pg.read_many([(EXTENSIONS, ()), (SERVER, ())])
    by_name = {r["name"]: dict(r) for r in rows}
    needs = _needed(by_name, server)
    preloaded = "pg_stat_statements" in (server["preload"] or "")
    problems = extension_problems(by_name, server)
    first = [
        [
            name,
            why,
            _state(by_name.get(name))
            if name in by_name or " or " not in name
            else ("✓ built in" if ok else "✗ missing"),
        ]
        for name, why, ok in needs
    ]
    installed = [[r["name"], r["installed"], r["available"]] for r in rows if r["installed"]]
    return Result(
        "db extensions",
        Status.WARNING if problems else Status.OK,
        summary=rich(join("; ", problems), ".")
        if problems
        else "Every extension ClientForge needs is there.",
        fields=[("shared_preload_libraries", server["preload"] or "(empty)")],
        tables=[
            Table(["extension", "ClientForge needs it for", "state"], first, title="Needed"),
            Table(["installed", "version", "newest available"], installed, title="Installed"),
        ],
        data={
            "needed": [{"extension": n, "why": w, "ok": ok} for n, w, ok in needs],
            "installed": {r["name"]: r["installed"] for r in rows if r["installed"]},
            "available": sorted(r["name"] for r in rows),
            "preloaded": preloaded,
        },
    )

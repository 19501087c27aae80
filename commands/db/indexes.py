"""`db indexes`: read-only; missing-index candidates, unused/duplicate/invalid indexes (PgHero)."""

from __future__ import annotations

import re
from typing import Any

from bot.core.context import Context
from bot.core.errors import BackendError, CommandError
from bot.core.registry import command
from bot.core.result import Result, Status, Table
from bot.text.cells import Code, Text, join, lines, rich
from commands.db import locked
from commands.db.pg import one_line

MIN_ROWS, SEQ_SHARE, UNUSED_SCANS = 10_000, 95, 50
# pg_relation_size and pg_get_indexdef wait for a table's ACCESS EXCLUSIVE lock; `h` is
# locked.CTES' `held` joined on the index's table
INDEX_SIZE = (
    "CASE WHEN h.oid IS NULL THEN pg_relation_size({index}) "
    "ELSE (SELECT relpages::bigint * current_setting('block_size')::bigint "
    "FROM pg_class WHERE oid = {index}) END"
)
DEFINITION = "CASE WHEN h.oid IS NULL THEN pg_get_indexdef({index}) END"
SEQ_SCANNED = f"""WITH {locked.CTES}
SELECT s.schemaname AS schema, s.relname AS name,
       format('%I.%I', s.schemaname, s.relname) AS quoted,
       s.seq_scan, coalesce(s.idx_scan, 0) AS idx_scan, s.seq_tup_read,
       greatest(s.n_live_tup, c.reltuples::bigint) AS est_rows,
       {locked.TOTAL} AS size,
       h.pid AS locked_by,
       100.0 * coalesce(s.idx_scan, 0) / nullif(s.seq_scan + coalesce(s.idx_scan, 0), 0)
         AS idx_share,
       (SELECT array_agg(a.attname::text) FROM pg_attribute a
         WHERE a.attrelid = s.relid AND a.attnum > 0 AND NOT a.attisdropped) AS columns
  FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid LEFT JOIN held h ON h.oid = s.relid
 WHERE s.seq_scan > 0 AND greatest(s.n_live_tup, c.reltuples::bigint) >= $1
   AND 100.0 * coalesce(s.idx_scan, 0) / (s.seq_scan + coalesce(s.idx_scan, 0)) < $2
 ORDER BY s.seq_tup_read DESC LIMIT 20"""
UNUSED = f"""WITH {locked.CTES}
SELECT s.schemaname AS schema, s.relname AS table, s.indexrelname AS index, s.idx_scan,
       {INDEX_SIZE.format(index="s.indexrelid")} AS size, h.pid AS locked_by
  FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
  LEFT JOIN held h ON h.oid = s.relid
 WHERE NOT i.indisunique AND NOT i.indisprimary AND i.indisvalid AND s.idx_scan <= $1
 ORDER BY size DESC, s.indexrelname LIMIT 20"""
DUPLICATES = f"""
WITH {locked.CTES},
idx AS (
  SELECT i.indexrelid, i.indrelid, i.indisunique, i.indisprimary, c.relam,
         string_to_array(i.indkey::text, ' ') AS cols,
         string_to_array(i.indclass::text, ' ') AS classes,
         i.indexprs IS NULL AND i.indpred IS NULL AS plain
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE i.indisvalid AND n.nspname NOT IN ('pg_catalog', 'information_schema')
     AND n.nspname !~ '^pg_toast')
SELECT a.indexrelid::regclass::text AS index, b.indexrelid::regclass::text AS covered_by,
       a.indrelid::regclass::text AS table, {INDEX_SIZE.format(index="a.indexrelid")} AS size,
       {DEFINITION.format(index="a.indexrelid")} AS definition,
       {DEFINITION.format(index="b.indexrelid")} AS covering, h.pid AS locked_by
  FROM idx a
  JOIN idx b ON a.indrelid = b.indrelid AND a.indexrelid <> b.indexrelid AND a.relam = b.relam
  LEFT JOIN held h ON h.oid = a.indrelid
 WHERE a.plain AND b.plain AND NOT a.indisunique AND NOT a.indisprimary
   AND b.cols[1:cardinality(a.cols)] = a.cols AND b.classes[1:cardinality(a.classes)] = a.classes
   AND (cardinality(a.cols) < cardinality(b.cols) OR b.indisunique OR a.indexrelid > b.indexrelid)
 ORDER BY size DESC, index LIMIT 20"""
INVALID = f"""WITH {locked.CTES}
SELECT i.indexrelid::regclass::text AS index, i.indrelid::regclass::text AS table,
       {DEFINITION.format(index="i.indexrelid")} AS definition,
       {INDEX_SIZE.format(index="i.indexrelid")} AS size, h.pid AS locked_by
  FROM pg_index i LEFT JOIN held h ON h.oid = i.indrelid
 WHERE NOT i.indisvalid
   AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = i.indexrelid)
 ORDER BY 1"""
FILTERS = """
SELECT s.query, s.calls FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
 WHERE d.datname = current_database() AND s.query ILIKE '%' || $1 || '%' AND s.query ILIKE '%where%'
 ORDER BY s.calls DESC LIMIT 20"""
CONDITION = re.compile(
    r"\b(?:\w+\.)?\"?(\w+)\"?\s*(?:=|<|>|<=|>=|\bin\b|\bbetween\b|\blike\b|\bilike\b)",
    re.IGNORECASE,
)


def suggest(table: Any, statements: list[Any]) -> str | None:
    """A `CREATE INDEX CONCURRENTLY` on the column recorded statements filter on most, if any."""
    columns, votes = set(table["columns"] or []), dict[str, int]()
    for row in statements:
        where = re.split(r"\bwhere\b", row["query"], maxsplit=1, flags=re.IGNORECASE)
        for column in CONDITION.findall(where[1] if len(where) > 1 else ""):
            if column in columns:
                votes[column] = votes.get(column, 0) + row["calls"]
    if not votes:
        return None
    best = max(sorted(votes), key=votes.__getitem__)
    return f"CREATE INDEX CONCURRENTLY ON {table['quoted']} ({best});"


async def _suggestions(ctx: Context, tables: list[Any]) -> list[str | None]:
    """Suggested indexes from pg_stat_statements, or none where it is not usable."""
    if not tables:
        return []
    try:
        found = await ctx.backends.pg.read_many([(FILTERS, (t["name"],)) for t in tables])
    except (
        BackendError,
        CommandError,
    ):  # suggestions are optional: pg_stat_statements may be absent
        return [None] * len(tables)
    return [suggest(t, rows) for t, rows in zip(tables, found, strict=True)]


def _tables(
    seq: list[Any], hints: list[str | None], unused: list[Any], dupes: list[Any], invalid: list[Any]
) -> list[Table]:
    tables = []
    if invalid:
        tables.append(
            Table(
                ["invalid index", "table", "size", "fix"],
                [
                    [
                        r["index"],
                        r["table"],
                        locked.approx(r["size"], r["locked_by"]),
                        f"DROP INDEX CONCURRENTLY {r['index']}; then create it again",
                    ]
                    for r in invalid
                ],
                title="Invalid indexes (never used by queries)",
            )
        )
    if seq:
        tables.append(
            Table(
                ["table", "rows", "size", "seq scans", "index scans", "index use", "suggestion"],
                [
                    [
                        r["quoted"],
                        f"{r['est_rows']:,}",
                        locked.approx(r["size"], r["locked_by"]),
                        f"{r['seq_scan']:,}",
                        f"{r['idx_scan']:,}",
                        f"{r['idx_share'] or 0:.0f} %",
                        hint or "—",
                    ]
                    for r, hint in zip(seq, hints, strict=True)
                ],
                title="Missing-index candidates",
            )
        )
    if dupes:
        tables.append(
            Table(
                ["duplicate index", "covered by", "table", "size"],
                [
                    [
                        r["index"],
                        r["covered_by"],
                        r["table"],
                        locked.approx(r["size"], r["locked_by"]),
                    ]
                    for r in dupes
                ],
                title="Duplicate indexes",
            )
        )
    if unused:
        tables.append(
            Table(
                ["unused index", "table", "scans", "size"],
                [
                    [
                        r["index"],
                        f"{r['schema']}.{r['table']}",
                        f"{r['idx_scan']:,}",
                        locked.approx(r["size"], r["locked_by"]),
                    ]
                    for r in unused
                ],
                title=f"Unused indexes (≤ {UNUSED_SCANS} scans)",
            )
        )
    return tables


def _covered(row: Any) -> Text:
    """ "• idx: definition is covered by definition"; a locked table's are not read."""
    if row["locked_by"]:
        return (
            f"• {row['index']} is covered by {row['covered_by']} (definitions not read: "
            f"the table is locked by pid {row['locked_by']})"
        )
    return rich(
        f"• {row['index']}: ",
        Code(one_line(row["definition"], 160)),
        " is covered by ",
        Code(one_line(row["covering"], 160)),
    )


@command(
    "db indexes",
    summary="Missing-index candidates, unused, duplicate and invalid indexes (never changes any).",
    examples=("db indexes",),
)
async def db_indexes(ctx: Context, _: object) -> Result:
    """Index findings, the ones that hurt most first; suggestions are shown, never run."""
    seq, unused, dupes, invalid, held = await ctx.backends.pg.read_many(
        [
            (SEQ_SCANNED, (MIN_ROWS, SEQ_SHARE)),
            (UNUSED, (UNUSED_SCANS,)),
            (DUPLICATES, ()),
            (INVALID, ()),
            (locked.LIST, ()),
        ]
    )
    hints = await _suggestions(ctx, seq)
    status = Status.CRITICAL if invalid else Status.WARNING if (seq or dupes or held) else Status.OK
    counts = {
        "invalid": len(invalid),
        "missing": len(seq),
        "duplicate": len(dupes),
        "unused": len(unused),
    }
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "no findings"
    text = (
        "Suggestions are for you to review and run yourself, outside peak hours; forge never "
        "creates or drops an index. Scan counts are since statistics were last reset."
    )
    duplicate_text = join("\n", [_covered(r) for r in dupes[:5]])
    return Result(
        "db indexes",
        status,
        summary=f"Indexes: {summary}.",
        fields=[(k.title(), str(n)) for k, n in counts.items()],
        tables=[*_tables(seq, hints, unused, dupes, invalid), *locked.table(held)],
        text=lines(locked.note(held) or None, duplicate_text or None, text or None),
        data={
            "locked": locked.data(held),
            "invalid": [dict(r) for r in invalid],
            "duplicate": [dict(r) for r in dupes],
            "unused": [dict(r) for r in unused],
            "missing": [
                {
                    "table": r["quoted"],
                    "seq_scan": r["seq_scan"],
                    "idx_scan": r["idx_scan"],
                    "rows": r["est_rows"],
                    "suggestion": h,
                }
                for r, h in zip(seq, hints, strict=True)
            ],
        },
    )

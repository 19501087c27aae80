"""Tables under ACCESS EXCLUSIVE: found in pg_locks, sized from the catalog instead of waiting.

pg_relation_size, pg_total_relation_size, pg_indexes_size and pg_get_indexdef all take ACCESS
SHARE on the table, so one ALTER TABLE, VACUUM FULL or LOCK TABLE (granted, or even only queued)
makes them wait for minutes. The size reads below go through `held`: a table that it, its TOAST
table or one of its indexes is locked gets relpages × block_size, read without a lock.
"""

from __future__ import annotations

from typing import Any

from bot.core.result import Table
from bot.text.cells import Code, Text, join, rich
from bot.text.units import duration, size

# Every AccessExclusiveLock of this database, granted or waited for, by another session; then the
# table each one stops (the relation itself, the owner of a TOAST table or of an index).
CTES = """locked AS (
  SELECT DISTINCT ON (l.relation) l.relation AS oid, l.pid, l.granted
    FROM pg_locks l
   WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'
     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
     AND l.pid IS DISTINCT FROM pg_backend_pid()
   ORDER BY l.relation, l.granted DESC, l.pid),
held AS (
  SELECT DISTINCT ON (s.oid) s.oid, s.pid, s.granted FROM (
    SELECT k.oid, k.pid, k.granted FROM locked k
    UNION ALL SELECT i.indrelid, k.pid, k.granted
      FROM locked k JOIN pg_index i ON i.indexrelid = k.oid
    UNION ALL SELECT t.oid, k.pid, k.granted
      FROM locked k JOIN pg_class t ON t.reltoastrelid = k.oid
    UNION ALL SELECT t.oid, k.pid, k.granted
      FROM locked k JOIN pg_index i ON i.indexrelid = k.oid
      JOIN pg_class t ON t.reltoastrelid = i.indrelid) s
   ORDER BY s.oid, s.granted DESC, s.pid)"""
BLOCK = "current_setting('block_size')::bigint"
HEAP_EST = f"c.relpages::bigint * {BLOCK}"
INDEXES_EST = f"""(SELECT coalesce(sum(x.relpages), 0)::bigint FROM pg_index i
    JOIN pg_class x ON x.oid = i.indexrelid WHERE i.indrelid = c.oid) * {BLOCK}"""
TOAST_EST = f"""(SELECT coalesce(sum(x.relpages), 0)::bigint FROM pg_class x
    WHERE c.reltoastrelid <> 0 AND (x.oid = c.reltoastrelid
       OR x.oid IN (SELECT i.indexrelid FROM pg_index i WHERE i.indrelid = c.reltoastrelid)))
    * {BLOCK}"""
TOAST = "coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0)"


def unless_locked(exact: str, estimate: str, held: str = "h") -> str:
    """`exact` for a table nobody locked; the catalog's `estimate` for one in `held`."""
    return f"CASE WHEN {held}.oid IS NULL THEN {exact} ELSE {estimate} END"


TOTAL = unless_locked("pg_total_relation_size(c.oid)", f"{HEAP_EST} + {INDEXES_EST} + {TOAST_EST}")
TABLE = unless_locked("pg_table_size(c.oid)", f"{HEAP_EST} + {TOAST_EST}")
HEAP = unless_locked(f"pg_table_size(c.oid) - {TOAST}", HEAP_EST)
INDEXES = unless_locked("pg_indexes_size(c.oid)", INDEXES_EST)
TOAST_SIZE = unless_locked(TOAST, TOAST_EST)
RELATION = unless_locked("pg_relation_size(c.oid)", HEAP_EST)
LIST = f"""WITH {CTES}
SELECT format('%I.%I', n.nspname, c.relname) AS name, h.pid, h.granted,
       pg_blocking_pids(h.pid) AS blockers, a.state, left(a.query, 200) AS query,
       extract(epoch FROM now() - coalesce(a.query_start, a.xact_start)) AS for_s,
       {HEAP_EST} + {INDEXES_EST} + {TOAST_EST} AS size, greatest(c.reltuples, 0)::bigint AS rows
  FROM held h JOIN pg_class c ON c.oid = h.oid JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_stat_activity a ON a.pid = h.pid
 WHERE c.relkind IN ('r', 'p', 'm') ORDER BY name"""


def approx(value: int | None, locked: object) -> str:
    """A size, marked `≈` when it is the catalog's estimate for a locked table."""
    return f"≈ {size(value)}" if locked else size(value)


def holder(row: Any) -> str:
    """`pid 4242`, or `pid 4242 (waiting behind 4100)` for a lock only asked for."""
    who = f"pid {row['pid']}" if row["pid"] is not None else "a prepared transaction"
    if row["granted"] or not row["blockers"]:
        return who
    return f"{who} (waiting behind {', '.join(map(str, row['blockers']))})"


def table(rows: list[Any]) -> list[Table]:
    """The locked tables, each with who holds (or waits for) the lock and its estimated size."""
    if not rows:
        return []
    return [
        Table(
            ["locked table", "ACCESS EXCLUSIVE", "for", "size (estimate)", "rows (estimate)"],
            [
                [
                    r["name"],
                    holder(r),
                    duration(r["for_s"]),
                    f"≈ {size(r['size'])}",
                    f"{r['rows']:,}",
                ]
                for r in rows
            ],
            title="Locked now: sizes from the catalog (relpages), not read under the lock",
        )
    ]


def note(rows: list[Any]) -> Text:
    """One sentence that says which tables are locked and that their figures are estimates."""
    if not rows:
        return ""
    names = join(", ", [rich(Code(r["name"]), f" ({holder(r)})") for r in rows[:5]])
    return rich(
        "Locked under ACCESS EXCLUSIVE: ",
        names,
        ". Their sizes are the catalog's estimate (≈, as of the last VACUUM or ANALYZE); ",
        Code("db locks"),
        " shows who waits.",
    )


def data(rows: list[Any]) -> list[dict[str, Any]]:
    """The locked tables for --json."""
    return [
        {
            "table": r["name"],
            "pid": r["pid"],
            "granted": r["granted"],
            "blockers": list(r["blockers"] or []),
            "size_estimate": r["size"],
            "rows_estimate": r["rows"],
        }
        for r in rows
    ]

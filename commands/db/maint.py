"""`db analyze|vacuum [--full]`: maintenance, bounded lock waits, pg_stat_progress progress."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from pydantic import model_validator

from bot.core.context import Context
from bot.core.errors import BackendError, CommandError
from bot.core.registry import Args, Risk, Role, command, option, positional
from bot.core.result import Action, Result, Status
from bot.core.scope import Scope, StaleScope
from bot.text.cells import Code, rich
from bot.text.units import duration, size
from commands.db.pg import Relation, TableName, find_table

if TYPE_CHECKING:
    import asyncpg

LOCK_WAIT_S, POLL_S, RUN_LIMIT_S = 5, 5.0, 3300
FULL_MB_PER_S = (50, 200)  # a rewrite's usual pace on server disks, for the preview's estimate
TABLE_FACTS = """SELECT pg_total_relation_size($1::oid) AS total, pg_relation_size($1::oid) AS heap,
       coalesce(s.n_live_tup, 0) AS live, coalesce(s.n_dead_tup, 0) AS dead,
       greatest(s.last_vacuum, s.last_autovacuum) AS vacuumed,
       greatest(s.last_analyze, s.last_autoanalyze) AS analyzed
  FROM (SELECT $1::oid AS oid) o LEFT JOIN pg_stat_user_tables s ON s.relid = o.oid"""
PROGRESS = """SELECT phase, heap_blks_total AS total, coalesce(heap_blks_scanned, 0) AS done
  FROM pg_stat_progress_vacuum WHERE pid = $1
UNION ALL SELECT phase, heap_blks_total, heap_blks_scanned
  FROM pg_stat_progress_cluster WHERE pid = $1
UNION ALL SELECT phase, sample_blks_total, sample_blks_scanned
  FROM pg_stat_progress_analyze WHERE pid = $1"""


class TableArgs(Args):
    """An optional table."""

    table: TableName | None = positional(
        None, help='one table ("contacts" or "schema.table"); default: all of them'
    )


class VacuumArgs(TableArgs):
    """Arguments of `db vacuum`."""

    full: bool = option(
        False, help="rewrite the table to give space back to the OS (locks it; needs approval)"
    )
    dry_run: bool = option(False, help="say what would happen, change nothing")

    @model_validator(mode="after")
    def full_needs_table(self) -> VacuumArgs:
        """`--full` needs one table: a database-wide VACUUM FULL would lock every table in turn."""
        if self.full and not self.table:
            raise ValueError('--full needs one table: "db vacuum <table> --full"')
        return self


async def _progress_loop(ctx: Context, pid: int, what: str) -> None:
    """Edit the progress message from pg_stat_progress_* until cancelled."""
    while True:
        await asyncio.sleep(POLL_S)
        rows = await ctx.backends.pg.read(PROGRESS, pid)
        if rows and rows[0]["total"]:
            share = 100 * rows[0]["done"] / rows[0]["total"]
            await ctx.progress(
                f"{what}: {rows[0]['phase']}, {share:.0f} % of {rows[0]['total']:,} blocks…"
            )


async def maintain(ctx: Context, sql: str, what: str) -> float:
    """Run one maintenance statement with a bounded lock wait, reporting progress; seconds taken."""

    async def work(conn: asyncpg.Connection) -> float:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        await conn.execute(f"SET lock_timeout = '{LOCK_WAIT_S}s'")
        watcher = asyncio.create_task(_progress_loop(ctx, pid, what))
        started = ctx.clock.monotonic()
        try:
            await conn.execute(sql, timeout=RUN_LIMIT_S)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
            await conn.execute("RESET lock_timeout")
        return ctx.clock.monotonic() - started

    return await ctx.backends.pg.run(work, RUN_LIMIT_S + 30)


def lock_refused(exc: BackendError) -> bool:
    """True when PostgreSQL gave up waiting for the lock (lock_timeout)."""
    return "LockNotAvailableError" in str(exc)


async def _facts(ctx: Context, table: Relation | None) -> Any:
    return (await ctx.backends.pg.read(TABLE_FACTS, table.oid))[0] if table else None


@command(
    "db analyze",
    summary="Refresh planner statistics (ANALYZE) for one table or the whole database.",
    args=TableArgs,
    role=Role.OPERATOR,
    risk=Risk.WRITE,
    timeout=3600,
    slow=True,
    examples=("db analyze", "db analyze contacts"),
)
async def db_analyze(ctx: Context, args: TableArgs) -> Result:
    """ANALYZE, timed; reads and writes go on meanwhile."""
    table = await find_table(ctx, args.table) if args.table else None
    target = table.label if table else "the whole database"
    try:
        took = await maintain(
            ctx, f"ANALYZE {table.quoted}" if table else "ANALYZE", f"ANALYZE {target}"
        )
    except BackendError as exc:
        if lock_refused(exc):
            return _lock_busy("db analyze", target)
        raise
    took_text = duration(took) if took >= 1 else f"{took * 1000:.0f} ms"
    return Result(
        "db analyze",
        summary=f"Statistics of {target} refreshed in {took_text}.",
        actions=[Action("Bloat estimate", "db bloat")],
        data={"table": table.label if table else None, "seconds": round(took, 3)},
    )


def _lock_busy(command: str, target: str) -> Result:
    return Result(
        command,
        Status.WARNING,
        summary=f"Not run: the lock on {target} was not granted within "
        f"{LOCK_WAIT_S} s, so forge gave up rather than make every other query queue behind it.",
        text=rich(
            "A long transaction holds it: see ",
            Code("db locks"),
            " and ",
            Code("db long"),
            ", then try again.",
        ),
        actions=[Action("Locks", "db locks"), Action("Long statements", "db long")],
    )


def _estimate(total: int) -> str:
    fast, slow = (total / (1 << 20) / rate for rate in reversed(FULL_MB_PER_S))
    return f"about {duration(fast)}–{duration(slow)}" if slow >= 1 else "well under a second"


async def vacuum_preview(ctx: Context, args: VacuumArgs) -> Result:
    """What `db vacuum` would do: which lock, for how long, how much it may give back."""
    table = await find_table(ctx, args.table) if args.table else None
    facts = await _facts(ctx, table)
    target = table.label if table else "every table of the database"
    fields = (
        [
            ("Table size", size(facts["total"])),
            ("Live rows", f"{facts['live']:,}"),
            ("Dead rows", f"{facts['dead']:,}"),
        ]
        if facts
        else []
    )
    if args.full:
        summary = (
            f"Would rewrite {target} with VACUUM FULL, holding an ACCESS EXCLUSIVE lock the whole "
            f"time: every read and write of {target} waits until it ends: "
            f"{_estimate(facts['total'])} for {size(facts['total'])}. It needs up to "
            f"{size(facts['total'])} of free disk while it runs."
        )
    else:
        summary = (
            f"Would VACUUM {target}: dead rows become reusable space; a SHARE UPDATE EXCLUSIVE "
            "lock lets reads and writes go on (only DDL and other vacuums wait). The files do not "
            "shrink."
        )
    return Result(
        f"db vacuum{' --full' if args.full else ''} --dry-run",
        Status.WARNING if args.full else Status.OK,
        summary=summary,
        fields=fields,
        text=f"forge waits at most {LOCK_WAIT_S} s for the lock, so a long transaction cannot make "
        "the whole application queue behind it.",
        data={
            "table": table.label if table else None,
            "full": args.full,
            "size": facts["total"] if facts else None,
        },
        scope=Scope.of(table=table.label, oid=table.oid) if args.full and table else None,
    )


async def _approved_table(ctx: Context, name: str) -> Relation:
    """The table the approved dry run showed: the same oid, or StaleScope (dropped, re-created)."""
    try:
        table = await find_table(ctx, name)
    except CommandError:
        if ctx.scope is None:
            raise
        raise StaleScope(f"table {ctx.scope['table']} was dropped since the request.") from None
    if ctx.scope is not None and table.oid != ctx.scope["oid"]:
        raise StaleScope(
            f"table {table.label} was dropped and created again since the request (oid "
            f"{ctx.scope['oid']} approved, now {table.oid}): not the table the dry run showed."
        )
    return table


@command(
    "db vacuum",
    summary="VACUUM one table or the database; --full <table> rewrites it under an exclusive "
    "lock (destructive: needs approval).",
    args=VacuumArgs,
    role=Role.OPERATOR,
    risk=Risk.WRITE,
    preview=vacuum_preview,
    confirm=lambda args: args.table or "",
    escalate=lambda args: args.full,
    timeout=3600,
    slow=True,
    examples=("db vacuum", "db vacuum contacts", "db vacuum contacts --full"),
    if_unknown="whether a VACUUM FULL is still running or waiting for its lock (db long, "
    "db locks) and the table's size (db tables).",
)
async def db_vacuum(ctx: Context, args: VacuumArgs) -> Result:
    """VACUUM (or VACUUM FULL), with the table's size before and after."""
    if args.dry_run:
        return await vacuum_preview(ctx, args)
    table = await _approved_table(ctx, args.table) if args.table else None
    target = table.label if table else "the whole database"
    before = await _facts(ctx, table)
    statement = f"VACUUM {'(FULL) ' if args.full else ''}{table.quoted if table else ''}".strip()
    try:
        took = await maintain(
            ctx, statement, statement.split(" ")[0] + (" FULL " if args.full else " ") + target
        )
    except BackendError as exc:
        if lock_refused(exc):
            return _lock_busy("db vacuum", target)
        raise
    after = await _facts(ctx, table)
    fields = [("Duration", duration(took) if took >= 1 else f"{took * 1000:.0f} ms")]
    if before and after:
        fields += [
            ("Size before", size(before["total"])),
            ("Size after", size(after["total"])),
            ("Dead rows left", f"{after['dead']:,}"),
        ]
    freed = (before["total"] - after["total"]) if before and after else 0
    return Result(
        f"db vacuum{' --full' if args.full else ''}",
        summary=f"VACUUM{' FULL' if args.full else ''} of {target} done"
        + (f"; {size(freed)} given back." if freed > 0 else "."),
        fields=fields,
        data={
            "table": table.label if table else None,
            "full": args.full,
            "seconds": round(took, 3),
            "before": before["total"] if before else None,
            "after": after["total"] if after else None,
        },
    )

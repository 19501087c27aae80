"""`db connections|locks|long`: who is connected, who blocks whom, what runs long."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bot.core.args import Duration
from bot.core.context import Context
from bot.core.registry import Args, command, option
from bot.core.result import Action, Result, Status, Table
from bot.text.cells import Code, rich
from bot.text.units import duration
from commands.db.pg import one_line, statements_file

CAPACITY = """SELECT current_setting('max_connections')::int AS max,
       current_setting('superuser_reserved_connections')::int AS reserved,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS used,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'
           AND datname IS DISTINCT FROM current_database()) AS elsewhere,
       current_database() AS db"""
BY_STATE = """SELECT coalesce(state, 'unknown') AS state, count(*) AS n FROM pg_stat_activity
 WHERE backend_type = 'client backend' AND datname = current_database()
 GROUP BY 1 ORDER BY 2 DESC, 1"""
BY_SOURCE = """SELECT coalesce(datname, '—') AS db, coalesce(usename, '—') AS usr,
       coalesce(nullif(application_name, ''), '—') AS app, count(*) AS n
  FROM pg_stat_activity WHERE backend_type = 'client backend'
 GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1, 2, 3 LIMIT 10"""
SESSION_COLUMNS = """pid, usename, coalesce(nullif(application_name, ''), '—') AS app, datname,
       state, query, backend_type, pid = pg_backend_pid() AS own, backend_start, query_start,
       extract(epoch FROM now() - coalesce(query_start, xact_start)) AS running_s,
       extract(epoch FROM now() - xact_start) AS xact_s,
       extract(epoch FROM now() - state_change) AS state_s,
       wait_event_type, wait_event, datname = current_database() AS here"""
HERE = "datname = current_database()"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
IDLE_IN_TX = f"""SELECT {SESSION_COLUMNS} FROM pg_stat_activity
 WHERE state LIKE 'idle in transaction%' AND {HERE} ORDER BY state_change LIMIT 20"""
BLOCKED = f"""SELECT {SESSION_COLUMNS}, pg_blocking_pids(pid) AS blockers,
       (SELECT l.mode || ' on ' || coalesce(l.relation::regclass::text, l.locktype) FROM pg_locks l
         WHERE l.pid = a.pid AND NOT l.granted LIMIT 1) AS wants
  FROM pg_stat_activity a WHERE {HERE} AND cardinality(pg_blocking_pids(pid)) > 0
 ORDER BY query_start LIMIT 50"""
SESSIONS = f"SELECT {SESSION_COLUMNS} FROM pg_stat_activity WHERE pid = ANY($1::int[])"
RUNNING = """state IS DISTINCT FROM 'idle' AND pid <> pg_backend_pid()
   AND backend_type = 'client backend'
   AND now() - coalesce(query_start, xact_start) > $1::interval"""
LONG = f"""SELECT {SESSION_COLUMNS} FROM pg_stat_activity WHERE {HERE} AND {RUNNING}
 ORDER BY coalesce(query_start, xact_start) LIMIT 50"""
LONG_ELSEWHERE = f"""SELECT count(*) AS n FROM pg_stat_activity
 WHERE datname IS DISTINCT FROM current_database() AND {RUNNING}"""
IDLE_TX_WARN, USE_WARN, USE_CRIT = 60, 0.8, 0.95


class LongArgs(Args):
    """Arguments of `db long`."""

    min: Duration = option(
        timedelta(seconds=60), help="only statements running longer than this (default 60s)"
    )


def micros(at: datetime) -> int:
    """A moment as microseconds since 1970, as `db cancel --query-start` takes it."""
    return (at - EPOCH) // timedelta(microseconds=1)


def cancel_command(pid: int, r: Any | None) -> str:
    """`db cancel <pid> --query-start <µs>`: a button cancels only the statement it showed."""
    started = f" --query-start {micros(r['query_start'])}" if r and r["query_start"] else ""
    return f"db cancel {pid}{started}"


def who(r: Any) -> str:
    """A session's `user / application`."""
    return f"{r['usename'] or '—'} / {r['app']}"


@command(
    "db connections",
    summary="Connections by state and source against max_connections; idle in transaction flagged.",
    examples=("db connections",),
)
async def db_connections(ctx: Context, _: object) -> Result:
    """How full the server is, what sessions are doing, who holds a transaction open while idle."""
    (cap,), states, sources, idle = await ctx.backends.pg.read_many(
        [(CAPACITY, ()), (BY_STATE, ()), (BY_SOURCE, ()), (IDLE_IN_TX, ())], diagnostic=True
    )
    usable = cap["max"] - cap["reserved"]
    share = cap["used"] / usable if usable > 0 else 1.0
    stuck = [r for r in idle if (r["state_s"] or 0) > IDLE_TX_WARN]
    status = (
        Status.CRITICAL
        if share > USE_CRIT
        else Status.WARNING
        if share > USE_WARN or stuck
        else Status.OK
    )
    summary = f"{cap['used']} of {usable} usable connections in use ({share:.0%})"
    summary += f"; {len(stuck)} idle in transaction for over {IDLE_TX_WARN} s." if stuck else "."
    tables = [
        Table(
            ["state", "connections"],
            [[s["state"], str(s["n"])] for s in states],
            title=f"In {cap['db']}",
        ),
        Table(
            ["database", "user", "application", "connections"],
            [[s["db"], s["usr"], s["app"], str(s["n"])] for s in sources],
            title="By source",
        ),
    ]
    if idle:
        tables.insert(
            0,
            Table(
                ["pid", "user / app", "idle for", "transaction age", "last statement"],
                [
                    [
                        str(r["pid"]),
                        who(r),
                        duration(r["state_s"]),
                        duration(r["xact_s"]),
                        one_line(r["query"], 60),
                    ]
                    for r in idle
                ],
                title="Idle in transaction (holds locks and blocks vacuum)",
            ),
        )
    return Result(
        "db connections",
        status,
        summary=summary,
        tables=tables,
        fields=[
            ("In use", str(cap["used"])),
            ("max_connections", str(cap["max"])),
            ("Reserved for superusers", str(cap["reserved"])),
            ("In other databases", str(cap["elsewhere"])),
            ("Idle in transaction", str(len(idle))),
        ],
        actions=[
            Action(f"Terminate pid {r['pid']}", f"db terminate {r['pid']}", "danger")
            for r in stuck[:2]
        ],
        data={
            **dict(cap),
            "states": {s["state"]: s["n"] for s in states},
            "idle_in_transaction": [{"pid": r["pid"], "idle_s": r["state_s"]} for r in idle],
        },
    )


def _roots(blocked: list[Any]) -> list[int]:
    """Blockers that are not themselves waiting: ending them frees the chain."""
    waiting = {r["pid"] for r in blocked}
    return sorted({b for r in blocked for b in r["blockers"]} - waiting)


@command(
    "db locks",
    summary="Who blocks whom (pg_blocking_pids), with what each waits for.",
    examples=("db locks",),
)
async def db_locks(ctx: Context, _: object) -> Result:
    """Each blocked session, the lock it wants, who is in its way; root blockers first to act on."""
    blocked = await ctx.backends.pg.read(BLOCKED, diagnostic=True)
    if not blocked:
        return Result(
            "db locks",
            summary="No session is waiting for a lock held by another.",
            data={"blocked": []},
        )
    roots = _roots(blocked)
    pids = sorted({b for r in blocked for b in r["blockers"]})
    holders = {r["pid"]: r for r in await ctx.backends.pg.read(SESSIONS, pids, diagnostic=True)}
    elsewhere = {p for p, h in holders.items() if not h["here"]}
    rows = [
        [
            str(r["pid"]),
            who(r),
            duration(r["running_s"]),
            r["wants"] or f"{r['wait_event_type']}",
            ", ".join(map(str, r["blockers"])),
            one_line(r["query"], 60),
        ]
        for r in blocked
    ]
    root_rows = [
        [str(p), who(h), h["state"] or "—", duration(h["xact_s"]), one_line(h["query"], 60)]
        if p not in elsewhere
        else [str(p), "another database", "—", "—", "not forge's to act on"]
        for p in roots
        if (h := holders.get(p))
    ]
    idle_roots = [
        p
        for p in roots
        if (h := holders.get(p)) and (h["state"] or "").startswith("idle") and p not in elsewhere
    ]
    text = (
        rich(
            f"pid {', '.join(map(str, idle_roots))} is idle in a transaction: cancelling does "
            "nothing, ",
            Code("db terminate"),
            " ends it (needs approval).",
        )
        if idle_roots
        else ""
    )
    return Result(
        "db locks",
        Status.CRITICAL if any((r["running_s"] or 0) > 60 for r in blocked) else Status.WARNING,
        summary=f"{len(blocked)} session{'s' if len(blocked) != 1 else ''} waiting on locks; "
        f"root blocker{'s' if len(roots) != 1 else ''}: {', '.join(map(str, roots))}.",
        text=text,
        tables=[
            Table(
                ["root blocker", "user / app", "state", "transaction age", "statement"],
                root_rows,
                title="Root blockers",
            ),
            Table(
                ["blocked pid", "user / app", "waiting", "wants", "blocked by", "statement"],
                rows,
                title="Waiting",
            ),
        ],
        attachments=statements_file(
            "locks.sql", [(f"pid {r['pid']}", r["query"]) for r in blocked]
        ),
        actions=[
            Action(f"Cancel pid {p}", cancel_command(p, holders.get(p)))
            for p in [p for p in roots if p not in idle_roots and p not in elsewhere][:3]
        ],
        data={
            "blocked": [
                {"pid": r["pid"], "blockers": list(r["blockers"]), "wants": r["wants"]}
                for r in blocked
            ],
            "roots": roots,
        },
    )


@command(
    "db long",
    summary="Statements running longer than a threshold (default 60 s), longest first.",
    args=LongArgs,
    examples=("db long", "db long --min 5m"),
)
async def db_long(ctx: Context, args: LongArgs) -> Result:
    """Running statements and open transactions older than `--min`."""
    rows, (elsewhere,) = await ctx.backends.pg.read_many(
        [(LONG, (args.min,)), (LONG_ELSEWHERE, (args.min,))], diagnostic=True
    )
    limit = duration(args.min.total_seconds())
    others = (
        f"{elsewhere['n']} more in other databases of this server, not listed: forge acts only "
        "on ClientForge's."
        if elsewhere["n"]
        else ""
    )
    if not rows:
        return Result(
            "db long",
            summary=f"No statement has been running longer than {limit}.",
            text=others,
            data={"sessions": [], "other_databases": elsewhere["n"]},
        )
    return Result(
        "db long",
        Status.WARNING,
        summary=f"{len(rows)} statement{'s' if len(rows) != 1 else ''} running "
        f"longer than {limit}; the longest for {duration(rows[0]['running_s'])}.",
        tables=[
            Table(
                ["pid", "user / app", "database", "state", "running", "waiting on", "statement"],
                [
                    [
                        str(r["pid"]),
                        who(r),
                        r["datname"] or "—",
                        r["state"] or "—",
                        duration(r["running_s"]),
                        r["wait_event"] or "—",
                        one_line(r["query"], 60),
                    ]
                    for r in rows
                ],
            )
        ],
        text=others,
        attachments=statements_file(
            "long-statements.sql", [(f"pid {r['pid']}", r["query"]) for r in rows], 60
        ),
        actions=[Action(f"Cancel pid {r['pid']}", cancel_command(r["pid"], r)) for r in rows[:3]],
        data={
            "sessions": [
                {
                    "pid": r["pid"],
                    "running_s": r["running_s"],
                    "state": r["state"],
                    "query": r["query"],
                }
                for r in rows
            ],
            "other_databases": elsewhere["n"],
        },
    )

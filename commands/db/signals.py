"""`db cancel|terminate`: stop a session's statement, or end the session."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.core.context import Context
from bot.core.errors import CommandError
from bot.core.registry import Args, Risk, Role, command, option, positional
from bot.core.result import Result, Status
from bot.core.scope import Scope, StaleScope
from bot.text.cells import Code, rich
from bot.text.units import duration
from commands.db.activity import EPOCH, SESSIONS, who
from commands.db.pg import one_line

if TYPE_CHECKING:
    import asyncpg

SIGNALLABLE = ("client backend", "autovacuum worker")
SIGNAL_HERE = """SELECT {call} FROM pg_stat_activity
 WHERE pid = $1 AND datname = current_database()
   AND ($2::timestamptz IS NULL OR backend_start = $2)
   AND ($3::timestamptz IS NULL OR query_start = $3)"""


class PidArgs(Args):
    """A PostgreSQL backend pid."""

    pid: int = positional(ge=1, le=2**31 - 1, help="the backend's pid, from db long or db locks")


class CancelArgs(PidArgs):
    """Arguments of `db cancel`."""

    query_start: int | None = option(
        None,
        ge=0,
        help="only the statement that started at this moment (µs since 1970; db long's and db "
        "locks' buttons pass the one they showed)",
    )


class TerminateArgs(PidArgs):
    """Arguments of `db terminate`."""

    dry_run: bool = option(False, help="describe the session, end nothing")


def frozen(found: Any, statement: bool = False) -> Scope:
    """The session as seen: pid and when it connected (`statement`: and when its query started)."""
    started = found["query_start"] if statement else None
    return Scope.of(
        pid=found["pid"],
        backend_start=_iso(found["backend_start"]),
        query_start=_iso(started) if statement else None,
    )


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def shown(pid: int, query_start: int | None) -> Scope | None:
    """The statement a button showed (`db cancel <pid> --query-start µs`), if it names one."""
    if query_start is None:
        return None
    started = EPOCH + timedelta(microseconds=query_start)
    return Scope.of(pid=pid, backend_start=None, query_start=started.isoformat())


def _moment(at: str | None) -> datetime | None:
    return datetime.fromisoformat(at) if at else None


def _clock(at: Any) -> str:
    return at.strftime("%H:%M:%S.%f")[:-3] if at else "—"


def in_scope(found: Any, scope: Scope) -> None:
    """Raise StaleScope unless the session is the one the scope froze (and its statement, if so)."""
    pid, connected = found["pid"], _moment(scope.get("backend_start"))  # type: ignore[arg-type]
    if connected and found["backend_start"] != connected:
        raise StaleScope(
            f"pid {pid} is now another session (connected at {_clock(found['backend_start'])} "
            f"UTC; the approved one connected at {_clock(connected)} UTC), so it was not signalled."
        )
    query_start = _moment(scope.get("query_start"))  # type: ignore[arg-type]
    if query_start and found["query_start"] != query_start:
        raise StaleScope(
            f"pid {pid} is running another statement (started at "
            f"{_clock(found['query_start'])} UTC; the one shown started at "
            f"{_clock(query_start)} UTC), so it was not signalled."
        )


async def session(ctx: Context, pid: int, scope: Scope | None = None) -> Any:
    """The live session with this pid; refused when forge's own, not a client, or elsewhere, and
    stale when it is not the session (or statement) `scope` froze."""
    rows = await ctx.backends.pg.read(SESSIONS, [pid], diagnostic=True)
    if not rows and scope is not None:
        raise StaleScope(f"session {pid} has ended since the request, so it was not signalled.")
    if not rows:
        raise CommandError(
            rich(
                f"No PostgreSQL session has pid {pid} (it may have ended). ",
                Code("db long"),
                " lists running ones.",
            )
        )
    found = rows[0]
    if found["own"]:
        raise CommandError(f"pid {pid} is forge's own connection.")
    if found["backend_type"] not in SIGNALLABLE:
        raise CommandError(
            f"pid {pid} is PostgreSQL's {found['backend_type']}, not a client session: forge "
            "does not signal it."
        )
    if not found["here"]:
        raise CommandError(
            f"pid {pid} is a session of another database on this server "
            f"({found['datname'] or 'none'}), not of ClientForge's: forge does not signal it."
        )
    if scope is not None:
        in_scope(found, scope)
    return found


async def signal(ctx: Context, function: str, scope: Scope) -> bool:
    """Signal the session `scope` froze; a session or statement that changed meanwhile is never
    signalled: it is checked in the same statement, and then named as stale."""
    pid = int(scope["pid"])  # type: ignore[arg-type]
    if await _signal(ctx, function, scope):
        return True
    await session(ctx, pid, scope)
    return False


async def _signal(ctx: Context, function: str, scope: Scope) -> bool:
    """Send pg_cancel_backend or pg_terminate_backend (waiting up to 3 s on PostgreSQL 14+), on
    the diagnostic connection, only while the pid is still the frozen session of this database."""

    async def send(conn: asyncpg.Connection) -> bool:
        call = "pg_cancel_backend(pid)"
        if function == "terminate":
            waits = conn.get_server_version().major >= 14
            call = "pg_terminate_backend(pid, 3000)" if waits else "pg_terminate_backend(pid)"
        return bool(
            await conn.fetchval(
                SIGNAL_HERE.format(call=call),
                scope["pid"],
                _moment(scope.get("backend_start")),  # type: ignore[arg-type]
                _moment(scope.get("query_start")),  # type: ignore[arg-type]
            )
        )

    return await ctx.backends.pg.run(send, diagnostic=True)


async def _after(ctx: Context, pid: int, before: Any, wait_s: float = 2.0) -> Any | None:
    """The session once its statement changed or it ended (None), polling up to `wait_s`."""
    deadline = ctx.clock.monotonic() + wait_s
    while True:
        rows = await ctx.backends.pg.read(SESSIONS, [pid], diagnostic=True)
        now = rows[0] if rows else None
        if now is None or now["state"] != before["state"] or now["running_s"] < before["running_s"]:
            return now
        if ctx.clock.monotonic() >= deadline:
            return now
        await asyncio.sleep(0.1)


@command(
    "db cancel",
    summary="Cancel the statement a session is running (pg_cancel_backend); the session stays.",
    args=CancelArgs,
    role=Role.OPERATOR,
    risk=Risk.WRITE,
    examples=("db cancel 4242",),
)
async def db_cancel(ctx: Context, args: CancelArgs) -> Result:
    """Cancel one running statement (the one shown, with --query-start) and say whether it
    stopped."""
    before = await session(ctx, args.pid, ctx.scope or shown(args.pid, args.query_start))
    if before["state"] == "idle" or (before["state"] or "").startswith("idle in transaction"):
        raise CommandError(
            rich(
                f"pid {args.pid} is {before['state']}: no statement to cancel. An idle "
                "transaction is ended with ",
                Code(f"db terminate {args.pid}"),
                ".",
            )
        )
    if not await signal(ctx, "cancel", ctx.scope or frozen(before, statement=True)):
        raise CommandError(
            f"PostgreSQL did not signal pid {args.pid} (it ended meanwhile, or forge's database "
            "user lacks pg_signal_backend)."
        )
    after = await _after(ctx, args.pid, before)
    stopped = (
        after is None
        or after["state"] != before["state"]
        or after["running_s"] < before["running_s"]
    )
    summary = (
        f"Cancelled the statement of pid {args.pid} ({who(before)}), which had run for "
        f"{duration(before['running_s'])}."
        if stopped
        else rich(
            f"Cancel sent to pid {args.pid}, but it is still running after 2 s (it may be in a "
            "non-interruptible step); check ",
            Code("db long"),
            " again.",
        )
    )
    return Result(
        "db cancel",
        Status.OK if stopped else Status.WARNING,
        summary=summary,
        text=rich("Statement: ", Code(one_line(before["query"], 200))),
        data={"pid": args.pid, "stopped": stopped, "query": before["query"]},
    )


def _describe(found: Any) -> list[tuple[str, str]]:
    return [
        ("pid", str(found["pid"])),
        ("User / app", who(found)),
        ("Database", found["datname"] or "—"),
        ("State", found["state"] or "—"),
        (
            "Connected since",
            found["backend_start"].strftime("%Y-%m-%d %H:%M:%S") if found["backend_start"] else "—",
        ),
        ("Transaction age", duration(found["xact_s"])),
        ("Statement", one_line(found["query"], 120)),
    ]


async def terminate_preview(ctx: Context, args: TerminateArgs) -> Result:
    """What `db terminate` would end: the session, its transaction, its statement."""
    found = await session(ctx, args.pid)
    rollback = (
        f"Its open transaction ({duration(found['xact_s'])} old) is rolled back. "
        if found["xact_s"] is not None
        else ""
    )
    return Result(
        f"db terminate {args.pid} --dry-run",
        Status.WARNING,
        summary=f"Would end session {args.pid} ({who(found)}). {rollback}The client's connection "
        "drops; a pooled client reconnects.",
        fields=_describe(found),
        data={"pid": args.pid, "state": found["state"], "query": found["query"]},
        scope=frozen(found),
    )


@command(
    "db terminate",
    summary="End a session (pg_terminate_backend), rolling back its transaction; needs approval.",
    args=TerminateArgs,
    role=Role.OPERATOR,
    risk=Risk.DESTRUCTIVE,
    preview=terminate_preview,
    confirm=lambda args: str(args.pid),
    examples=("db terminate 4242", "db terminate 4242 --dry-run"),
    if_unknown="whether the session is still there (db connections, db long): the pid may "
    "belong to a new session by now, so check its start time before ending it.",
)
async def db_terminate(ctx: Context, args: TerminateArgs) -> Result:
    """End one session; never forge's own, never a PostgreSQL process but a client or autovacuum."""
    found = await session(ctx, args.pid, ctx.scope)
    ended = await signal(ctx, "terminate", ctx.scope or frozen(found))
    after = await _after(ctx, args.pid, found, 3.0) if ended else found
    if after is not None:
        return Result(
            "db terminate",
            Status.WARNING,
            summary=rich(
                f"Sent terminate to pid {args.pid}, but the session is still there; check ",
                Code("db connections"),
                ".",
            ),
            fields=_describe(found),
            data={"pid": args.pid, "ended": False},
        )
    return Result(
        "db terminate",
        summary=f"Ended session {args.pid} ({who(found)}); its transaction was rolled back.",
        fields=_describe(found),
        data={"pid": args.pid, "ended": True, "query": found["query"]},
    )

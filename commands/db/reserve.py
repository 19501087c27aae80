"""Whether forge keeps a way into ClientForge's PostgreSQL once ClientForge uses every connection,
and how to reserve one: what `forge check` prints under `postgres reserve`."""

from __future__ import annotations

from typing import Any

from bot.core.context import Context
from bot.core.errors import BackendError, CommandError

FORGE_NEEDS = 6  # its pool of 4, the diagnostic connection, one `forge run` beside them
SERVER = """SELECT current_user AS role, r.rolsuper AS superuser,
       current_setting('max_connections')::int AS max,
       current_setting('superuser_reserved_connections')::int AS superuser_reserved,
       coalesce(current_setting('reserved_connections', true), '0')::int AS reserved,
       CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pg_use_reserved_connections')
            THEN pg_has_role(current_user, 'pg_use_reserved_connections', 'MEMBER')
            ELSE false END AS may_use_reserved
  FROM pg_roles r WHERE r.rolname = current_user"""
OTHERS = """SELECT rolname AS role, rolconnlimit AS conn_limit,
       (SELECT count(*) FROM pg_stat_activity a WHERE a.usename = r.rolname) AS used
  FROM pg_roles r WHERE rolcanlogin AND NOT rolsuper AND rolname <> current_user
 ORDER BY used DESC, rolname"""


async def reservation(ctx: Context) -> tuple[bool | None, str]:
    """(reserved, explanation); reserved is None when the server could not be asked."""
    try:
        (server,), others = await ctx.backends.pg.read_many([(SERVER, ()), (OTHERS, ())])
    except (BackendError, CommandError) as exc:
        return None, f"not checked ({exc})"
    return judge(server, others)


def judge(server: Any, others: list[Any]) -> tuple[bool, str]:
    """Reserved or not, from the server's settings and the other login roles' CONNECTION LIMITs."""
    usable = server["max"] - server["superuser_reserved"] - server["reserved"]
    if server["superuser"] and server["superuser_reserved"] > 0:
        return True, (
            f"ok: forge connects as the superuser '{server['role']}', which may use the "
            f"{server['superuser_reserved']} superuser_reserved_connections (a role of its own "
            "with pg_read_all_stats and pg_signal_backend is safer)"
        )
    if server["may_use_reserved"] and server["reserved"] > 0:
        return True, (
            f"ok: '{server['role']}' may use the {server['reserved']} reserved_connections "
            "(pg_use_reserved_connections)"
        )
    unlimited = [r["role"] for r in others if r["conn_limit"] < 0]
    capped = sum(r["conn_limit"] for r in others if r["conn_limit"] >= 0)
    if not unlimited and capped + FORGE_NEEDS <= usable:
        return True, (
            f"ok: the other login roles may hold at most {capped} of the {usable} connections "
            f"non-superusers get, which leaves {usable - capped} for '{server['role']}'"
        )
    return False, advice(server, unlimited, usable)


def advice(server: Any, unlimited: list[str], usable: int) -> str:
    """Why nothing is reserved, and the statements that reserve it."""
    who = ", ".join(f'"{r}"' for r in unlimited[:3]) or "the other login roles together"
    app = unlimited[0] if unlimited else "<clientforge role>"
    role = server["role"] if not server["superuser"] else "forge"
    return (
        f"NOT RESERVED: {who} can take every one of the {usable} connections non-superusers get "
        f"(max_connections {server['max']} - superuser_reserved_connections "
        f"{server['superuser_reserved']}), and then db connections|long|locks|cancel have no "
        "way in unless forge's diagnostic connection was already open. Reserve room:\n"
        f"  ALTER ROLE {app} CONNECTION LIMIT {max(1, usable - FORGE_NEEDS)};\n"
        f"  CREATE ROLE {role} LOGIN CONNECTION LIMIT {FORGE_NEEDS};  (if forge has no role of its"
        f" own)\n  GRANT pg_read_all_stats, pg_signal_backend TO {role};\n"
        "  PostgreSQL 16+: reserved_connections = 2 in postgresql.conf and "
        f"GRANT pg_use_reserved_connections TO {role};\n"
        f"  superuser_reserved_connections ({server['superuser_reserved']}) keeps slots for "
        "superusers only: it helps forge only if forge connects as one, which it should not."
    )

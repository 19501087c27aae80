"""PostgreSQL for backups: password-free URLs, pg_dump/pg_restore with timeouts, exact counts."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from bot.backends.clients import call
from bot.core.errors import BackendTimeout, BackendUnavailable, CommandError
from bot.text.cells import Code, rich
from bot.text.redact import Redactor

if TYPE_CHECKING:
    import asyncpg

USER_SCHEMAS = r"n.nspname NOT IN ('information_schema', 'forge') AND n.nspname NOT LIKE 'pg\_%'"
NOT_EXTENSION = (
    "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{cat}'::regclass AND d.objid = {oid} "
    "AND d.deptype = 'e')"
)
TABLES_SQL = f"""SELECT format('%I.%I', n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND {USER_SCHEMAS}
  AND {NOT_EXTENSION.format(cat="pg_class", oid="c.oid")} ORDER BY 1"""
OBJECTS_SQL = f"""SELECT kind, count(*)::int FROM (
  SELECT CASE WHEN c.relkind IN ('r', 'p') THEN 'tables' WHEN c.relkind IN ('i', 'I') THEN 'indexes'
              WHEN c.relkind = 'S' THEN 'sequences' WHEN c.relkind = 'v' THEN 'views'
              WHEN c.relkind = 'm' THEN 'materialized views' ELSE 'other relations' END AS kind
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p', 'i', 'I', 'S', 'v', 'm', 'f') AND {USER_SCHEMAS}
     AND {NOT_EXTENSION.format(cat="pg_class", oid="c.oid")}
  UNION ALL SELECT 'constraints' FROM pg_constraint co
   JOIN pg_namespace n ON n.oid = co.connamespace
   WHERE {USER_SCHEMAS} AND {NOT_EXTENSION.format(cat="pg_class", oid="co.conrelid")}
  UNION ALL SELECT 'functions' FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE {USER_SCHEMAS} AND {NOT_EXTENSION.format(cat="pg_proc", oid="p.oid")}
  UNION ALL SELECT 'triggers' FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
   JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal AND {USER_SCHEMAS}
  UNION ALL SELECT 'schemas' FROM pg_namespace n WHERE {USER_SCHEMAS}
) x GROUP BY kind"""
TOC_KINDS = (
    "MATERIALIZED VIEW DATA",
    "FK CONSTRAINT",
    "SEQUENCE SET",
    "TABLE DATA",
    "CONSTRAINT",
    "INDEX",
    "TABLE",
    "SEQUENCE",
    "VIEW",
    "FUNCTION",
    "TRIGGER",
)
RESTORE_JOBS = 2


@dataclass(frozen=True)
class Target:
    """A database as the tools reach it: the URL without its password, the password apart."""

    url: str
    password: str | None
    host: str
    port: int
    database: str

    @property
    def label(self) -> str:
        """`host:port/database`, safe to show and to record."""
        return f"{self.host}:{self.port}/{self.database}"

    @property
    def dsn(self) -> str:
        """The full DSN for asyncpg (never shown, never passed to a subprocess)."""
        if not self.password:
            return self.url
        head, rest = self.url.split("://", 1)
        user, at, hostpart = rest.partition("@")
        return f"{head}://{user}:{quote(self.password, safe='')}@{hostpart}" if at else self.url

    def env(self) -> dict[str, str]:
        """The subprocess environment: the password in PGPASSWORD, never on the command line."""
        env = {k: v for k, v in os.environ.items() if k not in ("PGDATABASE", "PGSERVICE")}
        env["PGCONNECT_TIMEOUT"] = env.get("PGCONNECT_TIMEOUT", "10")
        if self.password:
            env["PGPASSWORD"] = self.password
        return env

    def other(self, database: str) -> Target:
        """The same server and credentials, another database."""
        parts = urlsplit(self.url)
        return replace(
            self, url=parts._replace(path="/" + quote(database)).geturl(), database=database
        )


def target(url: str) -> Target:
    """Split a DATABASE_URL into a password-free URL and the password."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise CommandError("DATABASE_URL must be a postgres:// or postgresql:// URL.")
    query = parse_qsl(parts.query, keep_blank_values=True)
    password = parts.password or dict(query).get("password")
    user = quote(unquote(parts.username), safe="") + "@" if parts.username else ""
    host = parts.hostname or dict(query).get("host") or "localhost"
    netloc = user + (parts.netloc.rsplit("@", 1)[-1])
    clean = parts._replace(
        netloc=netloc, query=urlencode([(k, v) for k, v in query if k != "password"])
    )
    database = unquote(parts.path.lstrip("/")) or unquote(parts.username or "") or "postgres"
    return Target(
        clean.geturl(), unquote(password) if password else None, host, parts.port or 5432, database
    )


def tool(name: str) -> str:
    """The path of pg_dump or pg_restore, or a clear error."""
    found = shutil.which(name)
    if not found:
        raise CommandError(
            rich(
                Code(name),
                " is not installed on the forge host; install the PostgreSQL client tools.",
            )
        )
    return found


def _failure(name: str, code: int | None, stderr: bytes, redactor: Redactor) -> CommandError:
    lines = [ln.strip() for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower() or "fatal" in ln.lower()] or lines[-1:]
    detail = redactor(errors[0] if errors else "no message")[:300]
    return CommandError(f"{name} failed (exit {code}): {detail}")


async def run(argv: list[str], tgt: Target, timeout: float) -> bytes:
    """Run a client tool, password in its environment; its stdout, or a redacted one-line error."""
    name = Path(argv[0]).name
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=tgt.env(),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        raise BackendTimeout(name, timeout) from None
    finally:
        if proc.returncode is None:  # timed out or cancelled: never leave a dump or restore running
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise _failure(name, proc.returncode, err, Redactor([tgt.password or ""]))
    return out


async def dump(tgt: Target, path: Path, snapshot: str | None, timeout: float) -> None:
    """pg_dump custom format of the target (the bot's own `forge` schema left out) into the file."""
    argv = [
        tool("pg_dump"),
        "--format=custom",
        "--no-owner",
        "--no-acl",
        "--exclude-schema=forge",
        f"--file={path}",
        f"--dbname={tgt.url}",
    ]
    if snapshot:
        argv.insert(1, f"--snapshot={snapshot}")
    await run(argv, tgt, timeout)


async def restore(tgt: Target, path: Path, timeout: float, *, clean: bool) -> None:
    """pg_restore, stopping at the first error: clean and in one transaction, or in parallel."""
    mode = (
        ["--clean", "--if-exists", "--single-transaction"] if clean else [f"--jobs={RESTORE_JOBS}"]
    )
    await run(
        [
            tool("pg_restore"),
            "--no-owner",
            "--no-acl",
            "--exit-on-error",
            *mode,
            f"--dbname={tgt.url}",
            str(path),
        ],
        tgt,
        timeout,
    )


async def toc(tgt: Target, path: Path, timeout: float) -> Counter[str]:
    """The archive's table of contents read with `pg_restore --list`: entries by kind."""
    out = await run([tool("pg_restore"), "--list", str(path)], tgt, timeout)
    kinds: Counter[str] = Counter()
    for line in out.decode(errors="replace").splitlines():
        if line.startswith(";") or "; " not in line:
            continue
        rest = line.split("; ", 1)[1].split(" ", 2)[-1]
        kind = next((k for k in TOC_KINDS if rest.startswith(k + " ")), "other")
        kinds[kind] += 1
    if not kinds:
        raise CommandError(
            rich(Code(path.name), " has an empty table of contents: it is not a usable dump.")
        )
    return kinds


async def row_counts(conn: asyncpg.Connection, timeout: float) -> dict[str, int]:
    """Every user table's exact row count, in one statement."""
    tables = [r[0] for r in await call("postgres", conn.fetch(TABLES_SQL), timeout)]
    if not tables:
        return {}
    sql = " UNION ALL ".join(f"SELECT {i}, count(*) FROM ONLY {t}" for i, t in enumerate(tables))
    rows = await call("postgres", conn.fetch(sql), timeout)
    return {tables[i]: n for i, n in rows}


async def objects(conn: asyncpg.Connection, timeout: float) -> dict[str, int]:
    """Counts of schema objects (tables, indexes, constraints, functions…), not extensions' own."""
    return {k: n for k, n in await call("postgres", conn.fetch(OBJECTS_SQL), timeout)}


async def connect(tgt: Target, timeout: float) -> asyncpg.Connection:
    """One connection to the target, named so that `db connections` shows what it is."""
    import asyncpg

    return await call(
        "postgres",
        asyncpg.connect(
            tgt.dsn, timeout=timeout, server_settings={"application_name": "forge-backup"}
        ),
        timeout,
    )


def quoted(name: str) -> str:
    """A database name as an SQL identifier."""
    if not re.fullmatch(r"[a-z0-9_]{1,63}", name):
        raise BackendUnavailable("postgres", f"unexpected database name {name!r}")
    return f'"{name}"'

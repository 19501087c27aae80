"""The backup commands' work: a snapshot-consistent dump, a scratch-database restore, a compare."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.backends.clients import call
from bot.core.context import Context
from bot.core.errors import BackendError, CommandError
from bot.core.scope import StaleScope
from bot.text.cells import Code, rich
from commands.backup import pg
from commands.backup.catalog import Catalog, Entry, checksum, file_name, resolve

PROGRESS_EVERY = 5.0
MB = 1024 * 1024
Hook = Callable[[str], Awaitable[None]]


def limit(ctx: Context) -> float:
    """Seconds one dump or restore may take."""
    return ctx.settings.config.backup.timeout_minutes * 60.0


def database(ctx: Context) -> pg.Target:
    """DATABASE_URL, the one database forge backs up and restores."""
    return pg.target(ctx.settings.env.database_url.get_secret_value())


async def _settle(*tasks: asyncio.Task[Any]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _report(ctx: Context, part: Path, name: str, label: str) -> None:
    await ctx.progress(rich("Dumping ", Code(label), " into ", Code(name), "…"))
    while True:
        await asyncio.sleep(PROGRESS_EVERY)
        size = part.stat().st_size if part.exists() else 0  # noqa: ASYNC240  (a stat)
        await ctx.progress(
            rich(
                "Dumping ",
                Code(label),
                " into ",
                Code(name),
                f": {size / MB:,.1f} MB written so far…",
            )
        )


async def _dump_and_count(ctx: Context, tgt: pg.Target, part: Path, name: str) -> tuple[dict, dict]:
    """pg_dump in one exported snapshot while the same snapshot's rows and objects are counted."""
    conn = await pg.connect(tgt, ctx.settings.config.timeouts.backend)
    try:
        await call(
            "postgres", conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"), limit(ctx)
        )
        snapshot = await call("postgres", conn.fetchval("SELECT pg_export_snapshot()"), limit(ctx))
        dumping = asyncio.create_task(pg.dump(tgt, part, snapshot, limit(ctx)))
        watcher = asyncio.create_task(_report(ctx, part, name, tgt.label))
        try:
            counts, objects = (
                await pg.row_counts(conn, limit(ctx)),
                await pg.objects(conn, limit(ctx)),
            )
            await dumping
        finally:
            await _settle(dumping, watcher)
        return counts, objects
    finally:
        await asyncio.shield(_close(conn))


async def _close(conn: Any) -> None:
    try:
        await asyncio.wait_for(conn.close(), 5)
    except (TimeoutError, OSError):
        conn.terminate()


async def make_backup(ctx: Context, kind: str, suffix: str = "") -> Entry:
    """Dump DATABASE_URL to FORGE_BACKUP_DIR, checksum, catalogue; a failed dump leaves no file."""
    tgt, started = database(ctx), ctx.clock.monotonic()
    at = ctx.clock.now()
    name = file_name(at, suffix)
    path = resolve(ctx, name)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    part = path.with_name(name + ".part")
    os.close(
        os.open(part, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    )  # customer data: owner only
    try:
        counts, objects = await _dump_and_count(ctx, tgt, part, name)
        part.rename(path)
    finally:
        part.unlink(missing_ok=True)
    await ctx.progress(rich("Checksumming ", Code(name), "…"))
    digest = await checksum(path)
    duration = int((ctx.clock.monotonic() - started) * 1000)
    entry = Entry(
        0,
        name,
        kind,
        tgt.label,
        at,
        path.stat().st_size,
        digest,
        duration,
        counts,
        objects,
        ctx.actor.user_id,
    )
    return await Catalog(ctx).add(entry)


async def checked(ctx: Context, name: str, approved: str | None = None) -> tuple[Entry, Path]:
    """A catalogued dump whose file is there and whose checksum matches, or a clear refusal;
    stale when it is not the dump (`approved`: its SHA-256) an approved dry run checked."""
    path = resolve(ctx, name)
    entry = await Catalog(ctx).get(name)
    if entry is None:
        raise CommandError(
            rich(
                Code(name),
                " is not in the backup catalog, so its checksum cannot be trusted; ",
                Code("backup list"),
                " shows the catalogued dumps.",
            )
        )
    if not path.is_file():
        raise CommandError(
            rich(Code(name), " is catalogued but its file is missing from the backup directory.")
        )
    actual = await checksum(path)
    if approved is not None and actual != approved:
        raise StaleScope(
            rich(
                Code(name),
                f" changed since the request: its SHA-256 is {actual[:12]}…, the approved dump's "
                f"{approved[:12]}…. It is not the dump the dry run showed.",
            )
        )
    ok = actual == entry.sha256
    await Catalog(ctx).verified(entry, ok)
    if not ok:
        raise CommandError(
            rich(
                Code(name),
                " does not match its catalogued SHA-256: the file is damaged or was changed. "
                "Nothing was restored.",
            )
        )
    return entry, path


@dataclass
class Comparison:
    """Source against restored copy: rows per table and schema objects per kind."""

    tables: int = 0
    rows: int = 0
    differences: list[list[str]] = field(default_factory=list)


def compare(entry: Entry, rows: dict[str, int], objects: dict[str, int]) -> Comparison:
    """Every table's exact row count and every kind of schema object, expected (dump) vs found."""
    found = Comparison(len(rows), sum(rows.values()))
    for table in sorted(set(entry.row_counts) | set(rows)):
        want, got = entry.row_counts.get(table), rows.get(table)
        if want != got:
            found.differences.append([table, _n(want), _n(got)])
    for kind in sorted(set(entry.objects) | set(objects)):
        want, got = entry.objects.get(kind, 0), objects.get(kind, 0)
        if want != got:
            found.differences.append([f"({kind})", _n(want), _n(got)])
    return found


def _n(value: int | None) -> str:
    return "missing" if value is None else f"{value:,}"


async def counts_of(ctx: Context, tgt: pg.Target) -> tuple[dict[str, int], dict[str, int]]:
    """Row counts and object counts of a database, now."""
    conn = await pg.connect(tgt, ctx.settings.config.timeouts.backend)
    try:
        return await pg.row_counts(conn, limit(ctx)), await pg.objects(conn, limit(ctx))
    finally:
        await asyncio.shield(_close(conn))


async def drill(ctx: Context, entry: Entry, on_restored: Hook | None = None) -> Comparison:
    """Restore the dump into a scratch database, count it, compare, then drop that database."""
    tgt, scratch = database(ctx), f"forge_drill_{secrets.token_hex(5)}"
    admin = await pg.connect(tgt, ctx.settings.config.timeouts.backend)
    try:
        await _create(admin, scratch, ctx.settings.config.timeouts.backend)
        try:
            await ctx.progress(
                rich("Restoring ", Code(entry.file), " into scratch database ", Code(scratch), "…")
            )
            await pg.restore(tgt.other(scratch), resolve(ctx, entry.file), limit(ctx), clean=False)
            if on_restored is not None:
                await on_restored(tgt.other(scratch).dsn)
            await ctx.progress(rich("Counting every table of ", Code(scratch), "…"))
            return compare(entry, *await counts_of(ctx, tgt.other(scratch)))
        finally:
            await asyncio.shield(_drop(admin, scratch, ctx.settings.config.timeouts.backend * 6))
    finally:
        await asyncio.shield(_close(admin))


async def _create(admin: Any, name: str, timeout: float) -> None:
    try:
        await call(
            "postgres",
            admin.execute(f"CREATE DATABASE {pg.quoted(name)} TEMPLATE template0"),
            timeout,
        )
    except BackendError as exc:
        raise CommandError(
            f"Could not create the scratch database for the drill ({exc.detail}); the "
            "DATABASE_URL user needs the CREATEDB privilege."
        ) from None


async def _drop(admin: Any, name: str, timeout: float) -> None:
    await call(
        "postgres",
        admin.execute(f"DROP DATABASE IF EXISTS {pg.quoted(name)} WITH (FORCE)"),
        timeout,
    )


async def restore_live(ctx: Context, entry: Entry, path: Path) -> Comparison:
    """Restore over DATABASE_URL in one transaction, ANALYZE, compare row counts with the dump's."""
    tgt = database(ctx)
    await ctx.progress(
        rich("Restoring ", Code(entry.file), " into ", Code(tgt.label), " (one transaction)…")
    )
    await pg.restore(tgt, path, limit(ctx), clean=True)
    conn = await pg.connect(tgt, ctx.settings.config.timeouts.backend)
    try:
        await call("postgres", conn.execute("ANALYZE"), limit(ctx))
    finally:
        await asyncio.shield(_close(conn))
    rows, _ = await counts_of(ctx, tgt)
    return compare(entry, rows, entry.objects)

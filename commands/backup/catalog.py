"""The state-store catalog of dumps, names in FORGE_BACKUP_DIR, the one-at-a-time lock, the log."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bot.backends.clients import call
from bot.core.context import Context
from bot.core.errors import CommandError
from bot.text.cells import Code, rich

BACKUP_LOCK = 7_466_847_005
NAME = re.compile(r"backup-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z(-pre-restore)?\.dump")
EXAMPLE = "backup-2025-11-10T02-00-00-000Z.dump"
COLUMNS = (
    "id, file, kind, source, created_at, size_bytes, sha256, duration_ms, row_counts, objects, "
    "actor_id, verified_at, verified_ok"
)


@dataclass(frozen=True)
class Entry:
    """One catalogued dump."""

    id: int
    file: str
    kind: str
    source: str
    created_at: datetime
    size_bytes: int
    sha256: str
    duration_ms: int
    row_counts: dict[str, int]
    objects: dict[str, int]
    actor_id: str
    verified_at: datetime | None = None
    verified_ok: bool | None = None

    @property
    def rows(self) -> int:
        """Rows in every table of the dump."""
        return sum(self.row_counts.values())


def _entry(record: Any) -> Entry:
    values = dict(record)
    values["row_counts"], values["objects"] = (
        json.loads(values["row_counts"]),
        json.loads(values["objects"]),
    )
    return Entry(**values)


def file_name(at: datetime, suffix: str = "") -> str:
    """ClientForge's name: `backup-<ISO time, : and . as ->Z.dump`."""
    return f"backup-{at.strftime('%Y-%m-%dT%H-%M-%S')}-{at.microsecond // 1000:03d}Z{suffix}.dump"


def backup_dir(ctx: Context) -> Path:
    """FORGE_BACKUP_DIR as an absolute path."""
    return ctx.settings.env.forge_backup_dir.resolve()


def resolve(ctx: Context, name: str) -> Path:
    """A backup's path from its bare name; anything else (paths, globs, other files) is refused."""
    if not NAME.fullmatch(name):
        raise CommandError(
            rich(
                Code(name[:60]),
                " is not a backup file name: give a bare name like ",
                Code(EXAMPLE),
                ".",
            )
        )
    path = backup_dir(ctx) / name
    if path.parent != backup_dir(ctx):
        raise CommandError(rich(Code(name[:60]), " is not inside the backup directory."))
    return path


def sha256(path: Path) -> str:
    """The file's SHA-256 in hex."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def checksum(path: Path) -> str:
    """SHA-256 computed off the event loop."""
    return await asyncio.to_thread(sha256, path)


def append_log(ctx: Context, line: str) -> None:
    """One line in `backup.log` in FORGE_LOG_DIR, where the runbook's nightly task also writes."""
    folder = ctx.settings.env.forge_log_dir
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "backup.log").open("a", encoding="utf-8") as f:
        f.write(f"{ctx.clock.now().strftime('%Y-%m-%dT%H:%M:%SZ')} {line}\n")


@asynccontextmanager
async def exclusive(ctx: Context, what: str) -> AsyncIterator[None]:
    """Hold the backup lock (a session advisory lock in the state store) or refuse at once."""
    pool = await ctx.store.pool()
    timeout = ctx.settings.config.timeouts.backend
    conn = await call("state store", pool.acquire(), timeout)
    try:
        if not await call(
            "state store", conn.fetchval("SELECT pg_try_advisory_lock($1)", BACKUP_LOCK), timeout
        ):
            raise CommandError(
                f"Another backup or restore is running, so this {what} was not started; "
                "try again when it has finished."
            )
        try:
            yield
        finally:
            await call(
                "state store", conn.execute("SELECT pg_advisory_unlock($1)", BACKUP_LOCK), timeout
            )
    finally:
        await pool.release(conn)


class Catalog:
    """`forge.backups`: what forge dumped, its checksum, and the row counts of its snapshot."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.timeout = ctx.settings.config.timeouts.backend

    async def _pool(self) -> Any:
        return await self.ctx.store.pool()

    async def add(self, e: Entry) -> Entry:
        """Record a finished dump."""
        pool = await self._pool()
        new_id = await call(
            "state store",
            pool.fetchval(
                "INSERT INTO forge.backups (file, kind, source, created_at, size_bytes, sha256, "
                "duration_ms, row_counts, objects, actor_id) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                e.file,
                e.kind,
                e.source,
                e.created_at,
                e.size_bytes,
                e.sha256,
                e.duration_ms,
                json.dumps(e.row_counts),
                json.dumps(e.objects),
                e.actor_id,
            ),
            self.timeout,
        )
        return Entry(**{**e.__dict__, "id": new_id})

    async def live(self, limit: int = 200) -> list[Entry]:
        """Dumps not pruned, newest first."""
        pool = await self._pool()
        rows = await call(
            "state store",
            pool.fetch(
                f"SELECT {COLUMNS} FROM forge.backups WHERE pruned_at IS NULL "
                "ORDER BY created_at DESC LIMIT $1",
                limit,
            ),
            self.timeout,
        )
        return [_entry(r) for r in rows]

    async def get(self, file: str) -> Entry | None:
        """The live entry of this file."""
        pool = await self._pool()
        row = await call(
            "state store",
            pool.fetchrow(
                f"SELECT {COLUMNS} FROM forge.backups WHERE file = $1 AND pruned_at IS NULL", file
            ),
            self.timeout,
        )
        return _entry(row) if row else None

    async def verified(self, entry: Entry, ok: bool) -> None:
        """Remember the outcome of a checksum check."""
        pool = await self._pool()
        await call(
            "state store",
            pool.execute(
                "UPDATE forge.backups SET verified_at = $2, verified_ok = $3 WHERE id = $1",
                entry.id,
                self.ctx.clock.now(),
                ok,
            ),
            self.timeout,
        )

    async def offsite(self, entry: Entry, url: str) -> None:
        """Remember where the off-site copy went."""
        pool = await self._pool()
        await call(
            "state store",
            pool.execute(
                "UPDATE forge.backups SET offsite_url = $2, offsite_at = $3 WHERE id = $1",
                entry.id,
                url,
                self.ctx.clock.now(),
            ),
            self.timeout,
        )

    async def prune(self, keep_days: int) -> list[str]:
        """Delete catalogued dumps older than the retention (never the newest one); their names."""
        pool = await self._pool()
        cutoff = self.ctx.clock.now() - timedelta(days=keep_days)
        rows = await call(
            "state store",
            pool.fetch(
                "SELECT id, file FROM forge.backups "
                "WHERE pruned_at IS NULL AND created_at < $1 AND id <> "
                "(SELECT id FROM forge.backups WHERE pruned_at IS NULL "
                "ORDER BY created_at DESC LIMIT 1) "
                "ORDER BY created_at",
                cutoff,
            ),
            self.timeout,
        )
        for row in rows:
            resolve(self.ctx, row["file"]).unlink(missing_ok=True)
            await call(
                "state store",
                pool.execute(
                    "UPDATE forge.backups SET pruned_at = $2 WHERE id = $1",
                    row["id"],
                    self.ctx.clock.now(),
                ),
                self.timeout,
            )
        return [r["file"] for r in rows]

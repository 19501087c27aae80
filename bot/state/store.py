"""The bot's own PostgreSQL state store (schema `forge`): pool, versioned migrations, readiness."""

from __future__ import annotations

import asyncio
import time
from importlib import resources
from typing import TYPE_CHECKING

import structlog

from bot.backends.clients import call
from bot.core.errors import BackendUnavailable

if TYPE_CHECKING:
    import asyncpg

log = structlog.get_logger(__name__)
RECONNECT_INTERVAL = 2.0
MIGRATION_LOCK = 7_466_847_001


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every bundled migration, in order."""
    folder = resources.files("bot.state") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


class StateStore:
    """A lazily (re)connected pool; callers get BackendUnavailable while it is down."""

    def __init__(self, dsn: str, timeout: float) -> None:
        self._dsn = dsn
        self._timeout = timeout
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()
        self._last_failure = 0.0
        self._migrated = False
        self._side: asyncpg.Pool | None = None

    async def pool(self) -> asyncpg.Pool:
        """The pool, connecting (and migrating) first if needed."""
        if self._pool is not None and self._migrated:
            return self._pool
        async with self._lock:
            pool = await self._connect()
            if not self._migrated:
                await call("state store", self._migrate(pool), self._timeout * 6)
            return pool

    async def _connect(self) -> asyncpg.Pool:
        import asyncpg

        if self._pool is not None:
            return self._pool
        if time.monotonic() - self._last_failure < RECONNECT_INTERVAL:
            raise BackendUnavailable("state store", "unavailable")
        try:
            self._pool = await call(
                "state store",
                asyncpg.create_pool(
                    self._dsn,
                    min_size=1,
                    max_size=10,
                    timeout=self._timeout,
                    command_timeout=self._timeout,
                    server_settings={"application_name": "forge-state"},
                ),
                self._timeout,
            )
        except BackendUnavailable:
            self._last_failure = time.monotonic()
            raise
        return self._pool

    async def start(self) -> bool:
        """Connect and migrate once; False (and a log line) when the store is down."""
        try:
            await self.pool()
        except BackendUnavailable as exc:
            log.warning("state_store_unavailable", error=str(exc))
            return False
        return True

    async def migrate(self) -> list[str]:
        """Apply pending migrations; the names applied."""
        async with self._lock:
            return await call(
                "state store", self._migrate(await self._connect()), self._timeout * 6
            )

    async def _migrate(self, pool: asyncpg.Pool) -> list[str]:
        applied: list[str] = []
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute("CREATE SCHEMA IF NOT EXISTS forge")
            await conn.execute("""CREATE TABLE IF NOT EXISTS forge.schema_migrations (
                version integer PRIMARY KEY, name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())""")
            done = {
                r["version"]
                for r in await conn.fetch("SELECT version FROM forge.schema_migrations")
            }
            for version, name, sql in migration_files():
                if version not in done:
                    await conn.execute(sql)
                    await conn.execute(
                        "INSERT INTO forge.schema_migrations (version, name) VALUES ($1, $2)",
                        version,
                        name,
                    )
                    applied.append(name)
        self._migrated = True
        if applied:
            log.info("state_store_migrated", applied=applied)
        return applied

    async def ready(self, timeout: float = 1.0) -> bool:
        """True when the store answers a trivial query within the timeout."""
        try:
            pool = await self.pool()
            await call("state store", pool.fetchval("SELECT 1"), timeout)
        except BackendUnavailable:
            return False
        return True

    async def first_delivery(self, key: str) -> bool:
        """Record a Slack delivery key; False when it was seen before (a retry or a replay)."""
        pool = await self.pool()
        inserted = await call(
            "state store",
            pool.fetchval(
                "INSERT INTO forge.slack_deliveries (key) VALUES ($1) "
                "ON CONFLICT DO NOTHING RETURNING true",
                key,
            ),
            self._timeout,
        )
        return bool(inserted)

    async def prune_deliveries(self, older_than_seconds: int = 3600) -> None:
        """Forget delivery keys older than Slack's retry and replay windows."""
        pool = await self.pool()
        await call(
            "state store",
            pool.execute(
                "DELETE FROM forge.slack_deliveries "
                "WHERE seen_at < now() - make_interval(secs => $1)",
                older_than_seconds,
            ),
            self._timeout,
        )

    async def side_pool(self, size: int) -> asyncpg.Pool:
        """A small pool of its own on the same database, for writes that must not queue behind
        commands holding the main pool (the ack path's journal); closed with the store."""
        import asyncpg

        if self._side is None:
            self._side = await call(
                "state store",
                asyncpg.create_pool(
                    self._dsn,
                    min_size=1,
                    max_size=size,
                    timeout=self._timeout,
                    command_timeout=self._timeout,
                    server_settings={"application_name": "forge-state-acks"},
                ),
                self._timeout,
            )
        return self._side

    async def aclose(self) -> None:
        """Close the pools."""
        if self._side is not None:
            await self._side.close()
            self._side = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
            self._migrated = False

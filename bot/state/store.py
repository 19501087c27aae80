"""The bot's own PostgreSQL state store (schema `forge`): pool, versioned migrations, readiness."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from importlib import resources
from typing import TYPE_CHECKING

from bot.backends.clients import call
from bot.background.loops import stop
from bot.core.errors import BackendError, BackendUnavailable
from bot.log import get_logger

if TYPE_CHECKING:
    import asyncpg

log = get_logger(__name__)
RETRY_FIRST, RETRY_MAX = 1.0, 30.0
START_WAIT = 2.0
NOT_YET = "not connected yet"
MIGRATION_LOCK = 7_466_847_001


def jitter() -> float:
    """A factor near 1, so replicas that lost the store together do not retry in lockstep."""
    return random.uniform(0.9, 1.1)


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
    """A pool that comes back by itself; while it is down callers get BackendUnavailable with why.

    `forge serve` keeps it in the background (`start(keep_trying=True)`): the first connect and
    every reconnect happen there, with backoff, so no request ever waits on a store that hangs.
    Without that keeper (the CLI, tests) a call connects inline, at most once per backoff pause.
    """

    def __init__(self, dsn: str, timeout: float) -> None:
        self._dsn = dsn
        self._timeout = timeout
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()
        self._retry_at = 0.0
        self._pause = RETRY_FIRST
        self._migrated = False
        self._side: asyncpg.Pool | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._tried = asyncio.Event()
        self._failure: str | None = NOT_YET
        self._trying_since: float | None = None

    @property
    def reason(self) -> str | None:
        """Why the store is down (None when up): the last failure, or the attempt still waiting."""
        if self._failure == NOT_YET and self._trying_since is not None:
            waited = time.monotonic() - self._trying_since
            if waited >= 1:
                return f"no answer after {waited:.0f} s; still trying"
        return self._failure

    @property
    def up(self) -> bool:
        """Connected and migrated."""
        return self._pool is not None and self._migrated

    async def pool(self) -> asyncpg.Pool:
        """The pool; connecting (and migrating) inline only when no keeper does it in the back."""
        if self.up:
            return self._pool
        if self._keeper is not None or time.monotonic() < self._retry_at:
            raise BackendUnavailable("state store", self.reason or "unavailable")
        return await self._attempt()

    async def _attempt(self) -> asyncpg.Pool:
        """One connect-and-migrate; a failure is remembered (why, and when to try again)."""
        async with self._lock:
            if self.up:
                return self._pool
            if self._keeper is None and time.monotonic() < self._retry_at:
                raise BackendUnavailable("state store", self.reason or "unavailable")
            self._trying_since = time.monotonic()
            try:
                pool = await self._connect()
                if not self._migrated:
                    await call("state store", self._migrate(pool), self._timeout * 6)
            except BackendError as exc:
                self._failed(exc)
                raise BackendUnavailable("state store", self.reason or "unavailable") from None
            finally:
                self._tried.set()
                self._trying_since = None
            self._recovered()
            return pool

    async def _connect(self) -> asyncpg.Pool:
        import asyncpg

        if self._pool is None:
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
        return self._pool

    def _failed(self, exc: BackendError) -> None:
        """Log the first failure of an outage (and a changed reason); back off up to RETRY_MAX."""
        if exc.detail != self._failure or self._pause == RETRY_FIRST:
            log.warning("state_store_unavailable", error=exc.detail, retry_in=self._pause)
        self._failure = exc.detail
        self._retry_at = time.monotonic() + self._pause
        self._pause = min(RETRY_MAX, self._pause * 2)

    def _recovered(self) -> None:
        if self._failure != NOT_YET:
            log.info("state_store_connected")
        self._failure, self._pause, self._retry_at = None, RETRY_FIRST, 0.0

    async def start(self, keep_trying: bool = False, wait: float = START_WAIT) -> bool:
        """Connect and migrate; False (and a log line) when the store is down.

        `keep_trying`: a background task connects, and reconnects after a failure with backoff,
        for as long as the store lives; this waits at most `wait` seconds for its first try."""
        if not keep_trying:
            try:
                await self.pool()
            except BackendUnavailable:
                return False
            return True
        if self._keeper is None:
            self._keeper = asyncio.create_task(self._keep())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._tried.wait(), wait)
        return self.up

    async def _keep(self) -> None:
        """Until the store is up: try, then wait the backoff pause (with jitter for replicas)."""
        while not self.up:
            with contextlib.suppress(BackendError):
                await self._attempt()
            if not self.up:
                await asyncio.sleep(max(0.0, self._retry_at - time.monotonic()) * jitter())

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
        except BackendError:
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
        """Stop reconnecting and close the pools."""
        if self._keeper is not None:
            await stop(self._keeper)
            self._keeper = None
        if self._side is not None:
            await self._side.close()
            self._side = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
            self._migrated = False

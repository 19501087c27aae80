"""How commands call a backend: one object per service with its timeout, error mapping and hint.

    rows = await ctx.backends.pg.read("SELECT …", arg)      # read-only, statement-timed
    info = await ctx.backends.kv.call(ctx.backends.redis().info("memory"))
    health = await ctx.backends.es.call(client.cluster.health(), missing="No such index.")

A failure is a BackendError naming the backend, what happened and what to do (errors.HINTS).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from bot.core.errors import BackendUnavailable, CommandError
from bot.text.cells import Text

if TYPE_CHECKING:
    import asyncpg

T = TypeVar("T")
LOCK_WAIT_MS, LOCK_TRIES = 500, 3
FULL_POOL = (
    "PostgreSQL has no connection left for forge's pool (too many clients): `db connections`, "
    "`db long`, `db locks` and `db cancel` still answer on forge's diagnostic connection."
)
FULL_DIAGNOSTIC = (
    "PostgreSQL has no connection left for forge (too many clients) and forge's diagnostic "
    "connection was not open: `forge check` says how to reserve one."
)
Caller = Callable[[str, Awaitable[Any], float], Awaitable[Any]]


@dataclass(frozen=True)
class Service:
    """One backend: its name in messages, the variable that points at it, its timeout."""

    name: str
    variable: str
    timeout: float
    caller: Caller

    def named(self, name: str, variable: str) -> Service:
        """The same client for another service (the HTTP client serves the API, Prometheus…)."""
        return replace(self, name=name, variable=variable)

    async def call(self, awaitable: Awaitable[T], timeout: float | None = None) -> T:
        """Await one call within the timeout; a failure says what failed and what to do."""
        return await self.caller(self.name, awaitable, timeout or self.timeout)


class Postgres(Service):
    """ClientForge's PostgreSQL: pooled connections and read-only, statement-timed reads."""

    def __init__(
        self,
        pool: Callable[[], Awaitable[asyncpg.Pool]],
        timeout: float,
        caller: Caller,
        diagnostic: Callable[[], AbstractAsyncContextManager[asyncpg.Connection]] | None = None,
    ):
        super().__init__("postgres", "DATABASE_URL", timeout, caller)
        object.__setattr__(self, "_pool", pool)
        object.__setattr__(self, "_diagnostic", diagnostic)

    def margin(self) -> tuple[float, int]:
        """The client-side timeout, and a server statement_timeout (ms) just short of it."""
        return self.timeout + 1.0, int(self.timeout * 1000)

    @asynccontextmanager
    async def connection(self, timeout: float | None = None) -> AsyncIterator[asyncpg.Connection]:
        """One pooled connection, checked out within the timeout."""
        pool = await self.call(self._pool())  # type: ignore[attr-defined]
        conn = await self.call(pool.acquire(), timeout)
        try:
            yield conn
        finally:
            await pool.release(conn)

    async def run(
        self,
        work: Callable[[asyncpg.Connection], Awaitable[T]],
        timeout: float | None = None,
        diagnostic: bool = False,
    ) -> T:
        """Run work on one pooled connection (`diagnostic`: on the diagnostic connection, outside
        the pool, which still answers when ClientForge has taken every connection), the whole of
        it bounded in time."""

        async def run() -> T:
            kept = self._diagnostic  # type: ignore[attr-defined]
            async with kept() if diagnostic and kept else self.connection() as conn:
                return await work(conn)

        try:
            return await self.call(run(), timeout or self.margin()[0])
        except BackendUnavailable as exc:
            if "TooManyConnections" in exc.detail:
                raise CommandError(FULL_DIAGNOSTIC if diagnostic else FULL_POOL) from None
            raise

    async def read(self, sql: str, *args: Any, diagnostic: bool = False) -> list[asyncpg.Record]:
        """Rows of one query, in a read-only transaction under a statement timeout."""
        return (await self.read_many([(sql, args)], diagnostic))[0]

    async def read_many(
        self, queries: list[tuple[str, tuple[Any, ...]]], diagnostic: bool = False
    ) -> list[list[asyncpg.Record]]:
        """Several queries in one read-only transaction (one snapshot, one pool checkout).

        A lock taken after a query's own check for locks (commands/db/locked.py) makes it give
        up within LOCK_WAIT_MS; it is then read again, when the check sees that lock."""
        for _ in range(LOCK_TRIES - 1):
            with contextlib.suppress(LockBusy):
                return await self._read_once(queries, diagnostic)
        try:
            return await self._read_once(queries, diagnostic)
        except LockBusy:
            raise CommandError(
                f"A lock kept this read waiting {LOCK_TRIES} times ({LOCK_WAIT_MS} ms each): "
                "`db locks` and `db long` show who holds it."
            ) from None

    async def _read_once(
        self, queries: list[tuple[str, tuple[Any, ...]]], diagnostic: bool
    ) -> list[list[asyncpg.Record]]:
        timeout, statement_ms = self.margin()

        async def work(conn: asyncpg.Connection) -> list[list[asyncpg.Record]]:
            async with conn.transaction(readonly=True):
                await conn.execute(f"SET LOCAL statement_timeout = {statement_ms}")
                await conn.execute(f"SET LOCAL lock_timeout = {LOCK_WAIT_MS}")
                return [await conn.fetch(sql, *args) for sql, args in queries]

        try:
            return await self.run(work, timeout, diagnostic)
        except BackendUnavailable as exc:
            if "LockNotAvailableError" in exc.detail:
                raise LockBusy from None
            if "QueryCanceledError" in exc.detail:
                raise CommandError(
                    f"PostgreSQL stopped the query after {statement_ms} ms (statement_timeout): "
                    "the server is busy or the catalog is huge; try again or narrow it."
                ) from None
            raise


class LockBusy(Exception):
    """A statement gave up waiting for a lock (lock_timeout)."""


class Search(Service):
    """Elasticsearch: its refusals (4xx with an error body) are the user's to read, not outages."""

    async def call(
        self, awaitable: Awaitable[T], timeout: float | None = None, missing: Text | None = None
    ) -> T:
        """One call; a refusal is a CommandError (`missing`: the message for a 404)."""
        try:
            return await super().call(awaitable, timeout)
        except BackendUnavailable as exc:
            cause = exc.__cause__
            body = getattr(cause, "body", None)
            status = getattr(getattr(cause, "meta", None), "status", None)
            if not isinstance(body, dict) or status is None:
                raise
            if status == 404 and missing:
                raise CommandError(missing) from None
            raise CommandError(
                f"Elasticsearch refused it (HTTP {status}): {refusal(body, cause)}"
            ) from None


def refusal(body: dict[str, Any], exc: BaseException | None) -> str:
    """Elasticsearch's refusal in one line: its error type and reason."""
    error = body.get("error")
    if isinstance(error, dict):
        return f"{error.get('type', 'error')}: {str(error.get('reason', ''))[:200]}"
    return str(error or getattr(exc, "message", exc))[:200]

"""One place per external API: each client built on first use, with its timeout and retry policy.

No client library is imported until a command needs it, so `forge run help` starts fast;
`call` recognises a library's exceptions only once that library is loaded (an exception of a
module never imported cannot be raised).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeVar

from bot.backends.prometheus import Prometheus
from bot.backends.services import Postgres, Search, Service
from bot.background.loops import stop
from bot.config.settings import Settings
from bot.core.errors import BackendError, BackendTimeout, BackendUnavailable
from bot.text.redact import redact

if TYPE_CHECKING:
    import asyncpg
    import httpx
    import redis.asyncio as aioredis
    from elasticsearch import AsyncElasticsearch

T = TypeVar("T")
DIAGNOSTIC_APP, WARM_EVERY = "forge-diagnostic", 30.0


async def call(backend: str, awaitable: Awaitable[T], timeout: float) -> T:
    """Await a backend call within its timeout; translate every failure to a BackendError."""
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except BackendError:
        raise
    except Exception as exc:  # every library has its own tree; the user gets one line
        if isinstance(exc, _timeouts()):
            raise BackendTimeout(backend, timeout) from None
        raise BackendUnavailable(backend, describe(exc)) from exc


def _loaded(module: str, name: str) -> type | None:
    """An exception class of a client library, if that library was imported at all."""
    found = sys.modules.get(module)
    return getattr(found, name, None) if found is not None else None


def _timeouts() -> tuple[type, ...]:
    """Every loaded library's timeout exception."""
    kinds = [
        _loaded("httpx", "TimeoutException"),
        _loaded("redis.exceptions", "TimeoutError"),
        _loaded("elasticsearch.exceptions", "ConnectionTimeout"),
    ]
    return (TimeoutError, *(k for k in kinds if k is not None))


def describe(exc: BaseException) -> str:
    """A short, secret-free description of a client library's exception."""
    if _refused(exc):
        return "connection refused"
    if isinstance(exc, socket.gaierror) or "Name or service not known" in str(exc):
        return "host not found"
    first = str(exc).splitlines()[0] if str(exc) else ""
    if _is(exc, "asyncpg", "PostgresError"):
        return redact(f"{type(exc).__name__}: {first}")
    if _is(exc, "httpx", "HTTPStatusError"):
        return f"HTTP {exc.response.status_code}"  # type: ignore[attr-defined]
    if _is(exc, "elasticsearch.exceptions", "ApiError"):
        return f"HTTP {exc.meta.status}: {exc.error}"  # type: ignore[attr-defined]
    return redact(f"{type(exc).__name__}: {first}"[:200]) if first else type(exc).__name__


def _is(exc: BaseException, module: str, name: str) -> bool:
    kind = _loaded(module, name)
    return kind is not None and isinstance(exc, kind)


def _refused(exc: BaseException) -> bool:
    """True when a ConnectionRefusedError lies anywhere beneath the library's own exception."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ConnectionRefusedError) or "Connection refused" in str(current):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


class Backends:
    """ClientForge's PostgreSQL, Redis, Elasticsearch and HTTP APIs, each built on first use.

    `pg`, `kv`, `es` and `web` are how commands call them: each carries its timeout, maps
    failures to a BackendError that says what failed and what to do, and describes itself.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.timeouts = settings.config.timeouts
        seconds = self.timeouts.backend
        self._pg: asyncpg.Pool | None = None
        self._pg_lock = asyncio.Lock()
        self._diagnostic: asyncpg.Connection | None = None
        self._diagnostic_lock = asyncio.Lock()
        self._warmer: asyncio.Task[None] | None = None
        self._redis: aioredis.Redis | None = None
        self._es: AsyncElasticsearch | None = None
        self._http: httpx.AsyncClient | None = None
        self.pg = Postgres(self.postgres, seconds, call, self.diagnostic)
        self.kv = Service("redis", "REDIS_URL", seconds, call)
        self.es = Search("elasticsearch", "ELASTICSEARCH_URL", seconds, call)
        self.web = Service("http", "the service's URL", seconds, call)
        self.prom = Prometheus(self)

    async def postgres(self) -> asyncpg.Pool:
        """A small pool on DATABASE_URL; a failed connect is retried on the next call."""
        import asyncpg

        async with self._pg_lock:
            if self._pg is None:
                self._pg = await call(
                    "postgres",
                    asyncpg.create_pool(
                        self.settings.env.database_url.get_secret_value(),
                        min_size=0,
                        max_size=4,
                        timeout=self.timeouts.backend,
                        command_timeout=self.timeouts.backend,
                        server_settings={"application_name": "forge"},
                    ),
                    self.timeouts.backend,
                )
            return self._pg

    @asynccontextmanager
    async def diagnostic(self) -> AsyncIterator[asyncpg.Connection]:
        """forge's one connection to DATABASE_URL outside the pool, for one caller at a time.

        Kept open (see keep_warm) so `db connections|long|locks|cancel` still answer when
        ClientForge has taken every other connection; opened again lazily after it was lost."""
        import asyncpg

        async with self._diagnostic_lock:
            if self._diagnostic is None or self._diagnostic.is_closed():
                self._diagnostic = await call(
                    "postgres",
                    asyncpg.connect(
                        self.settings.env.database_url.get_secret_value(),
                        timeout=self.timeouts.backend,
                        command_timeout=self.timeouts.backend,
                        server_settings={"application_name": DIAGNOSTIC_APP},
                    ),
                    self.timeouts.backend,
                )
            try:
                yield self._diagnostic
            except asyncpg.PostgresError:
                raise
            except BaseException:  # a timeout or a lost link leaves it unusable: open a new one
                if self._diagnostic is not None:
                    self._diagnostic.terminate()
                self._diagnostic = None
                raise

    def keep_warm(self) -> None:
        """Open the diagnostic connection now and check it every WARM_EVERY s, in the background."""
        if self._warmer is None:
            self._warmer = asyncio.create_task(self._warm_forever())

    async def _warm_forever(self) -> None:
        while True:
            with contextlib.suppress(BackendError):
                async with self.diagnostic() as conn:
                    await call("postgres", conn.fetchval("SELECT 1"), self.timeouts.backend)
            await asyncio.sleep(WARM_EVERY)

    def redis(self) -> aioredis.Redis:
        """Redis with connect and read timeouts and no silent retries."""
        if self._redis is None:
            import redis.asyncio as aioredis

            self._redis = aioredis.Redis.from_url(
                self.settings.env.redis_url.get_secret_value(),
                socket_timeout=self.timeouts.backend,
                socket_connect_timeout=self.timeouts.backend,
                retry_on_timeout=False,
                client_name="forge",
                decode_responses=True,
            )
        return self._redis

    def elasticsearch(self) -> AsyncElasticsearch:
        """The Elasticsearch 8 client with a request timeout and one retry for reads."""
        if self._es is None:
            from elasticsearch import AsyncElasticsearch

            self._es = AsyncElasticsearch(
                self.settings.env.elasticsearch_url.get_secret_value(),
                request_timeout=self.timeouts.backend,
                max_retries=1,
                retry_on_timeout=False,
            )
        return self._es

    def http(self) -> httpx.AsyncClient:
        """Plain HTTP with a timeout and no redirects, for the API, Prometheus and Grafana."""
        if self._http is None:
            import httpx

            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeouts.backend),
                follow_redirects=False,
                headers={"User-Agent": "forge"},
            )
        return self._http

    def api_headers(self) -> dict[str, str]:
        """Headers every ClientForge /api/v1 call needs: the tenant guard wants X-Tenant-ID."""
        return {"X-Tenant-ID": self.settings.config.tenant_id, "Accept": "application/json"}

    async def aclose(self) -> None:
        """Close every client that was opened."""
        if self._warmer is not None:
            await stop(self._warmer)
            self._warmer = None
        if self._diagnostic is not None:
            with contextlib.suppress(Exception):
                await self._diagnostic.close(timeout=self.timeouts.backend)
            self._diagnostic = None
        if self._pg is not None:
            await self._pg.close()
        if self._redis is not None:
            await self._redis.aclose()
        if self._es is not None:
            await self._es.close()
        if self._http is not None:
            await self._http.aclose()
        self._pg = self._redis = self._es = self._http = None

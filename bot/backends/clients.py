"""One place per external API: each client with its timeout, and failures mapped to BackendError."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable
from typing import TypeVar

import asyncpg
import httpx
import redis.asyncio as aioredis
import redis.exceptions
from elasticsearch import AsyncElasticsearch
from elasticsearch import exceptions as es_exceptions

from bot.config.settings import Settings
from bot.core.errors import BackendError, BackendTimeout, BackendUnavailable
from bot.core.redact import redact

T = TypeVar("T")


async def call(backend: str, awaitable: Awaitable[T], timeout: float) -> T:
    """Await a backend call within its timeout; translate every failure to a BackendError."""
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except BackendError:
        raise
    except (
        TimeoutError,
        httpx.TimeoutException,
        redis.exceptions.TimeoutError,
        es_exceptions.ConnectionTimeout,
    ):
        raise BackendTimeout(backend, timeout) from None
    except Exception as exc:  # every library has its own tree; the user gets one line
        raise BackendUnavailable(backend, describe(exc)) from exc


def describe(exc: BaseException) -> str:
    """A short, secret-free description of a client library's exception."""
    if _refused(exc):
        return "connection refused"
    if isinstance(exc, socket.gaierror) or "Name or service not known" in str(exc):
        return "host not found"
    if isinstance(exc, asyncpg.PostgresError):
        return redact(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, es_exceptions.ApiError):
        return f"HTTP {exc.meta.status}: {exc.error}"
    first = str(exc).splitlines()[0] if str(exc) else ""
    return redact(f"{type(exc).__name__}: {first}"[:200]) if first else type(exc).__name__


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
    """Lazily built clients for ClientForge's PostgreSQL, Redis, Elasticsearch and HTTP APIs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.timeouts = settings.config.timeouts
        self._pg: asyncpg.Pool | None = None
        self._pg_lock = asyncio.Lock()
        self._redis: aioredis.Redis | None = None
        self._es: AsyncElasticsearch | None = None
        self._http: httpx.AsyncClient | None = None

    async def postgres(self) -> asyncpg.Pool:
        """A small pool on DATABASE_URL; a failed connect is retried on the next call."""
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

    def redis(self) -> aioredis.Redis:
        """Redis with connect and read timeouts and no silent retries."""
        if self._redis is None:
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
        if self._pg is not None:
            await self._pg.close()
        if self._redis is not None:
            await self._redis.aclose()
        if self._es is not None:
            await self._es.close()
        if self._http is not None:
            await self._http.aclose()
        self._pg = self._redis = self._es = self._http = None

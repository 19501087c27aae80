"""Shared fixtures: a fresh state-store database per test, settings, and a running forge."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from bot.config.settings import Config, Env, Settings
from bot.core.context import Clock
from bot.core.forge import Forge
from bot.core.registry import Registry
from bot.http.server import web_app
from bot.slack.app import SlackSurface
from bot.slack.groups import SlackGroupDirectory
from bot.slack.outbox import close_client, make_client
from bot.state.store import StateStore
from tests.fakes.slack_client import SlackClient
from tests.fakes.slack_double import SlackDouble
from tests.support.services import redis_url

PG_ADMIN = os.environ.get("FORGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = redis_url(0)


def dsn_for(database: str) -> str:
    """The admin DSN with another database name."""
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + database


@pytest.fixture(scope="session")
def template_db() -> str:
    """A migrated database that each test's database is cloned from."""
    import asyncio

    name = f"forge_tpl_{secrets.token_hex(4)}"

    async def create() -> None:
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        store = StateStore(dsn_for(name), 5.0)
        await store.migrate()
        await store.aclose()

    async def drop() -> None:
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    asyncio.run(create())
    yield name
    asyncio.run(drop())


@pytest.fixture
async def state_dsn(template_db: str) -> AsyncIterator[str]:
    """A fresh, migrated state-store database for one test."""
    name = f"forge_t_{secrets.token_hex(5)}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield dsn_for(name)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


@asynccontextmanager
async def empty_redis(url: str) -> AsyncIterator[aioredis.Redis]:
    """A Redis database of the tests' own, emptied before and after use."""
    client = aioredis.Redis.from_url(url, decode_responses=True)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.flushdb()
        await client.aclose()


def make_settings(config: Config | None = None, **env: object) -> Settings:
    """Settings for tests: nothing read from the machine's environment or a .env file."""
    defaults: dict[str, object] = {
        "database_url": PG_ADMIN,
        "redis_url": REDIS_URL,
        "elasticsearch_url": "http://127.0.0.1:9",
        "clientforge_api_url": "http://127.0.0.1:9",
        "prometheus_url": "http://127.0.0.1:9",
        "grafana_url": "http://127.0.0.1:9",
        "slack_bot_token": "xoxb-forge-test-token",
        "slack_signing_secret": "forge-test-signing-secret",
    }
    defaults.update(env)
    return Settings(Env(_env_file=None, **defaults), config or Config())


SECRET = "forge-test-signing-secret"
CONFIG = Config.model_validate(
    {
        "roles": {"viewer": ["*"], "operator": ["U0OPS", "S0ONCALL"], "admin": ["U0ADMIN"]},
        "approvers": ["U0LEAD"],
    }
)


@dataclass
class Harness:
    """A running forge (HTTP server) wired to a Slack double, and a signed Slack client."""

    url: str
    forge: Forge
    surface: SlackSurface
    slack: SlackDouble
    client: SlackClient

    async def get(self, path: str) -> tuple[int, str]:
        """GET one of forge's own routes."""
        async with aiohttp.ClientSession() as session, session.get(self.url + path) as response:
            return response.status, await response.text()

    async def settle(self) -> None:
        """Wait until every command forge acked has answered."""
        await asyncio.sleep(0)
        await self.surface.drain()


@asynccontextmanager
async def served(app: web.Application) -> AsyncIterator[str]:
    """An aiohttp app on a free local port: its base URL; cleaned up after."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def running_forge(
    settings: Settings,
    slack: SlackDouble,
    registry: Registry | None = None,
    clock: Clock | None = None,
) -> AsyncIterator[Harness]:
    """Start forge's real aiohttp app on a free port, as `forge serve` builds it."""
    client = make_client(settings)
    forge = Forge(settings, groups=SlackGroupDirectory(client), registry=registry, clock=clock)
    await forge.start()
    surface = SlackSurface(forge, client, SECRET)
    async with served(web_app(forge, surface)) as url:
        async with SlackClient(url, SECRET, slack) as slack_client:
            yield Harness(url, forge, surface, slack, slack_client)
        await surface.drain()
    await forge.aclose()
    await close_client(client)


@pytest.fixture
async def slack() -> AsyncIterator[SlackDouble]:
    """A recording Slack Web API double on a free port."""
    async with SlackDouble() as double:
        double.usergroups = {"S0ONCALL": ["U0ONCALL"]}
        yield double


@pytest.fixture
async def harness(state_dsn: str, slack: SlackDouble) -> AsyncIterator[Harness]:
    """forge over HTTP with a fresh state store and the Slack double."""
    settings = make_settings(CONFIG, forge_state_database_url=state_dsn, slack_api_url=slack.url)
    async with running_forge(settings, slack) as h:
        yield h


@pytest.fixture
async def hanging() -> AsyncIterator[str]:
    """host:port of a server that accepts connections and never answers: a backend that hangs."""
    writers: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        while await reader.read(4096):
            pass

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()
    await asyncio.sleep(0)

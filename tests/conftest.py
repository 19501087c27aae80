"""Shared fixtures: a fresh state-store database per test, settings, and a running forge."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

from bot.settings import Config, Env, Settings
from bot.store import StateStore

PG_ADMIN = os.environ.get("FORGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("FORGE_TEST_REDIS", "redis://127.0.0.1:6379/0")


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


def make_settings(config: Config | None = None, **env: object) -> Settings:
    """Settings for tests: nothing read from the machine's environment or a .env file."""
    defaults: dict[str, object] = {
        "database_url": PG_ADMIN, "redis_url": REDIS_URL, "elasticsearch_url": "http://127.0.0.1:9",
        "clientforge_api_url": "http://127.0.0.1:9", "prometheus_url": "http://127.0.0.1:9",
        "grafana_url": "http://127.0.0.1:9", "slack_bot_token": "xoxb-forge-test-token",
        "slack_signing_secret": "forge-test-signing-secret",
    }
    defaults.update(env)
    return Settings(Env(_env_file=None, **defaults), config or Config())

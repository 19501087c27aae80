"""A ClientForge-shaped database on a cluster with pg_stat_statements loaded; forge aimed at it."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from bot.config.settings import Config
from bot.core.context import Actor
from bot.core.dispatch import Invocation, Outcome
from bot.core.forge import Forge
from bot.core.registry import Role
from tests.conftest import make_settings
from tests.support.pg_cluster import pg_stat_statements_cluster

CONFIG = {
    "roles": {"viewer": ["*"], "operator": ["U0OPS"], "admin": ["U0ADMIN"]},
    "approvers": ["U0LEAD"],
    "channels": {"destructive": ["C0OPS"]},
    "timeouts": {"backend": 5},
}
SCHEMA = """
CREATE EXTENSION pg_stat_statements;
CREATE TABLE tenants (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text NOT NULL);
CREATE TABLE accounts (id bigserial PRIMARY KEY, tenant_id int NOT NULL, name text NOT NULL);
CREATE TABLE contacts (id bigserial PRIMARY KEY, tenant_id int NOT NULL, account_id bigint,
                       owner_id int, email text, created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO accounts (tenant_id, name) SELECT i % 5, 'account ' || i FROM generate_series(1, 500) i;
INSERT INTO contacts (tenant_id, account_id, owner_id, email)
     SELECT i % 5, i % 500 + 1, i % 50, 'c' || i || '@example.com' FROM generate_series(1, 20000) i;
CREATE INDEX contacts_owner ON contacts (owner_id);
CREATE INDEX contacts_owner_created ON contacts (owner_id, created_at);
ANALYZE;
"""


def dsn_in(cluster: str, database: str) -> str:
    """The cluster's DSN with another database name."""
    return cluster.rsplit("/", 1)[0] + "/" + database


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A PostgreSQL 15 cluster with shared_preload_libraries = pg_stat_statements."""
    with pg_stat_statements_cluster() as dsn:
        yield dsn


async def _create(cluster: str, name: str) -> None:
    admin = await asyncpg.connect(cluster)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    conn = await asyncpg.connect(dsn_in(cluster, name))
    await conn.execute(SCHEMA)
    # a unique index built concurrently over duplicates fails and stays behind INVALID, as in §9.6
    try:
        await conn.execute(
            "CREATE UNIQUE INDEX CONCURRENTLY contacts_tenant_unique ON contacts (tenant_id)"
        )
    except asyncpg.UniqueViolationError:
        pass
    await conn.execute(
        "SELECT pg_stat_statements_reset()"
    )  # the set-up's own statements are not the tests'
    for n in range(5):  # sequential scans on an unindexed column, seen by pg_stat_statements too
        await conn.fetchval("SELECT count(*) FROM contacts WHERE email = $1", f"c{n}@example.com")
    await conn.close()  # a closing backend flushes its table statistics


@pytest.fixture(scope="module")
def clientforge(cluster: str) -> Iterator[str]:
    """A ClientForge-shaped database on that cluster: its DSN."""
    name = f"cf_{secrets.token_hex(4)}"
    asyncio.run(_create(cluster, name))
    yield dsn_in(cluster, name)

    async def drop() -> None:
        admin = await asyncpg.connect(cluster)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    asyncio.run(drop())


def db_settings(database_url: str, state_dsn: str, **env: object):  # type: ignore[no-untyped-def]
    """Settings pointing DATABASE_URL at the ClientForge database."""
    return make_settings(
        Config.model_validate(CONFIG),
        database_url=database_url,
        forge_state_database_url=state_dsn,
        **env,
    )


@pytest.fixture
async def forge(clientforge: str, state_dsn: str) -> AsyncIterator[Forge]:
    """A started forge on the ClientForge database."""
    started = Forge(db_settings(clientforge, state_dsn))
    await started.start()
    yield started
    await started.aclose()


async def run(forge: Forge, text: str, user: str = "U0OPS", role: Role = Role.OPERATOR) -> Outcome:
    """Run a command through the real dispatcher, as the CLI does."""
    return await forge.dispatcher.run(
        Invocation(text, user, "C0OPS", source="cli"), actor=Actor(user, role, source="cli")
    )


async def result_of(forge: Forge, text: str, role: Role = Role.OPERATOR):  # type: ignore[no-untyped-def]
    """The result of a command that must succeed."""
    outcome = await run(forge, text, role=role)
    assert outcome.kind == "result", (text, outcome.kind, outcome.message)
    return outcome.result

"""A ClientForge-shaped database (clientforge.md §6.2, 1000s of rows), a movable clock, helpers."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

import commands.backup.handlers  # noqa: F401  (registers the backup commands)
from bot.config.settings import Config, Settings
from bot.core.dispatch import Invocation, Outcome
from bot.core.forge import Forge
from tests.conftest import PG_ADMIN, dsn_for, make_settings

CONFIG = Config.model_validate(
    {
        "roles": {"viewer": ["*"], "operator": ["U0OPS"], "admin": ["U0ADMIN"]},
        "approvers": ["U0LEAD"],
        "channels": {"alerts": "C0ALERTS", "destructive": ["C0OPS"]},
    }
)
TENANTS, USERS, ACCOUNTS, CONTACTS, DEALS = 3, 60, 400, 2000, 800
SCHEMA = """
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE TABLE tenants (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text NOT NULL UNIQUE);
CREATE TABLE roles (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE permissions (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE role_permissions (role_id int REFERENCES roles,
                               permission_id int REFERENCES permissions,
                               PRIMARY KEY (role_id, permission_id));
CREATE TABLE users (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL REFERENCES tenants,
                    email text NOT NULL, password_hash text,
                    created_at timestamptz NOT NULL DEFAULT now(), UNIQUE (tenant_id, email));
CREATE TABLE user_roles (user_id bigint REFERENCES users, role_id int REFERENCES roles,
                         PRIMARY KEY (user_id, role_id));
CREATE TABLE user_sessions (id bigserial PRIMARY KEY, user_id bigint REFERENCES users,
                            expires_at timestamptz);
CREATE TABLE audit_logs (id bigserial PRIMARY KEY, tenant_id uuid, action text,
                         at timestamptz DEFAULT now());
CREATE TABLE accounts (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL REFERENCES tenants,
                       name text NOT NULL);
CREATE INDEX accounts_tenant ON accounts (tenant_id);
CREATE TABLE contacts (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL REFERENCES tenants,
                       account_id bigint REFERENCES accounts, email text, first_name text,
                       last_name text, deleted_at timestamptz);
CREATE INDEX contacts_tenant_email ON contacts (tenant_id, email);
CREATE TABLE pipelines (id serial PRIMARY KEY, tenant_id uuid NOT NULL REFERENCES tenants,
                        name text NOT NULL);
CREATE TABLE deal_stages (id serial PRIMARY KEY, pipeline_id int REFERENCES pipelines, name text,
                          display_order int NOT NULL);
CREATE TABLE deals (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL REFERENCES tenants,
                    account_id bigint REFERENCES accounts, pipeline_id int REFERENCES pipelines,
                    stage_id int REFERENCES deal_stages, amount numeric(12, 2) CHECK (amount >= 0),
                    is_closed boolean NOT NULL DEFAULT false,
                    is_won boolean NOT NULL DEFAULT false);
CREATE INDEX deals_stage ON deals (stage_id);
CREATE TABLE tasks (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL, title text,
                    assigned_to bigint REFERENCES users);
CREATE TABLE activities (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL, entity_type text,
                         entity_id bigint, body text);
CREATE TABLE notes (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL, body text);
CREATE TABLE tags (id serial PRIMARY KEY, tenant_id uuid NOT NULL, name text);
CREATE TABLE search_telemetry (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL,
                               query text NOT NULL, result_count int NOT NULL DEFAULT 0,
                               created_at timestamptz DEFAULT now());
CREATE VIEW connection_stats AS SELECT state, count(*) FROM pg_stat_activity GROUP BY state;
CREATE MATERIALIZED VIEW deal_stats_by_tenant AS
  SELECT tenant_id, count(*) AS deals FROM deals GROUP BY tenant_id;
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER contacts_touch BEFORE UPDATE ON contacts FOR EACH ROW EXECUTE FUNCTION touch();
"""
DATA = f"""
INSERT INTO tenants (name) SELECT 'tenant-' || i FROM generate_series(1, {TENANTS}) i;
INSERT INTO roles (name) VALUES ('admin'), ('sales'), ('viewer');
INSERT INTO permissions (name) SELECT 'perm-' || i FROM generate_series(1, 12) i;
INSERT INTO role_permissions SELECT r.id, p.id FROM roles r, permissions p
  WHERE r.name = 'admin' OR p.id < 4;
INSERT INTO users (tenant_id, email, password_hash)
  SELECT (SELECT id FROM tenants ORDER BY name OFFSET i % {TENANTS} LIMIT 1),
         'user' || i || '@example.com', md5(i::text)
  FROM generate_series(1, {USERS}) i;
INSERT INTO user_roles SELECT id, 1 + id % 3 FROM users;
INSERT INTO accounts (tenant_id, name)
  SELECT (SELECT min(id::text)::uuid FROM tenants), 'Account ' || i
  FROM generate_series(1, {ACCOUNTS}) i;
INSERT INTO contacts (tenant_id, account_id, email, first_name, last_name)
  SELECT (SELECT min(id::text)::uuid FROM tenants), 1 + i % {ACCOUNTS}, 'c' || i || '@example.com',
         'First' || i, 'Last' || i FROM generate_series(1, {CONTACTS}) i;
INSERT INTO pipelines (tenant_id, name) SELECT id, 'Sales' FROM tenants;
INSERT INTO deal_stages (pipeline_id, name, display_order)
  SELECT p.id, 'stage ' || s, s FROM pipelines p, generate_series(1, 5) s;
INSERT INTO deals (tenant_id, account_id, pipeline_id, stage_id, amount)
  SELECT (SELECT min(id::text)::uuid FROM tenants), 1 + i % {ACCOUNTS}, 1, 1 + i % 5, i * 10
  FROM generate_series(1, {DEALS}) i;
INSERT INTO activities (tenant_id, entity_type, entity_id, body)
  SELECT (SELECT min(id::text)::uuid FROM tenants), 'contact', i, repeat('note ', 20)
  FROM generate_series(1, 1500) i;
INSERT INTO search_telemetry (tenant_id, query, result_count)
  SELECT (SELECT min(id::text)::uuid FROM tenants), 'q' || i, i % 7 FROM generate_series(1, 500) i;
REFRESH MATERIALIZED VIEW deal_stats_by_tenant;
"""


class MovableClock:
    """A clock the test sets; monotonic time is real."""

    def __init__(self, now: datetime | None = None) -> None:
        self.at = now or datetime.now(UTC)

    def now(self) -> datetime:
        """The set time."""
        return self.at

    def monotonic(self) -> float:
        """Real monotonic time, so durations stay true."""
        import time

        return time.monotonic()

    def shift(self, **delta: float) -> None:
        """Move the clock."""
        self.at += timedelta(**delta)


@asynccontextmanager
async def clientforge_db(rows: bool = True) -> AsyncIterator[str]:
    """A fresh ClientForge-shaped database's DSN; dropped after, with any leftover scratch one."""
    name = f"forge_cf_{secrets.token_hex(5)}"
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        conn = await asyncpg.connect(dsn_for(name))
        try:
            await conn.execute(SCHEMA)
            if rows:
                await conn.execute(DATA)
        finally:
            await conn.close()
        yield dsn_for(name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def scratch_databases() -> list[str]:
    """Drill scratch databases still on the server."""
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        return [
            r[0]
            for r in await admin.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE 'forge_drill_%'"
            )
        ]
    finally:
        await admin.close()


async def table_counts(dsn: str) -> dict[str, int]:
    """Every public table's row count, straight from the database."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = [
            r[0]
            for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            )
        ]
        return {
            f"public.{t}": await conn.fetchval(f'SELECT count(*) FROM public."{t}"') for t in tables
        }
    finally:
        await conn.close()


def backup_settings(state_dsn: str, cf_dsn: str, tmp: Path, **env: object) -> Settings:
    """Settings: DATABASE_URL on the ClientForge-shaped database, dumps in a temporary directory."""
    return make_settings(
        CONFIG,
        forge_state_database_url=state_dsn,
        database_url=cf_dsn,
        forge_backup_dir=tmp / "backups" / "database",
        forge_log_dir=tmp / "logs",
        **env,
    )


async def run(forge: Forge, text: str, user: str = "U0OPS", channel: str = "C0OPS") -> Outcome:
    """Run a command as a Slack user would, through the dispatcher."""
    return await forge.dispatcher.run(Invocation(text, user, channel))


@pytest.fixture
async def cf() -> AsyncIterator[str]:
    """A ClientForge-shaped database with a few thousand rows, dropped after the test."""
    async with clientforge_db() as dsn:
        yield dsn

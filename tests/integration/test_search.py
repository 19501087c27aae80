"""`search zero-results` and `search analyze` on a scratch database with ClientForge's schema."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

import commands.search.telemetry  # noqa: F401  (registers the commands)
from bot.core.result import Status
from bot.text.cells import plain
from tests.conftest import PG_ADMIN, dsn_for
from tests.support.ops_support import run, started_forge

pytestmark = pytest.mark.integration
TENANTS = [uuid.UUID(int=i) for i in (0xA1, 0xB2)]
USER = uuid.UUID(int=0xC3)
# migration 011_search_telemetry_synonyms.sql (clientforge.md §6.3), with the tables its foreign
# keys name
SCHEMA = """
CREATE TABLE tenants (id UUID PRIMARY KEY DEFAULT gen_random_uuid(), name TEXT);
CREATE TABLE users (id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id UUID REFERENCES tenants(id));
CREATE TABLE search_telemetry (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  user_id UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  query TEXT NOT NULL, query_lowercase TEXT NOT NULL, type VARCHAR(50) DEFAULT 'all',
  result_count INT NOT NULL DEFAULT 0, response_time_ms INT NOT NULL, clicked BOOLEAN DEFAULT FALSE,
  clicked_id UUID, clicked_index INT, clicked_at TIMESTAMP, created_at TIMESTAMP DEFAULT NOW());
CREATE INDEX idx_search_telemetry_tenant ON search_telemetry(tenant_id);
CREATE INDEX idx_search_telemetry_user ON search_telemetry(user_id);
CREATE INDEX idx_search_telemetry_query_lower ON search_telemetry(query_lowercase);
CREATE INDEX idx_search_telemetry_created ON search_telemetry(created_at DESC);
CREATE INDEX idx_search_telemetry_zero_results ON search_telemetry(tenant_id, result_count)
  WHERE result_count = 0;
CREATE TABLE search_synonyms (id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE, synonyms TEXT[] NOT NULL,
  created_by UUID REFERENCES users(id), created_at TIMESTAMP DEFAULT NOW());
CREATE INDEX idx_search_synonyms_tenant ON search_synonyms(tenant_id);
"""


@pytest.fixture(scope="module")
def clientforge_db() -> Iterator[str]:
    """A scratch database with ClientForge's search tables, dropped after the module."""
    name = f"forge_search_{secrets.token_hex(4)}"

    async def create() -> None:
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        conn = await asyncpg.connect(dsn_for(name))
        await conn.execute(SCHEMA)
        await conn.executemany(
            "INSERT INTO tenants (id, name) VALUES ($1, 'acme')", [(t,) for t in TENANTS]
        )
        await conn.execute("INSERT INTO users (id, tenant_id) VALUES ($1, $2)", USER, TENANTS[0])
        await conn.close()

    async def drop() -> None:
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    asyncio.run(create())
    yield dsn_for(name)
    asyncio.run(drop())


@pytest.fixture
async def db(clientforge_db: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the scratch database, its telemetry emptied first."""
    conn = await asyncpg.connect(clientforge_db)
    await conn.execute("TRUNCATE search_telemetry, search_synonyms")
    yield conn
    await conn.close()


@pytest.fixture
async def forge(state_dsn, clientforge_db):
    """forge with DATABASE_URL on the scratch database."""
    async with started_forge(state_dsn, database_url=clientforge_db) as started:
        yield started


async def searches(
    conn: asyncpg.Connection,
    query: str,
    times: int,
    *,
    results: int = 5,
    ms: int = 40,
    clicked: int = 0,
    days_ago: float = 0.01,
    tenant: int = 0,
) -> None:
    """Insert `times` telemetry rows for one query, the first `clicked` of them clicked."""
    await conn.executemany(
        "INSERT INTO search_telemetry (tenant_id, user_id, query, query_lowercase, result_count,"
        " response_time_ms,"
        " clicked, clicked_index, created_at) VALUES ($1, $2, $3, lower($3), $4, $5, $6, $7,"
        " now() - make_interval(secs => $8))",
        [
            (
                TENANTS[tenant],
                USER,
                query,
                results,
                ms,
                i < clicked,
                1 if i < clicked else None,
                days_ago * 86400,
            )
            for i in range(times)
        ],
    )


async def test_zero_results_lists_queries_seen_three_times_with_synonym_candidates(forge, db):
    """Only zero-result queries seen 3+ times in the window; those in a synonym set are excluded."""
    await searches(db, "Pipeline CRM", 3, results=0)
    await searches(db, "pipeline crm", 1, results=0, tenant=1)
    await searches(db, "Deal Flow", 3, results=0)
    await searches(db, "acme", 2, results=0)
    await searches(db, "ancient", 5, results=0, days_ago=40)
    await searches(db, "contacts", 10, results=8, clicked=5)
    await db.execute(
        "INSERT INTO search_synonyms (tenant_id, synonyms) "
        "VALUES ($1, ARRAY['deal flow', 'pipeline'])",
        TENANTS[0],
    )
    outcome = await run(forge, "search zero-results")
    assert outcome.kind == "result", outcome.message
    data = outcome.result.data
    assert [(q["query"], q["times"], q["tenants"]) for q in data["queries"]] == [
        ("pipeline crm", 4, 2),
        ("deal flow", 3, 1),
    ]
    assert data["candidates"] == ["pipeline crm"] and outcome.result.status is Status.WARNING
    assert outcome.result.tables[0].rows[1][-1] == "yes"
    wider = (await run(forge, "search zero-results --days 60 --limit 1")).result.data
    assert [q["query"] for q in wider["queries"]] == ["ancient"]


@pytest.mark.parametrize("command", ["search zero-results", "search analyze"])
async def test_an_empty_table_is_reported_as_broken_telemetry_never_as_fine(forge, db, command):
    """No rows at all: a warning that names the tenantId insert bug, not 'all is well'."""
    outcome = await run(forge, command)
    assert outcome.kind == "result", outcome.message
    assert outcome.result.status is Status.WARNING
    assert "telemetry looks broken" in outcome.result.summary and "tenantId" in outcome.result.text
    assert "fine" not in outcome.result.summary


async def test_only_old_rows_mean_telemetry_stopped(forge, db):
    """Rows older than the window: the window is empty because inserts stopped, and it says so."""
    await searches(db, "contacts", 20, days_ago=45)
    outcome = await run(forge, "search analyze")
    assert outcome.result.status is Status.WARNING
    assert (
        "no search_telemetry rows in the last 30 days (newest 45.0 d old)" in outcome.result.summary
    )
    fields = dict(outcome.result.fields)
    assert (
        fields["Searches"] == "0"
        and fields["Avg response"] == "—"
        and fields["Click-through"] == "—"
    )


async def test_analyze_healthy_search_is_ok(forge, db):
    """Fast searches with results and 40 % click-through pass every threshold."""
    await searches(db, "contacts", 10, results=8, ms=60, clicked=4)
    await searches(db, "deals q4", 5, results=3, ms=120, clicked=2)
    outcome = await run(forge, "search analyze")
    assert outcome.kind == "result", outcome.message
    assert outcome.result.status is Status.OK, outcome.result.summary
    fields = dict(outcome.result.fields)
    assert (
        fields["Searches"] == "15"
        and fields["Click-through"] == "40.0 %"
        and fields["Tenants"] == "1"
    )
    assert outcome.result.tables[0].rows[0][:2] == ["contacts", "10"]


async def test_analyze_flags_slow_average_zero_results_and_broken_clicks(forge, db):
    """Average > 200 ms, searches > 500 ms, zero-result queries, CTR 0 % (broken click update)."""
    await searches(db, "big export", 4, results=40, ms=900)
    await searches(db, "contacts", 6, results=8, ms=150)
    await searches(db, "nothing here", 3, results=0, ms=30)
    outcome = await run(forge, "search analyze")
    reasons = outcome.result.data["reasons"]
    assert outcome.result.status is Status.WARNING
    assert (
        "average response 353 ms (> 200 ms)" in reasons and "4 searches took over 500 ms" in reasons
    )
    assert any(r.startswith("1 query found nothing 3+ times") for r in reasons)
    assert (
        "click-through 0.0 % (< 30 %): no click recorded at all, "
        "ClientForge's click tracking is broken" in reasons
    )
    assert "UPDATE … ORDER BY … LIMIT" in outcome.result.text
    titles = [t.title for t in outcome.result.tables]
    assert titles == ["Top queries", "Zero-result queries seen 3+ times", "Slow queries (> 500 ms)"]
    assert outcome.result.tables[2].rows[0] == ["big export", "4", "900 ms", "900 ms"]


async def test_missing_table_is_critical(state_dsn):
    """A database without migration 011 is named as such."""
    async with started_forge(state_dsn, database_url=state_dsn) as forge:
        outcome = await run(forge, "search analyze")
    assert outcome.result.status is Status.CRITICAL and "migration 011" in outcome.result.summary


async def test_bad_input_is_a_usage_error(forge, db):
    """Out-of-range or unknown options are refused before any query."""
    for text in (
        "search zero-results --days 0",
        "search zero-results --limit 1000",
        "search analyze --days x",
        "search analyze --since 3",
    ):
        outcome = await run(forge, text)
        assert outcome.kind == "usage" and len(plain(outcome.message)) < 120, text

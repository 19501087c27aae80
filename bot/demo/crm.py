"""The demo's CRM database: created with the demo's mark, seeded with findings, queried slowly."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from bot.demo.places import DATABASE, PG_TIMEOUT, Places

SCHEMA = Path(__file__).with_name("crm.sql")
# What the CRM's API would run: deals by contact (no index) and a pipeline summary.
STATEMENTS = (
    "SELECT id, stage, amount FROM deals WHERE contact_id = $1",
    "SELECT stage, count(*), sum(amount) FROM deals d JOIN contacts c ON c.id = d.contact_id "
    "WHERE c.tenant_id = (SELECT id FROM tenants ORDER BY id LIMIT 1) GROUP BY stage",
)


async def create(places: Places) -> None:
    """A fresh `forge_demo_crm`, marked as the demo's, with its tables and findings."""
    await places.create_database(DATABASE)
    crm = await asyncpg.connect(places.crm_dsn, timeout=PG_TIMEOUT)
    try:
        await crm.execute(SCHEMA.read_text(encoding="utf-8"))
        preloaded = await crm.fetchval("SELECT current_setting('shared_preload_libraries')")
        if "pg_stat_statements" in preloaded:
            await crm.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    finally:
        await crm.close()


async def run_statements(crm: asyncpg.Connection, n: int) -> None:
    """One round of the CRM's own queries, so db indexes, slow and top have something to find."""
    await crm.fetch(STATEMENTS[0], 1 + (n * 7919) % 5000)
    if n % 5 == 0:
        await crm.fetch(STATEMENTS[1])

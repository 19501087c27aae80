"""The audit trail on real PostgreSQL: append-only, hash-chained, tamper-evident, redacted."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from bot.core.audit import AuditEntry, AuditLog
from bot.core.context import SystemClock
from bot.core.errors import BackendUnavailable
from bot.state.store import StateStore
from bot.text.redact import Redactor

pytestmark = pytest.mark.integration


@pytest.fixture
async def audit(state_dsn):
    """An AuditLog on a fresh state store."""
    store = StateStore(state_dsn, 5.0)
    yield AuditLog(store, Redactor(["s3cr3t-signing"]), SystemClock())
    await store.aclose()


def entry(n: int, **kw) -> AuditEntry:
    """A plausible audit entry."""
    return AuditEntry(
        event="command",
        actor_id=f"U{n:04d}",
        text=f"health {n}",
        outcome="ok",
        command="health",
        duration_ms=n,
        channel_id="C0OPS",
        **kw,
    )


async def test_chain_verifies_after_many_concurrent_inserts(audit):
    """100 rows written concurrently form one unbroken chain."""
    await asyncio.gather(*(audit.record(entry(n)) for n in range(100)))
    report = await audit.verify()
    assert report.ok and report.rows == 100


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE forge.audit_log SET outcome = 'ok' WHERE id = 1",
        "DELETE FROM forge.audit_log WHERE id = 1",
        "TRUNCATE forge.audit_log",
    ],
)
async def test_rows_cannot_be_changed_or_removed(audit, state_dsn, statement):
    """A trigger refuses UPDATE, DELETE and TRUNCATE, even for the table's owner."""
    await audit.record(entry(1))
    conn = await asyncpg.connect(state_dsn)
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await conn.execute(statement)
    assert await conn.fetchval("SELECT count(*) FROM forge.audit_log") == 1
    await conn.close()


async def test_tampering_is_detected_at_the_altered_row(audit, state_dsn):
    """A superuser who disables the trigger and edits a row breaks the chain at that row."""
    for n in range(10):
        await audit.record(entry(n))
    conn = await asyncpg.connect(state_dsn)
    await conn.execute("ALTER TABLE forge.audit_log DISABLE TRIGGER audit_log_append_only")
    await conn.execute("UPDATE forge.audit_log SET outcome = 'denied' WHERE id = 7")
    await conn.close()
    report = await audit.verify()
    assert not report.ok and report.first_bad_id == 7 and report.rows == 6


async def test_secrets_and_newlines_are_scrubbed_before_storage(audit, state_dsn):
    """Known secrets, tokens and DSN passwords are redacted; text is one line."""
    await audit.record(
        AuditEntry(
            event="command",
            actor_id="U1",
            outcome="ok",
            detail={"note": "xoxb-123-abc"},
            text="run s3cr3t-signing postgresql://forge:hunter2@db/x\nxoxb-9-9 ok",
        )
    )
    conn = await asyncpg.connect(state_dsn)
    row = await conn.fetchrow("SELECT text, detail::text AS detail FROM forge.audit_log")
    await conn.close()
    assert (
        "s3cr3t" not in row["text"] and "hunter2" not in row["text"] and "xoxb-9" not in row["text"]
    )
    assert "\n" not in row["text"] and "xoxb-123" not in row["detail"]
    assert (await audit.verify()).ok


async def test_query_filters_by_user_and_command_prefix(audit):
    """`audit --user` and `--command` filter; newest first; the limit holds."""
    await audit.record(entry(1))
    await audit.record(AuditEntry("command", "U0002", "dlq list email", "ok", command="dlq list"))
    await audit.record(AuditEntry("command", "U0002", "dlq clear email", "ok", command="dlq clear"))
    assert [r["command"] for r in await audit.query(command="dlq")] == ["dlq clear", "dlq list"]
    assert [r["actor_id"] for r in await audit.query(user="U0001")] == ["U0001"]
    assert len(await audit.query(limit=1)) == 1


async def test_store_down_makes_record_raise_and_try_record_return_false():
    """With the state store unreachable, writes fail loudly and read paths carry on."""
    store = StateStore("postgresql://postgres@127.0.0.1:9/forge", 1.0)
    log = AuditLog(store, Redactor(), SystemClock())
    with pytest.raises(BackendUnavailable):
        await log.record(entry(1))
    assert await log.try_record(entry(1)) is False

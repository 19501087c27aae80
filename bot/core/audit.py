"""The audit trail: every command, click, denial and outcome; append-only and hash-chained."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.backends.clients import call
from bot.log import get_logger
from bot.state.store import StateStore
from bot.text.redact import Redactor

log = get_logger(__name__)
GENESIS = "0" * 64
CHAIN_LOCK = 7_466_847_002


@dataclass(frozen=True)
class AuditEntry:
    """One audited event."""

    event: str
    actor_id: str
    text: str
    outcome: str
    source: str = "slack"
    channel_id: str | None = None
    command: str | None = None
    duration_ms: int | None = None
    request_id: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChainReport:
    """The result of checking the hash chain."""

    ok: bool
    rows: int
    first_bad_id: int | None = None


def chain_hash(prev_hash: str, at: datetime, entry: AuditEntry) -> str:
    """SHA-256 over the previous hash and the row's content, in a fixed canonical form."""
    canonical = json.dumps(
        [
            prev_hash,
            at.isoformat(),
            entry.request_id,
            entry.event,
            entry.actor_id,
            entry.channel_id,
            entry.source,
            entry.command,
            entry.text,
            entry.outcome,
            entry.duration_ms,
            entry.detail,
        ],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


FILTER = """WHERE ($1::text IS NULL OR actor_id = $1)
  AND ($2::text IS NULL OR command = $2 OR command LIKE $2 || ' %')"""


class AuditLog:
    """Writes and reads forge.audit_log through the state store."""

    def __init__(
        self, store: StateStore, redactor: Redactor, clock: Any, timeout: float = 5.0
    ) -> None:
        self._store = store
        self._redact = redactor
        self._clock = clock
        self._timeout = timeout

    async def record(self, entry: AuditEntry) -> int:
        """Append one row (secrets redacted, single-line) and return its id."""
        entry = _clean(entry, self._redact)
        pool = await self._store.pool()
        return await call("state store", self._append(pool, entry), self._timeout)

    async def _append(self, pool: Any, entry: AuditEntry) -> int:
        at = self._clock.now()
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", CHAIN_LOCK)
            prev = (
                await conn.fetchval("SELECT hash FROM forge.audit_log ORDER BY id DESC LIMIT 1")
                or GENESIS
            )
            return await conn.fetchval(
                """INSERT INTO forge.audit_log (at, request_id, event, actor_id, channel_id, source,
                       command, text, outcome, duration_ms, detail, prev_hash, hash)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12, $13)
                   RETURNING id""",
                at,
                entry.request_id,
                entry.event,
                entry.actor_id,
                entry.channel_id,
                entry.source,
                entry.command,
                entry.text,
                entry.outcome,
                entry.duration_ms,
                json.dumps(entry.detail),
                prev,
                chain_hash(prev, at, entry),
            )

    async def try_record(self, entry: AuditEntry) -> bool:
        """Record, logging instead of raising when the store is down (read paths only)."""
        try:
            await self.record(entry)
        except Exception as exc:  # the audit must never take a read command down with it
            log.warning("audit_write_failed", audit_event=entry.event, error=type(exc).__name__)
            return False
        return True

    async def query(
        self,
        *,
        user: str | None = None,
        command: str | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> list[dict]:
        """Newest rows first, filtered by actor and by command name (or its prefix)."""
        pool = await self._store.pool()
        rows = await call(
            "state store",
            pool.fetch(
                f"""SELECT id, at, event, actor_id, channel_id, source, command, text, outcome,
                       duration_ms
                 FROM forge.audit_log {FILTER}
                ORDER BY id DESC LIMIT $3 OFFSET $4""",
                user,
                command,
                limit,
                offset,
            ),
            self._timeout,
        )
        return [dict(r) for r in rows]

    async def count(self, *, user: str | None = None, command: str | None = None) -> int:
        """How many rows `query` pages through with these filters."""
        pool = await self._store.pool()
        sql = f"SELECT count(*) FROM forge.audit_log {FILTER}"
        return await call("state store", pool.fetchval(sql, user, command), self._timeout)

    async def verify(self) -> ChainReport:
        """Recompute every row's hash in order; report the first row that does not match."""
        pool = await self._store.pool()
        return await call("state store", self._verify(pool), max(self._timeout, 60.0))

    async def _verify(self, pool: Any) -> ChainReport:
        prev, count = GENESIS, 0
        async with (
            pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            async for row in conn.cursor("SELECT * FROM forge.audit_log ORDER BY id"):
                entry = AuditEntry(
                    event=row["event"],
                    actor_id=row["actor_id"],
                    text=row["text"],
                    outcome=row["outcome"],
                    source=row["source"],
                    channel_id=row["channel_id"],
                    command=row["command"],
                    duration_ms=row["duration_ms"],
                    request_id=row["request_id"],
                    detail=json.loads(row["detail"]),
                )
                if row["prev_hash"] != prev or row["hash"] != chain_hash(prev, row["at"], entry):
                    return ChainReport(False, count, row["id"])
                prev, count = row["hash"], count + 1
        return ChainReport(True, count)


def _clean(entry: AuditEntry, redactor: Redactor) -> AuditEntry:
    def one_line(value: str) -> str:
        # PostgreSQL text holds neither NUL nor a lone surrogate: a refusal of either is audited too
        storable = value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
        return redactor(" ".join(storable.split()))[:2000]

    detail = {k: one_line(v) if isinstance(v, str) else v for k, v in entry.detail.items()}
    detail = redactor.value(detail)
    return AuditEntry(
        entry.event,
        entry.actor_id,
        one_line(entry.text),
        entry.outcome,
        entry.source,
        entry.channel_id,
        entry.command,
        entry.duration_ms,
        entry.request_id,
        detail,
    )

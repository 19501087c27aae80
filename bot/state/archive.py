"""The job archive in the state store: every job's whole record, kept before it is removed."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.backends.clients import call
from bot.state.rdb import RdbError, read_hash
from bot.state.store import StateStore

COLUMNS = ("batch_id", "queue", "job_id", "name", "record", "format", "log")
# (id, name, record, log): the hash as `format` says; its log as MessagePack [lines in all, newest
# lines kept], or b"" when it has none
ArchivedJob = tuple[str, str, bytes, bytes]
ROWS_BETWEEN_YIELDS = 100


def unpack(record: bytes, form: str = "msgpack") -> dict[str, str]:
    """An archived job hash back to a mapping: from a DUMP payload (`rdb`) or MessagePack pairs."""
    if form == "rdb":
        return read_hash(record)
    import msgpack

    flat = msgpack.unpackb(record, raw=False, unicode_errors="replace")
    return dict(zip(flat[::2], flat[1::2], strict=True))


@dataclass(frozen=True)
class Batch:
    """One archived removal: which queue, why, by whom, how many jobs."""

    id: uuid.UUID
    queue: str
    reason: str
    actor_id: str
    created_at: datetime
    jobs: int


async def _rows(
    batch_id: uuid.UUID, queue: str, jobs: Sequence[ArchivedJob], form: str
) -> AsyncIterator[tuple[Any, ...]]:
    """The COPY's rows, handing the event loop back every ROWS_BETWEEN_YIELDS rows: encoding a
    whole window at once held it for milliseconds while `dlq clear`'s Redis replies waited."""
    for n, (job_id, name, record, log) in enumerate(jobs, 1):
        yield (batch_id, queue, job_id, name or None, record, form, log or None)
        if n % ROWS_BETWEEN_YIELDS == 0:
            await asyncio.sleep(0)


class Archive:
    """Writes and reads forge.archive_batches and forge.job_archive."""

    def __init__(self, store: StateStore, timeout: float = 30.0) -> None:
        self._store = store
        self._timeout = timeout

    async def open_batch(
        self, queue: str, reason: str, actor_id: str, approval_id: uuid.UUID | None = None
    ) -> uuid.UUID:
        """Start a batch before the first job of a removal is archived."""
        batch_id = uuid.uuid4()
        pool = await self._store.pool()
        await call(
            "state store",
            pool.execute(
                "INSERT INTO forge.archive_batches (id, queue, reason, actor_id, approval_id) "
                "VALUES ($1, $2, $3, $4, $5)",
                batch_id,
                queue,
                reason,
                actor_id,
                approval_id,
            ),
            self._timeout,
        )
        return batch_id

    async def add(
        self, batch_id: uuid.UUID, queue: str, jobs: Sequence[ArchivedJob], form: str = "rdb"
    ) -> int:
        """Archive jobs (id, name, hash as DUMP payload or packed field list, log) in one COPY."""
        if not jobs:
            return 0
        pool = await self._store.pool()
        async with pool.acquire() as conn:
            await call(
                "state store",
                conn.copy_records_to_table(
                    "job_archive",
                    schema_name="forge",
                    columns=COLUMNS,
                    records=_rows(batch_id, queue, jobs, form),
                ),
                self._timeout,
            )
        return len(jobs)

    async def discard(self, batch_id: uuid.UUID, job_ids: Sequence[str]) -> None:
        """Drop archive rows of jobs not removed after all (they are still in the queue)."""
        if job_ids:
            pool = await self._store.pool()
            await call(
                "state store",
                pool.execute(
                    "DELETE FROM forge.job_archive "
                    "WHERE batch_id = $1 AND job_id = ANY($2::text[])",
                    batch_id,
                    list(job_ids),
                ),
                self._timeout,
            )

    async def batches(self, queue: str | None = None, limit: int = 20) -> list[Batch]:
        """Recent batches, newest first, with their job counts."""
        pool = await self._store.pool()
        rows = await call(
            "state store",
            pool.fetch(
                """SELECT b.id, b.queue, b.reason, b.actor_id, b.created_at, count(j.job_id) AS jobs
                 FROM forge.archive_batches b LEFT JOIN forge.job_archive j ON j.batch_id = b.id
                WHERE $1::text IS NULL OR b.queue = $1
                GROUP BY b.id ORDER BY b.created_at DESC LIMIT $2""",
                queue,
                limit,
            ),
            self._timeout,
        )
        return [Batch(**dict(r)) for r in rows]

    async def export(self, batch_id: uuid.UUID) -> bytes:
        """The batch as JSON Lines, one job record per line, in job id order."""
        pool = await self._store.pool()
        rows = await call(
            "state store",
            pool.fetch(
                "SELECT queue, job_id, record, format, log FROM forge.job_archive "
                "WHERE batch_id = $1 "
                "ORDER BY length(job_id), job_id",
                batch_id,
            ),
            self._timeout,
        )
        lines = (
            json.dumps({"queue": r["queue"], "id": r["job_id"], **_fields(r), **_log(r["log"])})
            for r in rows
        )
        return "".join(line + "\n" for line in lines).encode()


def _fields(row: Any) -> dict[str, str]:
    """The archived job's fields; an unreadable payload is exported as it is, with the reason."""
    try:
        return unpack(row["record"], row["format"])
    except (RdbError, ValueError) as exc:
        return {
            "archive_error": str(exc),
            "record_base64": base64.b64encode(row["record"]).decode(),
        }


def _log(packed: bytes | None) -> dict[str, Any]:
    """The job's log lines, and how many there were when fewer were kept; nothing without one,
    and an unreadable one as it is, with the reason."""
    if not packed:
        return {}
    import msgpack

    try:
        total, lines = msgpack.unpackb(packed, raw=False, unicode_errors="replace")
        kept: dict[str, Any] = {"logs": [str(line) for line in lines]}
    except (ValueError, TypeError) as exc:
        reason = f"unreadable log ({type(exc).__name__}{': ' + str(exc) if str(exc) else ''})"
        return {"log_error": reason, "log_base64": base64.b64encode(packed).decode()}
    return kept if int(total) <= len(lines) else {**kept, "log_lines_in_all": int(total)}

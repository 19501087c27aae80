"""Slack work a replica acked but has not answered: a row from the ack until the answer.

The row is written before the ack leaves, so a replica that dies (`kill -9`) leaves its rows
behind and the background leader reports them; a replica stopping cleanly hands back what it never
started (replica NULL), and another replica runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.backends.clients import call
from bot.state.store import StateStore

ACK_CONNECTIONS = 3
ORPHANS = """
DELETE FROM forge.inflight i
 WHERE i.replica IS NOT NULL
   AND i.acked_at < now() - make_interval(secs => $1)
   AND NOT EXISTS (SELECT 1 FROM forge.replicas r
                    WHERE r.id = i.replica AND r.seen_at > now() - make_interval(secs => $1))
RETURNING i.*,
          (SELECT a.outcome FROM forge.audit_log a
            WHERE a.request_id = i.request_id AND a.event <> 'intent'
            ORDER BY a.id DESC LIMIT 1) AS audited"""
TAKE_BACK = """
UPDATE forge.inflight SET replica = $1
 WHERE request_id IN (SELECT request_id FROM forge.inflight WHERE replica IS NULL
                       ORDER BY acked_at LIMIT $2 FOR UPDATE SKIP LOCKED)
RETURNING *"""


@dataclass(frozen=True)
class Acked:
    """One acked Slack request, as recorded."""

    request_id: str
    kind: str
    actor_id: str
    channel_id: str
    text: str
    response_url: str | None = None
    thread_ts: str | None = None
    replica: str | None = None
    audited: str | None = None

    @classmethod
    def of(cls, row: Any) -> Acked:
        """From a database row."""
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in dict(row).items() if k in names})


class Inflight:
    """Reads and writes of forge.inflight; every call bounded by `timeout`."""

    def __init__(self, store: StateStore, replica: str, timeout: float) -> None:
        self.store, self.replica, self.timeout = store, replica, timeout

    async def acked(self, work: Acked) -> None:
        """Record work this replica has acked, on a pool of its own: an ack never waits for a
        connection behind running commands."""
        await self.store.pool()  # migrated first
        pool = await self.store.side_pool(ACK_CONNECTIONS)
        await call(
            "state store",
            pool.execute(
                "INSERT INTO forge.inflight (request_id, replica, kind, actor_id, channel_id, "
                "text, response_url, thread_ts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
                "ON CONFLICT DO NOTHING",
                work.request_id,
                self.replica,
                work.kind,
                work.actor_id,
                work.channel_id,
                work.text,
                work.response_url,
                work.thread_ts,
            ),
            self.timeout,
        )

    async def done(self, request_id: str) -> None:
        """The work was answered (or found to be a duplicate)."""
        pool = await self.store.pool()
        await call(
            "state store",
            pool.execute("DELETE FROM forge.inflight WHERE request_id = $1", request_id),
            self.timeout,
        )

    async def hand_back(self, request_ids: list[str]) -> None:
        """Give work this replica never started to whichever replica takes it next."""
        pool = await self.store.pool()
        await call(
            "state store",
            pool.execute(
                "UPDATE forge.inflight SET replica = NULL "
                "WHERE request_id = ANY($1::text[]) AND replica = $2",
                request_ids,
                self.replica,
            ),
            self.timeout,
        )

    async def take_back(self, limit: int = 50) -> list[Acked]:
        """Claim handed-back work for this replica; each row goes to one replica only."""
        pool = await self.store.pool()
        rows = await call("state store", pool.fetch(TAKE_BACK, self.replica, limit), self.timeout)
        return [Acked.of(r) for r in rows]

    async def orphans(self, dead_after: float) -> list[Acked]:
        """Remove and return the work of replicas silent for `dead_after` seconds."""
        pool = await self.store.pool()
        rows = await call("state store", pool.fetch(ORPHANS, dead_after), self.timeout)
        return [Acked.of(r) for r in rows]

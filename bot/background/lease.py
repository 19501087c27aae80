"""Replicas in the state store: who is alive (a heartbeat) and who holds a named lease.

A lease is one row: taken when free or expired, renewed only by its holder, released on a clean
stop. The holder also keeps a local deadline, measured from before the renewing query was sent,
so it stops acting on its own before any other replica can have taken the lease over.
"""

from __future__ import annotations

import os
import secrets
import socket
import time

from bot.backends.clients import call
from bot.state.store import StateStore

TAKE = """
INSERT INTO forge.leases AS l (name, holder, expires_at)
     VALUES ($1, $2, now() + make_interval(secs => $3))
ON CONFLICT (name) DO UPDATE
        SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at,
            acquired_at = CASE WHEN l.holder = EXCLUDED.holder THEN l.acquired_at ELSE now() END
      WHERE l.holder = EXCLUDED.holder OR l.expires_at <= now()
  RETURNING holder"""
BEAT = """
INSERT INTO forge.replicas (id) VALUES ($1)
ON CONFLICT (id) DO UPDATE SET seen_at = now()"""


def replica_id(configured: str | None = None) -> str:
    """This process's name: FORGE_REPLICA_ID (the pod's name), else host-pid-nonce."""
    if configured:
        return configured
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


class Lease:
    """A named lease held by one replica at a time."""

    def __init__(self, store: StateStore, name: str, holder: str, ttl: float, timeout: float):
        self.store, self.name, self.holder = store, name, holder
        self.ttl, self.timeout = ttl, min(timeout, ttl / 3)
        self._valid_until = 0.0

    @property
    def held(self) -> bool:
        """True while this replica may act as the holder (its local deadline has not passed)."""
        return time.monotonic() < self._valid_until

    async def hold(self) -> bool:
        """Take the lease if it is free or expired, renew it if it is ours; True when held."""
        sent = time.monotonic()
        pool = await self.store.pool()
        holder = await call(
            "state store", pool.fetchval(TAKE, self.name, self.holder, self.ttl), self.timeout
        )
        self._valid_until = sent + self.ttl if holder == self.holder else 0.0
        return self.held

    async def release(self) -> None:
        """Give the lease up now, so another replica takes it at its next try."""
        self._valid_until = 0.0
        pool = await self.store.pool()
        await call(
            "state store",
            pool.execute(
                "DELETE FROM forge.leases WHERE name = $1 AND holder = $2", self.name, self.holder
            ),
            self.timeout,
        )


class Presence:
    """This replica's heartbeat; a replica silent for `dead_after` seconds is taken for dead."""

    def __init__(self, store: StateStore, replica: str, timeout: float) -> None:
        self.store, self.replica, self.timeout = store, replica, timeout

    async def beat(self) -> None:
        """Say this replica is alive."""
        pool = await self.store.pool()
        await call("state store", pool.execute(BEAT, self.replica), self.timeout)

    async def leave(self) -> None:
        """Say this replica stopped cleanly (after it drained or handed back its work)."""
        pool = await self.store.pool()
        await call(
            "state store",
            pool.execute("DELETE FROM forge.replicas WHERE id = $1", self.replica),
            self.timeout,
        )

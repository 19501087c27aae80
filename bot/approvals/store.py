"""Approval requests in the state store; each change is one conditional UPDATE: exactly one wins.

    pending ──claim (a second person)──▶ executing ──finish──▶ succeeded | failed | stale
       │                                    └──lease lapsed (sweep)──▶ outcome_unknown
       ├──deny (another) / cancel (the requester)──▶ denied | cancelled
       └──expires_at passed (sweep)──▶ expired

Each arrow is an UPDATE whose WHERE names the state it leaves, so two clicks, two replicas or a
click racing the sweep cannot both move a row. No arrow leaves an end state: outcome_unknown is
never re-run, because nobody knows whether the first run acted.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.backends.clients import call
from bot.state.store import StateStore

OPEN = ("pending", "executing")


def params_hash(command: str, params: dict[str, Any], scope: dict[str, Any] | None = None) -> str:
    """SHA-256 over the command, its arguments and its frozen scope (if any), in canonical JSON."""
    signed: list[Any] = [command, params] + ([scope] if scope is not None else [])
    return hashlib.sha256(json.dumps(signed, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Approval:
    """One request as stored."""

    id: uuid.UUID
    command: str
    text: str
    params: dict[str, Any]
    params_sha256: str
    requester_id: str
    channel_id: str
    preview: str
    status: str
    created_at: datetime
    expires_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    lease_until: datetime | None
    finished_at: datetime | None
    outcome: str | None
    message_ts: str | None
    environment: str | None = None
    scope: dict[str, Any] | None = None

    @property
    def short_id(self) -> str:
        """The first eight hex digits, as shown to people."""
        return self.id.hex[:8]

    @property
    def intact(self) -> bool:
        """True when the stored arguments and scope still hash to what was requested."""
        return params_hash(self.command, self.params, self.scope) == self.params_sha256


def _row(record: Any) -> Approval | None:
    if record is None:
        return None
    values = dict(record)
    values["params"] = json.loads(values["params"])
    values["scope"] = json.loads(values["scope"]) if values.get("scope") else None
    return Approval(**values)


class ApprovalStore:
    """Reads and conditional writes of forge.approvals."""

    def __init__(self, store: StateStore, timeout: float = 5.0) -> None:
        self._store = store
        self._timeout = timeout

    async def _one(self, sql: str, *args: Any) -> Approval | None:
        pool = await self._store.pool()
        return _row(await call("state store", pool.fetchrow(sql, *args), self._timeout))

    async def create(
        self,
        *,
        command: str,
        text: str,
        params: dict[str, Any],
        requester_id: str,
        channel_id: str,
        preview: str,
        ttl: timedelta,
        environment: str | None = None,
        scope: dict[str, Any] | None = None,
    ) -> Approval:
        """Store a pending request, made in `environment`, that expires after `ttl`.

        Without an environment it can never run: execution requires the same environment. `scope`
        is what its dry run showed; it is signed with the arguments."""
        return await self._one(  # type: ignore[return-value]
            """INSERT INTO forge.approvals (id, command, text, params, params_sha256, requester_id,
                   channel_id, preview, status, expires_at, environment, scope)
               VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, 'pending', now() + $9::interval, $10,
                       $11::jsonb)
               RETURNING *""",
            uuid.uuid4(),
            command,
            text,
            json.dumps(params),
            params_hash(command, params, scope),
            requester_id,
            channel_id,
            preview,
            ttl,
            environment,
            json.dumps(scope) if scope is not None else None,
        )

    async def get(self, approval_id: uuid.UUID) -> Approval | None:
        """The request, if it exists."""
        return await self._one("SELECT * FROM forge.approvals WHERE id = $1", approval_id)

    async def set_message(self, approval_id: uuid.UUID, message_ts: str) -> None:
        """Remember the approval card's message."""
        pool = await self._store.pool()
        await call(
            "state store",
            pool.execute(
                "UPDATE forge.approvals SET message_ts = $2 WHERE id = $1", approval_id, message_ts
            ),
            self._timeout,
        )

    async def claim(
        self, approval_id: uuid.UUID, approver_id: str, lease: timedelta
    ) -> Approval | None:
        """pending → executing, by someone not the requester, before expiry; None if another won."""
        return await self._one(
            """UPDATE forge.approvals
                  SET status = 'executing', decided_by = $2, decided_at = now(),
                      lease_until = now() + $3::interval
                WHERE id = $1 AND status = 'pending' AND expires_at > now() AND requester_id <> $2
            RETURNING *""",
            approval_id,
            approver_id,
            lease,
        )

    async def renew(self, approval_id: uuid.UUID, lease: timedelta) -> bool:
        """Extend a running execution's lease; False once it is no longer executing."""
        return (
            await self._one(
                """UPDATE forge.approvals SET lease_until = now() + $2::interval
                    WHERE id = $1 AND status = 'executing' RETURNING *""",
                approval_id,
                lease,
            )
            is not None
        )

    async def set_outcome(self, approval_id: uuid.UUID, outcome: str) -> Approval | None:
        """Replace the outcome text of a finished request (the sweep's advice)."""
        return await self._one(
            "UPDATE forge.approvals SET outcome = $2 WHERE id = $1 RETURNING *",
            approval_id,
            outcome[:2000],
        )

    async def decline(self, approval_id: uuid.UUID, user_id: str, status: str) -> Approval | None:
        """pending → denied (by another) or cancelled (by the requester); None if not pending."""
        return await self._one(
            """UPDATE forge.approvals SET status = $3, decided_by = $2, decided_at = now()
                WHERE id = $1 AND status = 'pending' RETURNING *""",
            approval_id,
            user_id,
            status,
        )

    async def finish(self, approval_id: uuid.UUID, status: str, outcome: str) -> Approval | None:
        """executing → succeeded, failed, stale or outcome_unknown."""
        return await self._one(
            """UPDATE forge.approvals SET status = $2, outcome = $3, finished_at = now()
                WHERE id = $1 AND status = 'executing' RETURNING *""",
            approval_id,
            status,
            outcome[:2000],
        )

    async def expire_due(self) -> list[Approval]:
        """Pending past expiry → expired; executing past their lease → outcome_unknown."""
        pool = await self._store.pool()
        rows = await call(
            "state store",
            pool.fetch(
                """UPDATE forge.approvals
                  SET status = CASE WHEN status = 'pending' THEN 'expired'
                                    ELSE 'outcome_unknown' END,
                      outcome = CASE WHEN status = 'pending' THEN outcome
                                     ELSE 'forge stopped while this was running; '
                                          'check the target before retrying'
                                END,
                      finished_at = now()
                WHERE (status = 'pending' AND expires_at <= now())
                   OR (status = 'executing' AND lease_until <= now())
            RETURNING *"""
            ),
            self._timeout,
        )
        return [a for a in map(_row, rows) if a]

    async def pending(self, limit: int = 50) -> list[Approval]:
        """Requests still awaiting a decision, oldest first."""
        return await self._many(
            "SELECT * FROM forge.approvals WHERE status = 'pending' AND expires_at > now() "
            "ORDER BY created_at LIMIT $1",
            limit,
        )

    async def unknown(self, since: timedelta, limit: int = 20) -> list[Approval]:
        """Executions whose outcome is unknown, finished within `since`, newest first."""
        return await self._many(
            "SELECT * FROM forge.approvals WHERE status = 'outcome_unknown' "
            "AND finished_at > now() - $1::interval ORDER BY finished_at DESC LIMIT $2",
            since,
            limit,
        )

    async def _many(self, sql: str, *args: Any) -> list[Approval]:
        pool = await self._store.pool()
        rows = await call("state store", pool.fetch(sql, *args), self._timeout)
        return [a for a in map(_row, rows) if a]

"""Scheduled reports in the state store: add, list, remove, and the one-statement slot claims."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from bot.backends.clients import call
from bot.schedules.slots import When
from bot.state.store import StateStore

COLUMNS = (
    "id, command, every_seconds, at_time, days, channel_id, on_change, creator_id, created_at, "
    "paused_at, paused_reason, last_slot, last_status, last_run_at, run_requested_at, "
    "run_requested_by"
)


@dataclass(frozen=True)
class Schedule:
    """One scheduled report as stored."""

    id: int
    command: str
    every_seconds: int | None
    at_time: time | None
    days: list[int]
    channel_id: str
    on_change: bool
    creator_id: str
    created_at: datetime
    paused_at: datetime | None = None
    paused_reason: str | None = None
    last_slot: datetime | None = None
    last_status: str | None = None
    last_run_at: datetime | None = None
    run_requested_at: datetime | None = None
    run_requested_by: str | None = None

    @property
    def when(self) -> When:
        """The schedule's clock."""
        return When(self.created_at, self.every_seconds, self.at_time, tuple(self.days))


@dataclass(frozen=True)
class NewSchedule:
    """What `schedule add` stores."""

    command: str
    every_seconds: int | None
    at_time: time | None
    days: tuple[int, ...]
    channel_id: str
    on_change: bool
    creator_id: str


class ScheduleStore:
    """forge.schedules, each statement within the backend timeout."""

    def __init__(self, store: StateStore, timeout: float) -> None:
        self._store = store
        self._timeout = timeout

    async def _run(self, method: str, sql: str, *args: Any) -> Any:
        pool = await self._store.pool()
        return await call("state store", getattr(pool, method)(sql, *args), self._timeout)

    async def add(self, new: NewSchedule, now: datetime) -> int:
        """Store a schedule; its id."""
        return await self._run(
            "fetchval",
            "INSERT INTO forge.schedules (command, every_seconds, at_time, days, channel_id, "
            "on_change, creator_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
            "RETURNING id",
            new.command,
            new.every_seconds,
            new.at_time,
            list(new.days),
            new.channel_id,
            new.on_change,
            new.creator_id,
            now,
        )

    async def all(self) -> list[Schedule]:
        """Every schedule, oldest first."""
        rows = await self._run("fetch", f"SELECT {COLUMNS} FROM forge.schedules ORDER BY id")
        return [Schedule(**dict(r)) for r in rows]

    async def get(self, schedule_id: int) -> Schedule | None:
        """One schedule, if it exists."""
        row = await self._run(
            "fetchrow", f"SELECT {COLUMNS} FROM forge.schedules WHERE id = $1", schedule_id
        )
        return Schedule(**dict(row)) if row else None

    async def remove(self, schedule_id: int) -> bool:
        """Delete a schedule; False when there was none."""
        done = await self._run("execute", "DELETE FROM forge.schedules WHERE id = $1", schedule_id)
        return done.endswith(" 1")

    async def request_run(self, schedule_id: int, actor_id: str, now: datetime) -> bool:
        """Ask the scheduler to run it at its next look; False when there is no such schedule."""
        return bool(
            await self._run(
                "fetchval",
                "UPDATE forge.schedules SET run_requested_at = $2, run_requested_by = $3 "
                "WHERE id = $1 RETURNING true",
                schedule_id,
                now,
                actor_id,
            )
        )

    async def claim_slot(self, schedule_id: int, slot: datetime) -> datetime | None:
        """Take a slot, in one statement: the slot it replaces for the one process that did
        (`slot` itself when there was none), None for every other."""
        return await self._run(
            "fetchval",
            "UPDATE forge.schedules s SET last_slot = $2 FROM forge.schedules old "
            "WHERE s.id = $1 AND old.id = s.id AND s.paused_at IS NULL "
            "AND (s.last_slot IS NULL OR s.last_slot < $2) "
            "RETURNING coalesce(old.last_slot, $2::timestamptz)",
            schedule_id,
            slot,
        )

    async def claim_request(self, schedule_id: int) -> str | None:
        """Take a `schedule run` request, in one statement: who asked, for the one that did."""
        return await self._run(
            "fetchval",
            "UPDATE forge.schedules s SET run_requested_at = NULL, run_requested_by = NULL "
            "FROM forge.schedules old WHERE s.id = $1 AND old.id = s.id "
            "AND s.run_requested_at IS NOT NULL RETURNING old.run_requested_by",
            schedule_id,
        )

    async def ran(self, schedule_id: int, status: str, now: datetime) -> str | None:
        """Note a run's status; the status of the run before it."""
        return await self._run(
            "fetchval",
            "UPDATE forge.schedules s SET last_status = $2, last_run_at = $3 "
            "FROM forge.schedules old WHERE s.id = $1 AND old.id = s.id "
            "RETURNING old.last_status",
            schedule_id,
            status,
            now,
        )

    async def pause(self, schedule_id: int, reason: str, now: datetime) -> bool:
        """Pause a schedule; True for the one process that did."""
        return bool(
            await self._run(
                "fetchval",
                "UPDATE forge.schedules SET paused_at = $3, paused_reason = $2 "
                "WHERE id = $1 AND paused_at IS NULL RETURNING true",
                schedule_id,
                reason,
                now,
            )
        )

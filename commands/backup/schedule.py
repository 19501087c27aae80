"""The nightly backup's schedule in the state store: the time, the slot claim, and missed runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from bot.backends.clients import call
from bot.core.result import Status
from bot.text.cells import Code, Text, rich

SCHEDULE_LOCK = 7_466_847_006
MISSED_AFTER = timedelta(hours=26)


@dataclass(frozen=True)
class Schedule:
    """The stored schedule: the daily UTC time (None: off) and what was last run or reported."""

    at_time: time | None = None
    enabled_at: datetime | None = None
    last_slot: datetime | None = None
    missed_reported_at: datetime | None = None


def latest_slot(now: datetime, at: time) -> datetime:
    """The most recent scheduled moment at or before now."""
    slot = datetime.combine(now.date(), at, UTC)
    return slot if slot <= now else slot - timedelta(days=1)


async def load(pool: Any, timeout: float) -> Schedule:
    """The schedule, off when never set."""
    row = await call(
        "state store",
        pool.fetchrow(
            "SELECT at_time, enabled_at, last_slot, missed_reported_at "
            "FROM forge.backup_schedule WHERE id = 1"
        ),
        timeout,
    )
    return Schedule(**dict(row)) if row else Schedule()


async def save(pool: Any, timeout: float, at: time | None, actor_id: str, now: datetime) -> None:
    """Set or clear the time; the slot already past today is not run late."""
    slot = latest_slot(now, at) if at else None
    await call(
        "state store",
        pool.execute(
            "INSERT INTO forge.backup_schedule (id, at_time, enabled_at, updated_by, last_slot) "
            "VALUES (1, $1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET at_time = $1, "
            "enabled_at = $2, updated_by = $3, last_slot = $4, missed_reported_at = NULL",
            at,
            now if at else None,
            actor_id,
            slot,
        ),
        timeout,
    )


def missed(schedule: Schedule, newest: datetime | None, now: datetime) -> bool:
    """Scheduled for over 26 h, yet no backup in the last 26 h."""
    if (
        schedule.at_time is None
        or schedule.enabled_at is None
        or now - schedule.enabled_at < MISSED_AFTER
    ):
        return False
    return newest is None or now - newest > MISSED_AFTER


def describe(schedule: Schedule, newest: Any, now: datetime) -> tuple[Status, Text]:
    """The schedule in one sentence, and whether a run was missed."""
    if schedule.at_time is None:
        return Status.WARNING, rich(
            "No nightly backup is scheduled (", Code("backup schedule 02:00"), " sets one)."
        )
    upcoming = latest_slot(now, schedule.at_time) + timedelta(days=1)
    text = (
        f"Nightly backup at {schedule.at_time:%H:%M} UTC; next run {upcoming:%Y-%m-%d %H:%M} UTC."
    )
    when = newest.created_at if newest is not None else None
    if missed(schedule, when, now):
        last = f"the newest is from {when:%Y-%m-%d %H:%M} UTC" if when else "there is none"
        return Status.CRITICAL, f"{text} 🔴 Missed: no backup in the last 26 h ({last})."
    return Status.OK, text


async def claim_slot(pool: Any, slot: datetime, timeout: float) -> bool:
    """Under the schedule's advisory lock, mark the slot taken; True for the process that did."""
    async with pool.acquire() as conn, conn.transaction():
        if not await call(
            "state store",
            conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", SCHEDULE_LOCK),
            timeout,
        ):
            return False
        return bool(
            await call(
                "state store",
                conn.fetchval(
                    "UPDATE forge.backup_schedule SET last_slot = $1 "
                    "WHERE id = 1 AND at_time IS NOT NULL "
                    "AND (last_slot IS NULL OR last_slot < $1) RETURNING true",
                    slot,
                ),
                timeout,
            )
        )


async def claim_missed(pool: Any, now: datetime, timeout: float) -> bool:
    """Mark the miss reported, once per gap: again only after a newer backup."""
    return bool(
        await call(
            "state store",
            pool.fetchval(
                "UPDATE forge.backup_schedule SET missed_reported_at = $1 "
                "WHERE id = 1 AND (missed_reported_at IS NULL OR missed_reported_at <= "
                "(SELECT coalesce(max(created_at), '-infinity') FROM forge.backups)) "
                "RETURNING true",
                now,
            ),
            timeout,
        )
    )

"""The nightly backup: one forge process of many runs each scheduled slot, posts the outcome, reports misses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from bot.backends import call
from bot.context import Actor
from bot.dispatch import Invocation, Outcome
from bot.loops import forever
from bot.registry import Role
from bot.render import Message, Meta, escape, to_message
from bot.result import Status

if TYPE_CHECKING:
    from bot.core import Forge
    from bot.slack_out import Outbox

log = structlog.get_logger(__name__)
SCHEDULE_LOCK = 7_466_847_006
SCHEDULER_ID = "forge-scheduler"
MISSED_AFTER = timedelta(hours=26)
GRACE = timedelta(hours=1)
TICK_SECONDS = 30.0


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
    row = await call("state store", pool.fetchrow(
        "SELECT at_time, enabled_at, last_slot, missed_reported_at FROM forge.backup_schedule WHERE id = 1"), timeout)
    return Schedule(**dict(row)) if row else Schedule()


async def save(pool: Any, timeout: float, at: time | None, actor_id: str, now: datetime) -> None:
    """Set or clear the time; the slot already past today is not run late."""
    slot = latest_slot(now, at) if at else None
    await call("state store", pool.execute(
        "INSERT INTO forge.backup_schedule (id, at_time, enabled_at, updated_by, last_slot) "
        "VALUES (1, $1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET at_time = $1, enabled_at = $2, updated_by = $3, "
        "last_slot = $4, missed_reported_at = NULL", at, now if at else None, actor_id, slot), timeout)


def missed(schedule: Schedule, newest: datetime | None, now: datetime) -> bool:
    """Scheduled for over 26 h, yet no backup in the last 26 h."""
    if schedule.at_time is None or schedule.enabled_at is None or now - schedule.enabled_at < MISSED_AFTER:
        return False
    return newest is None or now - newest > MISSED_AFTER


def describe(schedule: Schedule, newest: Any, now: datetime) -> tuple[Status, str]:
    """The schedule in one sentence, and whether a run was missed."""
    if schedule.at_time is None:
        return Status.WARNING, "No nightly backup is scheduled (`backup schedule 02:00` sets one)."
    upcoming = latest_slot(now, schedule.at_time) + timedelta(days=1)
    text = f"Nightly backup at {schedule.at_time:%H:%M} UTC; next run {upcoming:%Y-%m-%d %H:%M} UTC."
    when = newest.created_at if newest is not None else None
    if missed(schedule, when, now):
        last = f"the newest is from {when:%Y-%m-%d %H:%M} UTC" if when else "there is none"
        return Status.CRITICAL, f"{text} 🔴 Missed: no backup in the last 26 h ({last})."
    return Status.OK, text


async def _claim_slot(pool: Any, slot: datetime, timeout: float) -> bool:
    """Under the schedule's advisory lock, mark the slot taken; True for the one process that did."""
    async with pool.acquire() as conn, conn.transaction():
        if not await call("state store", conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", SCHEDULE_LOCK),
                          timeout):
            return False
        return bool(await call("state store", conn.fetchval(
            "UPDATE forge.backup_schedule SET last_slot = $1 WHERE id = 1 AND at_time IS NOT NULL "
            "AND (last_slot IS NULL OR last_slot < $1) RETURNING true", slot), timeout))


async def _claim_missed(pool: Any, now: datetime, timeout: float) -> bool:
    """Mark the miss reported, once per gap: again only after a newer backup."""
    return bool(await call("state store", pool.fetchval(
        "UPDATE forge.backup_schedule SET missed_reported_at = $1 WHERE id = 1 AND (missed_reported_at IS NULL OR "
        "missed_reported_at <= (SELECT coalesce(max(created_at), '-infinity') FROM forge.backups)) RETURNING true",
        now), timeout))


class BackupScheduler:
    """Runs `backup create` at the scheduled time through the dispatcher (audited), posts to the alerts channel."""

    def __init__(self, forge: Forge, outbox: Outbox | None) -> None:
        self.forge = forge
        self.outbox = outbox
        self.timeout = forge.settings.config.timeouts.backend

    async def tick(self) -> list[str]:
        """One look at the clock: run the due slot (if this process claims it), report a miss; what it did."""
        pool = await self.forge.store.pool()
        schedule, now, done = await load(pool, self.timeout), self.forge.clock.now(), []
        if schedule.at_time is None:
            return done
        slot = latest_slot(now, schedule.at_time)
        if now - slot < GRACE and await _claim_slot(pool, slot, self.timeout):
            await self._post(await self._run(), "Nightly backup")
            done.append("ran")
        newest = await call("state store", pool.fetchval("SELECT max(created_at) FROM forge.backups"), self.timeout)
        if missed(schedule, newest, now) and await _claim_missed(pool, now, self.timeout):
            last = f"the newest is from {newest:%Y-%m-%d %H:%M} UTC" if newest else "there is none"
            await self._say(f"🔴 Missed nightly backup: none in the last 26 h ({last}) although one is scheduled "
                            f"at {schedule.at_time:%H:%M} UTC. Run `backup create` and check the forge logs.")
            done.append("missed")
        return done

    async def _run(self) -> Outcome:
        alerts = self.forge.settings.config.channels.alerts
        inv = Invocation("backup create", SCHEDULER_ID, alerts, source="schedule", event="schedule")
        return await self.forge.dispatcher.run(inv, actor=Actor(SCHEDULER_ID, Role.ADMIN, source="schedule"))

    async def _post(self, outcome: Outcome, what: str) -> None:
        if outcome.result is None:
            await self._say(f"🔴 {what} failed: {outcome.message}")
            return
        meta = Meta(SCHEDULER_ID, self.forge.clock.now(), 0, self.forge.settings.environment)
        await self._send(to_message(outcome, meta))

    async def _say(self, text: str) -> None:
        await self._send(Message(text, [{"type": "section", "text": {"type": "mrkdwn", "text": escape(text)}}]))

    async def _send(self, message: Message) -> None:
        channel = self.forge.settings.config.channels.alerts
        log.info("backup_schedule_report", text=message.text[:200], channel=channel)
        if channel and self.outbox is not None:
            await self.outbox.post(channel, message)

    async def run_forever(self, every: float = TICK_SECONDS) -> None:
        """Tick until cancelled; a failing tick is logged and the next one tries again."""
        await forever("backup_schedule", self.tick, every)

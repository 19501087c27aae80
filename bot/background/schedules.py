"""Scheduled reports: each due slot claimed by one process, run as its creator, posted or not."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from bot.core.dispatch import Invocation, Outcome
from bot.log import get_logger
from bot.schedules.store import Schedule, ScheduleStore
from bot.slack.render import Message, Meta, context, message, section, to_message
from bot.text.cells import Code, Text, User, plain, rich

if TYPE_CHECKING:
    from bot.core.forge import Forge
    from bot.slack.outbox import Outbox

log = get_logger(__name__)
TICK_SECONDS = 15.0
PAUSES = ("denied", "approval", "usage", "unknown")


class ReportScheduler:
    """Runs due schedules through the dispatcher, as their creators, and posts to their channels."""

    def __init__(self, forge: Forge, outbox: Outbox | None) -> None:
        self.forge = forge
        self.outbox = outbox
        self.schedules = ScheduleStore(forge.store, forge.settings.config.timeouts.backend)

    async def tick(self) -> list[str]:
        """One look at the clock: what this process ran, reported missed, paused or kept quiet."""
        now, done = self.forge.clock.now(), []
        for schedule in await self.schedules.all():
            if schedule.paused_at is None:
                done += await self._due(schedule, now)
            if schedule.run_requested_at is not None:
                asked_by = await self.schedules.claim_request(schedule.id)
                if asked_by is not None:
                    done += await self.run(schedule, now, asked=True)
        return done

    async def _due(self, schedule: Schedule, now: datetime) -> list[str]:
        """Claim the latest slot if nobody has; run it unless it is too late, reporting misses."""
        when = schedule.when
        slot = when.latest(now)
        if slot is None or (schedule.last_slot is not None and slot <= schedule.last_slot):
            return []
        previous = await self.schedules.claim_slot(schedule.id, slot)
        if previous is None:
            return []
        late = now - slot > when.grace
        skipped = when.between(previous, slot) if previous < slot else 0
        missed = skipped + (1 if late else 0)
        if missed:
            await self._say(schedule, _missed(schedule, missed, slot, late))
        if late:
            return [f"missed {schedule.id}"]
        return await self.run(schedule, now)

    async def run(self, schedule: Schedule, now: datetime, asked: bool = False) -> list[str]:
        """Run the command as its creator, whose role is resolved now; pause when refused."""
        dispatcher = self.forge.dispatcher
        actor = await dispatcher.actor(schedule.creator_id, "schedule")
        invocation = Invocation(
            schedule.command,
            schedule.creator_id,
            schedule.channel_id,
            source="schedule",
            event="schedule",
        )
        outcome = await dispatcher.run(invocation, actor=actor)
        if outcome.kind in PAUSES:
            held = f"the {actor.role.label} role" if actor.role else "no role"
            return await self._pause(
                schedule, rich(f", who has {held} now: ", outcome.message), now
            )
        status = outcome.result.status.value if outcome.result else "failed"
        before = await self.schedules.ran(schedule.id, status, now)
        if schedule.on_change and not asked and before == status:
            return [f"unchanged {schedule.id}"]
        await self._post(schedule, outcome, now)
        return [f"ran {schedule.id}"]

    async def _pause(self, schedule: Schedule, why: Text, now: datetime) -> list[str]:
        """Pause once (the process that did says so in the channel)."""
        if not await self.schedules.pause(schedule.id, plain(why).lstrip(", ")[:500], now):
            return []
        await self._say(
            schedule,
            rich(
                f"⏸️ Schedule #{schedule.id} (",
                Code(schedule.command),
                ") is paused: it runs as ",
                User(schedule.creator_id),
                why,
                " Add it again once that is put right.",
            ),
        )
        return [f"paused {schedule.id}"]

    async def _post(self, schedule: Schedule, outcome: Outcome, now: datetime) -> None:
        if outcome.result is None:
            line = rich(f"🔴 Schedule #{schedule.id} (", Code(schedule.command), ") failed: ")
            await self._say(schedule, rich(line, outcome.message))
            return
        meta = Meta(schedule.creator_id, now, 0, self.forge.settings.environment)
        shown = to_message(outcome, meta)
        note = context(f"Schedule #{schedule.id} · {schedule.when.describe()}")
        shown.blocks.insert(2, note)
        await self._send(schedule, shown)

    async def _say(self, schedule: Schedule, text: Text) -> None:
        await self._send(schedule, message(text, [section(text)]))

    async def _send(self, schedule: Schedule, shown: Message) -> None:
        log.info("schedule_report", schedule=schedule.id, text=shown.text[:200])
        if self.outbox is not None:
            await self.outbox.post(schedule.channel_id, shown)


def _missed(schedule: Schedule, count: int, slot: datetime, late: bool) -> Text:
    """What was missed, said once by the process that noticed."""
    runs = f"{count} run{'s' if count != 1 else ''}"
    tail = " (the latest came too late to run)" if late else ""
    return rich(
        f"🔴 Schedule #{schedule.id} (",
        Code(schedule.command),
        f") missed {runs} up to {slot:%Y-%m-%d %H:%M} UTC{tail}: no forge process was "
        "running to take them. The next runs as scheduled.",
    )

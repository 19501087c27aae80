"""The nightly backup: one of many processes runs each slot, posts the outcome, reports misses."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from bot.backends.clients import call
from bot.background.loops import forever
from bot.core.context import Actor
from bot.core.dispatch import Invocation, Outcome
from bot.core.registry import Role
from bot.log import get_logger
from bot.slack.render import Message, Meta, message, section, to_message
from bot.text.cells import Code, Text, rich
from commands.backup.schedule import claim_missed, claim_slot, latest_slot, load, missed

if TYPE_CHECKING:
    from bot.core.forge import Forge
    from bot.slack.outbox import Outbox

log = get_logger(__name__)
SCHEDULER_ID = "forge-scheduler"
GRACE = timedelta(hours=1)
TICK_SECONDS = 30.0


class BackupScheduler:
    """Runs `backup create` on schedule via the audited dispatcher, posts to the alerts channel."""

    def __init__(self, forge: Forge, outbox: Outbox | None) -> None:
        self.forge = forge
        self.outbox = outbox
        self.timeout = forge.settings.config.timeouts.backend

    async def tick(self) -> list[str]:
        """One look at the clock: run the due slot (if claimed here), report a miss; what it did."""
        pool = await self.forge.store.pool()
        schedule, now = await load(pool, self.timeout), self.forge.clock.now()
        done: list[str] = []
        if schedule.at_time is None:
            return done
        slot = latest_slot(now, schedule.at_time)
        if now - slot < GRACE and await claim_slot(pool, slot, self.timeout):
            await self._post(await self._run(), "Nightly backup")
            done.append("ran")
        newest = await call(
            "state store", pool.fetchval("SELECT max(created_at) FROM forge.backups"), self.timeout
        )
        if missed(schedule, newest, now) and await claim_missed(pool, now, self.timeout):
            last = f"the newest is from {newest:%Y-%m-%d %H:%M} UTC" if newest else "there is none"
            await self._say(
                rich(
                    f"🔴 Missed nightly backup: none in the last 26 h ({last}) "
                    f"although one is scheduled at {schedule.at_time:%H:%M} UTC. Run ",
                    Code("backup create"),
                    " and check the forge logs.",
                )
            )
            done.append("missed")
        return done

    async def _run(self) -> Outcome:
        alerts = self.forge.settings.config.channels.alerts
        inv = Invocation("backup create", SCHEDULER_ID, alerts, source="schedule", event="schedule")
        return await self.forge.dispatcher.run(
            inv, actor=Actor(SCHEDULER_ID, Role.ADMIN, source="schedule")
        )

    async def _post(self, outcome: Outcome, what: str) -> None:
        if outcome.result is None:
            await self._say(rich(f"🔴 {what} failed: ", outcome.message))
            return
        meta = Meta(SCHEDULER_ID, self.forge.clock.now(), 0, self.forge.settings.environment)
        await self._send(to_message(outcome, meta))

    async def _say(self, text: Text) -> None:
        await self._send(message(text, [section(text)]))

    async def _send(self, message: Message) -> None:
        channel = self.forge.settings.config.channels.alerts
        log.info("backup_schedule_report", text=message.text[:200], channel=channel)
        if channel and self.outbox is not None:
            await self.outbox.post(channel, message)

    async def run_forever(self, every: float = TICK_SECONDS) -> None:
        """Tick until cancelled; a failing tick is logged and the next one tries again."""
        await forever("backup_schedule", self.tick, every)

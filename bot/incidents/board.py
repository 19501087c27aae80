"""Incidents in Slack from the state store: card, checklist in thread, timeline posts, report."""

from __future__ import annotations

import re
import time
from typing import Any

from bot.background.loops import forever
from bot.core.result import Attachment
from bot.incidents.blocks import announcement, event_message, incident_card, item_message
from bot.incidents.report import report_markdown
from bot.incidents.store import IncidentStore
from bot.incidents.timeline import picture
from bot.log import get_logger
from bot.slack.outbox import Outbox

log = get_logger(__name__)
POLL, RETRY_AFTER = 0.5, 5.0
POSTED_EVENTS = ("update", "severity", "resolved")


class IncidentBoard:
    """One loop per process; incidents are claimed in the state store: replicas never post twice."""

    def __init__(self, forge: Any, outbox: Outbox) -> None:
        self.forge = forge
        self.outbox = outbox
        self.store: IncidentStore = forge.incidents
        self._retry_at: dict[int, float] = {}

    async def run_forever(self) -> None:
        """Render whatever changed, twice a second."""
        await forever("incident_board", self.render_once, POLL)

    async def render_once(self) -> int:
        """Bring every changed incident up to date in Slack; how many were."""
        shown = 0
        for row in await self.store.dirty():
            if self._retry_at.get(row["id"], 0) > time.monotonic():
                continue
            incident = await self.store.claim(row["id"])
            if incident is not None:
                shown += await self._render(incident)
        return shown

    async def _render(self, incident: Any) -> int:
        # an exception part-way leaves the version unrendered, so the next pass tries again
        ok = False
        try:
            incident = await self._home(incident)
            items = await self.store.items(incident["id"])
            events = await self.store.events(incident["id"])
            ok = await self._card(incident, items, events) and await self._items(incident, items)
            ok = ok and await self._events(incident, items, events)
        finally:
            await self.store.rendered(incident["id"], incident["version"], ok)
        if not ok:
            self._retry_at[incident["id"]] = time.monotonic() + RETRY_AFTER
        return int(ok)

    async def _home(self, incident: Any) -> Any:
        """Per `channel_per_incident`: own channel, declarer invited, announced where declared."""
        wanted = self.forge.settings.config.incidents.channel_per_incident
        if incident["own_channel"] or incident["card_ts"] or not wanted:
            return incident
        base = f"inc-{incident['id']}-" + re.sub(
            r"[^a-z0-9]+", "-", incident["title"].lower()
        ).strip("-")
        channel, error = await self.outbox.create_channel(base[:80].rstrip("-"))
        if channel is None and error == "name_taken":
            channel, error = await self.outbox.create_channel(
                f"{base[:70].rstrip('-')}-{int(time.time()) % 10000}"
            )
        if channel is None:
            log.warning("incident_channel_not_created", incident=incident["id"], error=error)
            return incident
        await self.outbox.invite(channel, [incident["commander"]])
        await self.outbox.post(incident["channel"], announcement(incident, channel))
        return await self.store.move(incident["id"], channel)

    async def _card(self, incident: Any, items: list[Any], events: list[Any]) -> bool:
        updates = [e for e in events if e["kind"] == "update"]
        message = incident_card(
            incident,
            items,
            updates[-1] if updates else None,
            self.forge.settings.environment,
            self.forge.clock.now(),
        )
        if incident["card_ts"]:
            return await self.outbox.update(incident["channel"], incident["card_ts"], message)
        ts, _ = await self.outbox.post(incident["channel"], message)
        if ts is None:
            return False
        await self.store.set_card(incident["id"], ts)
        return True

    async def _items(self, incident: Any, items: list[Any]) -> bool:
        current = await self.store.get(incident["id"])
        if current is None:
            return True
        registry = self.forge.dispatcher.registry
        for item in items:
            if item["message_ts"] and item["rendered"] >= item["version"]:
                continue
            message = item_message(current, item, registry)
            if item["message_ts"]:
                if not await self.outbox.update(current["channel"], item["message_ts"], message):
                    return False
                ts = item["message_ts"]
            else:
                ts, _ = await self.outbox.post(current["channel"], message, current["card_ts"])
                if ts is None:
                    return False
            await self.store.item_shown(incident["id"], item["position"], item["version"], ts)
        return True

    async def _events(self, incident: Any, items: list[Any], events: list[Any]) -> bool:
        current = await self.store.get(incident["id"])
        if current is None:
            return True
        for event in events:
            if event["shown"] or event["kind"] not in POSTED_EVENTS:
                continue
            ts, _ = await self.outbox.post(
                current["channel"], event_message(current, event), current["card_ts"]
            )
            if ts is None:
                return False
            if event["kind"] == "resolved":
                now = self.forge.clock.now()
                drawn = await picture(self.forge.store, current, events, now)
                report = await report_markdown(
                    self.forge.store, current, items, events, now, drawn.filename if drawn else None
                )
                if drawn is not None:
                    await self.outbox.upload(current["channel"], drawn, current["card_ts"])
                await self.outbox.upload(
                    current["channel"],
                    Attachment(
                        f"INC-{current['id']}-report.md",
                        report.encode(),
                        f"INC-{current['id']} report",
                    ),
                    current["card_ts"],
                )
            await self.store.event_shown(event["id"])
        return True

"""Alert cards in Slack: each changed card rendered once, paced per channel, retried until shown."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from typing import Any

from bot.alerts.blocks import CardView, alert_card, alert_list
from bot.alerts.graph import card_figure
from bot.alerts.store import AlertStore
from bot.background.loops import forever
from bot.core.errors import BackendError
from bot.core.result import Attachment
from bot.graphs.pool import GraphError, render
from bot.graphs.spec import Figure
from bot.log import get_logger
from bot.slack.outbox import Outbox
from bot.slack.render import Message

log = get_logger(__name__)
CLAIM_SECONDS, IDLE_POLL, RETRY_AFTER = 60.0, 2.0, 5.0
PICTURE_SECONDS = 15.0  # an edited card waits this long for its graph at most, then goes without


class AlertPublisher:
    """One loop per process; cards are claimed in the state store, so replicas never post twice."""

    def __init__(self, forge: Any, outbox: Outbox, store: AlertStore) -> None:
        self.forge = forge
        self.outbox = outbox
        self.store = store
        self._wake = asyncio.Event()
        self._next_send: dict[str, float] = defaultdict(float)
        self._retry_at: dict[int, float] = {}
        self._interval = 1.0 / forge.settings.config.alerts.messages_per_second

    def wake(self) -> None:
        """A notification arrived: look for changed cards now."""
        self._wake.set()

    async def run_forever(self) -> None:
        """Publish whenever woken, and every few seconds for cards other replicas changed."""
        await forever("alert_publish", self.publish_once, IDLE_POLL, self.until_woken)

    async def until_woken(self, seconds: float) -> None:
        """Wait for a notification, at most `seconds` (longer while the state store is down)."""
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except TimeoutError:
            pass
        self._wake.clear()

    async def publish_once(self) -> int:
        """Show every changed card once; the number shown."""
        now = time.monotonic()
        cards = [
            c
            for c in await self.store.dirty()
            if c["channel"] and self._retry_at.get(c["id"], 0) <= now
        ]
        by_channel: dict[str, list[Any]] = defaultdict(list)
        for card in cards:
            by_channel[card["channel"]].append(card)
        shown = await asyncio.gather(*(self._channel(cards) for cards in by_channel.values()))
        return sum(shown)

    async def _channel(self, cards: list[Any]) -> int:
        shown = 0
        for card in cards:
            claimed = await self.store.claim(card["id"], CLAIM_SECONDS)
            if claimed is not None:
                shown += await self._show(claimed)
        return shown

    async def _pace(self, channel: str) -> None:
        """About one message a second per channel, as Slack asks."""
        wait = self._next_send[channel] - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._next_send[channel] = time.monotonic() + self._interval

    async def _show(self, card: Any) -> int:
        alerts = await self.store.alerts_of(card["id"])
        if not alerts:
            await self.store.rendered(card["id"], card["version"], None, card["listed"])
            return 0
        view = CardView(card["id"], _mapping(card["common_labels"]), card["external_url"], alerts)
        config = self.forge.settings.config
        await self._pace(card["channel"])
        ts = card["ts"]
        if ts is None:
            ts, _ = await self.outbox.post(card["channel"], self._card(view, None))
            if ts is not None:
                await self.store.posted(card["id"], ts)
                await self._add_picture(card["channel"], ts, view)
        elif not await self.outbox.update(
            card["channel"], ts, self._card(view, await self._picture(view))
        ):
            ts = None
        if ts is None:
            self._retry_at[card["id"]] = time.monotonic() + RETRY_AFTER
            await self.store.release(card["id"])
            return 0
        self._retry_at.pop(card["id"], None)
        listed = card["listed"]
        if len(alerts) > config.alerts.listed_on_card and len(alerts) != listed:
            await self._pace(card["channel"])
            if await self.outbox.upload(card["channel"], alert_list(view), ts):
                listed = len(alerts)
        await self.store.rendered(card["id"], card["version"], ts, listed)
        return 1

    def _card(self, view: CardView, picture: tuple[str, str] | None) -> Message:
        return alert_card(
            view,
            environment=self.forge.settings.environment,
            config=self.forge.settings.config,
            registry=self.forge.dispatcher.registry,
            picture=picture,
        )

    async def _add_picture(self, channel: str, ts: str, view: CardView) -> None:
        """A new card goes out at once; its graph follows in an edit, still under the card's claim,
        so nothing newer is overwritten."""
        picture = await self._picture(view)
        if picture is not None:
            await self._pace(channel)
            if not await self.outbox.update(channel, ts, self._card(view, picture)):
                log.info("alert_graph_not_attached", card=view.card_id)

    async def _picture(self, view: CardView) -> tuple[str, str] | None:
        """The card's graph uploaded to Slack (file ID, title); None when there is none to draw."""
        config = self.forge.settings.config
        if not config.graphs.alert_cards:
            return None
        try:
            figure, png = await asyncio.wait_for(self._draw(view), PICTURE_SECONDS)
        except TimeoutError:
            log.info("alert_graph_skipped", card=view.card_id, reason="took too long")
            return None
        except (BackendError, GraphError) as exc:
            log.info("alert_graph_skipped", card=view.card_id, reason=str(exc))
            return None
        if figure is None or png is None:
            return None
        file_id = await self.outbox.upload_image(
            Attachment(f"alert-{view.card_id}.png", png, figure.title)
        )
        return (file_id, figure.title) if file_id else None

    async def _draw(self, view: CardView) -> tuple[Figure | None, bytes | None]:
        figure = await card_figure(
            self.forge.backends, self.forge.settings.config, view.alerts, view.common_labels
        )
        return figure, (await render(figure) if figure is not None else None)


def _mapping(value: Any) -> dict[str, str]:
    return json.loads(value) if isinstance(value, str) else dict(value or {})

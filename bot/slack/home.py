"""The Home tab in Slack: published on app_home_opened and again on changes, at most once per
user per THROTTLE seconds (a change inside the window is published at its end, not dropped)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import structlog

from bot.approvals.slack import ApprovalUI
from bot.core.audit import AuditEntry
from bot.core.errors import BackendError
from bot.core.forge import Forge
from bot.home.blocks import home_view
from bot.home.dashboard import gather
from bot.slack.outbox import Outbox

log = structlog.get_logger(__name__)
THROTTLE = 10.0
WATCH_FOR = 900.0  # a Home opened within a quarter of an hour is kept current
REFRESH_EVERY = 30.0
Track = Callable[[asyncio.Task[None]], None]


class HomeTabs:
    """Who looks at their Home tab, and one publishing task per user at a time."""

    def __init__(
        self,
        forge: Forge,
        outbox: Outbox,
        approvals: ApprovalUI,
        track: Track,
        every: float = THROTTLE,
    ) -> None:
        self.forge = forge
        self.outbox = outbox
        self.approvals = approvals
        self.track = track
        self.every = every
        self.viewers: dict[str, float] = {}
        self._published: dict[str, float] = {}
        self._digests: dict[str, str] = {}
        self._scheduled: set[str] = set()
        self._workspace: str | None = None

    async def opened(self, user: str) -> None:
        """app_home_opened: audited, shown fresh (throttled), and kept current for a while."""
        self.viewers[user] = time.monotonic()
        self._digests.pop(user, None)
        self.request(user)
        await self.forge.audit.try_record(AuditEntry("home_opened", user, "home", "ok"))

    async def tick(self) -> None:
        """The periodic look for changes nothing announced (queues, alerts, other replicas)."""
        self.changed()

    def changed(self) -> None:
        """Something a Home tab shows may have changed: refresh everyone watching."""
        now = time.monotonic()
        for user, since in list(self.viewers.items()):
            if now - since > WATCH_FOR:
                del self.viewers[user]
            else:
                self.request(user)

    def request(self, user: str) -> None:
        """Publish for `user` now, or at the end of their window; one pending publish at most."""
        if user in self._scheduled:
            return  # the pending publish reads everything afresh when it runs
        self._scheduled.add(user)
        wait = max(0.0, self._published.get(user, -self.every) + self.every - time.monotonic())
        self.track(asyncio.create_task(self._publish(user, wait)))

    async def _publish(self, user: str, wait: float) -> None:
        await asyncio.sleep(wait)
        self._scheduled.discard(user)  # a change from here on schedules the next publish
        if self._workspace is None:
            self._workspace = await self.outbox.workspace_url()
        board = await gather(self.forge, user)
        view = home_view(board, self.forge.settings.environment, self._workspace)
        digest = hashlib.sha256(json.dumps(view, sort_keys=True, default=str).encode()).hexdigest()
        if self._digests.get(user) == digest:
            return
        # a publish that started earlier may have gone out while this one read: keep the window
        await asyncio.sleep(self._published.get(user, -self.every) + self.every - time.monotonic())
        self._published[user] = time.monotonic()
        if await self.outbox.publish_home(user, view):
            self._digests[user] = digest

    async def approve(self, body: dict, value: str) -> None:
        """Approve on the Home tab: the card's own path, as if clicked on the card."""
        on_card = await self._on_card(body, value)
        await self.approvals.on_approve(on_card, value)
        self.changed()

    async def deny(self, body: dict, value: str) -> None:
        """Deny (or cancel) on the Home tab: the card's own path."""
        on_card = await self._on_card(body, value)
        await self.approvals.on_deny(on_card, value)
        self.changed()

    async def _on_card(self, body: dict, value: str) -> dict[str, Any]:
        """The click as the approval card's: its channel and message, so replies land there."""
        try:
            approval = await self.approvals.engine.approvals.get(uuid.UUID(value))
        except (ValueError, TypeError, BackendError):
            approval = None  # the card's path says why, as it does for the card
        if approval is None:
            return body
        container = {"channel_id": approval.channel_id, "message_ts": approval.message_ts}
        return {**body, "channel": {"id": approval.channel_id}, "container": container}

    async def refresh(self, user: str) -> None:
        """The Refresh button: publish anew (still throttled), even if nothing seems changed."""
        self._digests.pop(user, None)
        self.viewers[user] = time.monotonic()
        self.request(user)

"""The Home tab in Slack: published on app_home_opened and again on changes, at most once per
user per THROTTLE seconds across replicas (a change inside the window is published at its end,
not dropped)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Coroutine
from typing import Any

from bot.approvals.slack import ApprovalUI
from bot.background.loops import stop
from bot.background.tasks import observe
from bot.core.audit import AuditEntry
from bot.core.errors import BackendError
from bot.core.forge import Forge
from bot.home.blocks import home_view
from bot.home.dashboard import gather
from bot.home.store import HomeStore
from bot.log import get_logger
from bot.slack.outbox import Outbox

log = get_logger(__name__)
THROTTLE = 10.0
WATCH_FOR = 900.0  # a Home opened within a quarter of an hour is kept current
REFRESH_EVERY = 30.0
CLAIM_TRIES = 6


class HomeTabs:
    """Who watches their Home tab, and one publishing task per user at a time."""

    def __init__(
        self, forge: Forge, outbox: Outbox, approvals: ApprovalUI, every: float = THROTTLE
    ) -> None:
        self.forge = forge
        self.outbox = outbox
        self.approvals = approvals
        self.every = every
        self.store = HomeStore(forge.store, forge.settings.config.timeouts.backend)
        self.viewers: dict[str, float] = {}
        self._published: dict[str, float] = {}
        self._digests: dict[str, str] = {}
        self._scheduled: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._workspace: str | None = None

    async def opened(self, user: str) -> None:
        """app_home_opened: audited, shown fresh (throttled), and kept current for a while."""
        self.viewers[user] = time.monotonic()
        self._digests.pop(user, None)
        try:
            await self.store.opened(user)
        except BackendError as exc:
            log.info("home_watch_not_shared", error=str(exc))
        self.request(user)
        await self.forge.audit.try_record(AuditEntry("home_opened", user, "home", "ok"))

    async def tick(self) -> None:
        """The periodic look for changes nothing announced (queues, alerts, other replicas)."""
        await self._changed()

    def changed(self) -> None:
        """Something a Home tab shows may have changed: refresh everyone watching, anywhere."""
        self._spawn(self._changed())

    async def _changed(self) -> None:
        now = time.monotonic()
        for user, since in list(self.viewers.items()):
            if now - since > WATCH_FOR:
                del self.viewers[user]
        try:
            shared = await self.store.watchers(WATCH_FOR)
        except BackendError:
            shared = []
        for user in dict.fromkeys([*self.viewers, *shared]):
            self.request(user)

    def request(self, user: str) -> None:
        """Publish for `user` now, or at the end of their window; one pending publish at most."""
        if user in self._scheduled:
            return  # the pending publish reads everything afresh when it runs
        self._scheduled.add(user)
        wait = max(0.0, self._published.get(user, -self.every) + self.every - time.monotonic())
        self._spawn(self._publish(user, wait))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = observe(asyncio.create_task(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop pending publishes (shutting down: the next open or change publishes again)."""
        await stop(*self._tasks)

    async def _publish(self, user: str, wait: float) -> None:
        await asyncio.sleep(wait)
        self._scheduled.discard(user)  # a change from here on schedules the next publish
        if self._workspace is None:
            self._workspace = await self.outbox.workspace_url()
        board = await gather(self.forge, user)
        view = home_view(board, self.forge.settings.environment, self._workspace)
        digest = hashlib.sha256(json.dumps(view, sort_keys=True, default=str).encode()).hexdigest()
        if self._digests.get(user) == digest or not await self._slot(user):
            return
        if await self.outbox.publish_home(user, view):
            self._digests[user] = digest

    async def _slot(self, user: str) -> bool:
        """Wait for the user's window, shared by all replicas (this one's if the store is down)."""
        for _ in range(CLAIM_TRIES):
            try:
                wait = await self.store.claim(user, self.every)
            except BackendError:
                # a publish that started earlier here may have gone out while this one read
                wait = self._published.get(user, -self.every) + self.every - time.monotonic()
                await asyncio.sleep(wait)
                wait = 0.0
            if wait <= 0:
                self._published[user] = time.monotonic()
                return True
            await asyncio.sleep(wait)
        log.warning("home_publish_given_up", user=user)
        return False

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

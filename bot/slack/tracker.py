"""The Slack surface's acked work: journaled before the ack, drained or handed back on stop."""

from __future__ import annotations

import asyncio
import time

from bot.background.loops import stop
from bot.core.errors import BackendError
from bot.log import get_logger
from bot.state.inflight import Acked, Inflight

log = get_logger(__name__)
JOURNAL_TIMEOUT = 1.0


class Tracker:
    """Tasks started after acks; those not yet started are `queued` and may be handed back."""

    def __init__(self, inflight: Inflight) -> None:
        self.inflight = inflight
        self.tasks: set[asyncio.Task[None]] = set()
        self.queued: dict[str, asyncio.Task[None]] = {}
        self._unrecorded = False

    async def acked(self, work: Acked) -> None:
        """Journal work before its ack leaves; a state store that is down only costs the record."""
        try:
            await self.inflight.acked(work)
            self._unrecorded = False
        except BackendError as exc:
            if not self._unrecorded:
                log.warning("inflight_not_recorded", error=str(exc))
            self._unrecorded = True

    def track(self, task: asyncio.Task[None], request_id: str | None = None) -> None:
        """Keep a handle on the task until it ends; with a request id it is queued until started."""
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        if request_id is not None:
            self.queued[request_id] = task
            task.add_done_callback(lambda _: self.queued.pop(request_id, None))

    def started(self, request_id: str) -> None:
        """The work left the queue: from now on it is finished here, never handed back."""
        self.queued.pop(request_id, None)

    async def finished(self, request_id: str) -> None:
        """The work was answered: forget its record."""
        try:
            await self.inflight.done(request_id)
        except BackendError as exc:
            log.warning("inflight_not_cleared", error=str(exc), request_id=request_id)

    async def drain(self, timeout: float) -> list[str]:
        """Wait for the tasks; at the deadline hand back what never started and stop the rest."""
        deadline = time.monotonic() + timeout
        while self.tasks and (left := deadline - time.monotonic()) > 0:
            await asyncio.wait(set(self.tasks), timeout=left)
        handed = list(self.queued)
        if handed:
            await stop(*(self.queued.pop(r) for r in handed))
            try:
                await self.inflight.hand_back(handed)
                log.info("work_handed_back", count=len(handed))
            except BackendError as exc:
                log.warning("hand_back_failed", error=str(exc), count=len(handed))
        if self.tasks:
            log.warning("drain_deadline_passed", stopped=len(self.tasks))
            await stop(*self.tasks)
        return handed

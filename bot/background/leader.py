"""Background work on exactly one replica: the holder of the `background` lease runs every job.

Each replica beats its heartbeat and tries the lease every third of the lease's life. The holder
starts the jobs; a replica that loses the lease (or cannot renew it before its local deadline)
stops them, and each step checks the deadline first, so two replicas never act at once. A clean
stop releases the lease, so another replica takes over at its next try; a replica that dies holding
it is replaced once the lease expires: within lease_seconds plus a third of it.

A loop joins by becoming a `Job`: a `tick()` coroutine and its pause.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.background.lease import Lease, Presence
from bot.background.loops import forever, stop
from bot.core.errors import BackendError
from bot.log import get_logger

log = get_logger(__name__)
LEASE_NAME = "background"


@dataclass(frozen=True)
class Job:
    """One background loop: `tick`, then `wait(every)` (a sleep, unless something can wake it)."""

    name: str
    tick: Callable[[], Awaitable[object]]
    every: float
    wait: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep)


class Leader:
    """Runs the jobs while this replica holds the lease; the heartbeat runs on every replica."""

    def __init__(self, lease: Lease, presence: Presence, jobs: list[Job]) -> None:
        self.lease, self.presence, self.jobs = lease, presence, jobs
        self.renew_every = lease.ttl / 3
        self._tasks: list[asyncio.Task[None]] = []
        self._down = False

    @property
    def leading(self) -> bool:
        """True while this replica runs the background jobs."""
        return bool(self._tasks) and self.lease.held

    async def run_forever(self) -> None:
        """Try (or renew) the lease and follow the outcome, until cancelled."""
        while True:
            await self.step()
            await asyncio.sleep(self.renew_every)

    async def step(self) -> bool:
        """Beat, try the lease once, start or stop the jobs to match; True when leading."""
        try:
            await self.presence.beat()
            await self.lease.hold()
            self._down = False
        except BackendError as exc:
            if not self._down:
                log.warning("lease_unreachable", error=str(exc), lease=self.lease.name)
            self._down = True
        if self.lease.held and not self._tasks:
            log.info("leader_elected", replica=self.lease.holder, jobs=[j.name for j in self.jobs])
            self._tasks = [asyncio.create_task(self._loop(job)) for job in self.jobs]
        elif not self.lease.held and self._tasks:
            log.warning("leadership_lost", replica=self.lease.holder)
            await self._stop()
        return self.leading

    async def _loop(self, job: Job) -> None:
        async def guarded() -> object:
            return await job.tick() if self.lease.held else None

        await forever(job.name, guarded, job.every, job.wait)

    async def _stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        await stop(*tasks)

    async def close(self) -> None:
        """Stop the jobs, release the lease and leave, so another replica takes over at once."""
        await self._stop()
        with contextlib.suppress(BackendError):
            await self.lease.release()
        with contextlib.suppress(BackendError):
            await self.presence.leave()

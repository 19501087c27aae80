"""The demo's ClientForge, in a child process of the playground: `python -m bot.demo.child`.

It reads its spec (JSON) from FORGE_DEMO_SPEC and runs until SIGTERM, SIGINT, or its stdin closing
(the playground holds the other end, so the child ends with it even after a kill -9).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web
from bullmq import Queue, Worker

from bot.demo import alert, api, crm
from bot.demo.jobs import OUTAGE, SPECS, failure, job, options
from bot.demo.logfile import BackendLog
from bot.log import get_logger

log = get_logger(__name__)
DEAD = "forge-demo:dead:"  # jobs that used up their attempts; resent, they now succeed
TICK = 0.5


@dataclass(frozen=True)
class Spec:
    """What the playground tells the child."""

    redis_url: str
    crm_dsn: str
    logs: str
    queues: list[str]
    jobs_per_second: float
    backoff_scale: float
    threshold: int
    webhook: str
    token: str
    api_port: int
    direct_alerts: bool  # False: the demo's Prometheus and Alertmanager page forge instead


class Demo:
    """The workers, the producer, the alert watcher, the log and the CRM's queries."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.redis = aioredis.from_url(spec.redis_url, socket_timeout=5)
        self.queues = {q: Queue(q, {"connection": spec.redis_url}) for q in self._known()}
        self.log = BackendLog(Path(spec.logs) / "backend.log")
        self.workers: list[Worker] = []
        self.credit: dict[str, float] = {}
        self.added = 0
        self.crm: asyncpg.Connection | None = None
        self.probe_db: asyncpg.Connection | None = None
        self.probe_lock = asyncio.Lock()

    def _known(self) -> list[str]:
        return [q for q in self.spec.queues if q in SPECS]

    def start_workers(self) -> None:
        """One bullmq Worker per queue, with ClientForge's concurrency."""
        for q in self._known():
            self.workers.append(
                Worker(
                    q,
                    self._processor(q),
                    {"connection": self.spec.redis_url, "concurrency": SPECS[q].concurrency},
                )
            )

    def _processor(self, q: str) -> Any:
        async def process(job: Any, _token: str) -> dict[str, Any]:
            await asyncio.sleep(SPECS[q].work_seconds)
            if await self.redis.srem(DEAD + q, job.id):
                self.log.line("info", f"[{q}-worker] job {job.id} resent from the DLQ: delivered")
                return {"resent": True}
            reason = failure(q, job.name, job.data or {}, bool(await self.redis.exists(OUTAGE)))
            if reason is None:
                return {"ok": True}
            if job.attemptsMade + 1 >= int(job.opts.get("attempts", 1)):
                await self.redis.sadd(DEAD + q, job.id)
            self.log.line("error", f"[{q}-worker] job {job.id} ({job.name}) failed: {reason}")
            raise RuntimeError(reason)

        return process

    async def produce(self, _: int) -> None:
        """Half a second of jobs at the demo's rate, spread over the queues by their share."""
        total = sum(SPECS[q].share for q in self._known())
        for q in self._known():
            self.credit[q] = self.credit.get(q, 0.0) + SPECS[q].share / total * self.rate
            while self.credit[q] >= 1:
                self.credit[q] -= 1
                await self._add(q)

    @property
    def rate(self) -> float:
        """Jobs per tick (ticks are half a second)."""
        return self.spec.jobs_per_second * TICK

    async def _add(self, q: str) -> None:
        if q == "data-sync" and await self.redis.llen("bull:data-sync:wait") > 200:
            return
        self.added += 1
        name, data = job(q, self.added)
        await self.queues[q].add(name, data, options(SPECS[q], self.spec.backoff_scale))

    async def watch_dlq(self, _: int) -> None:
        """Fire QueueDLQJobsPresent when the email DLQ passes the threshold; resolve at zero."""
        count = await self.redis.zcard("bull:email:failed")
        kind, started, fired = alert.read_state(await self.redis.get(alert.STATE))
        if not kind and count >= self.spec.threshold:
            await self._notify(count, alert.now_stamp(), "firing")
        elif kind == "firing" and count == 0:
            # Alertmanager resolves with the annotations of the last firing evaluation
            await self._notify(fired, started, "resolved")

    async def _notify(self, count: int, started: str, kind: str) -> None:
        payload = alert.notification(count, started, resolved=kind == "resolved")
        if not self.spec.direct_alerts or await alert.send(
            self.spec.webhook, self.spec.token, payload
        ):
            await self.redis.set(alert.STATE, alert.write_state(kind, started, count))
            if kind == "firing":
                await self.redis.delete(OUTAGE)  # the relay recovers as the page is paged
            self.log.line("warn", f"[alertmanager] QueueDLQJobsPresent {kind} (email DLQ)")

    async def query_crm(self, n: int) -> None:
        """The CRM's own statements, for db indexes, slow and top."""
        if self.crm is None:
            self.crm = await asyncpg.connect(self.spec.crm_dsn, timeout=5)
        await crm.run_statements(self.crm, n)

    async def write_log(self, n: int) -> None:
        """backend.log grows with the API's lines, now and then one carrying a secret."""
        if n % 2 == 0:
            self.log.api_line(n // 2)

    async def forever(self, step: Callable[[int], Awaitable[None]]) -> None:
        """A step every tick; a failing step is logged and tried again next tick."""
        for n in itertools.count():
            try:
                await step(n)
            except (OSError, TimeoutError, aioredis.RedisError, asyncpg.PostgresError) as exc:
                log.warning("demo_step_failed", step=step.__name__, error=type(exc).__name__)
                self.crm = None if step == self.query_crm else self.crm
            await asyncio.sleep(TICK)

    async def serve_api(self) -> web.AppRunner:
        """ClientForge's health routes on 127.0.0.1:api_port."""
        runner = web.AppRunner(api.app(self._postgres_up, self._redis_up), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.spec.api_port).start()
        return runner

    async def _postgres_up(self) -> bool:
        """SELECT 1 on a connection kept for readiness (a new one per probe is slow in load)."""
        async with self.probe_lock:
            try:
                if self.probe_db is None or self.probe_db.is_closed():
                    self.probe_db = await asyncpg.connect(self.spec.crm_dsn, timeout=2)
                await self.probe_db.fetchval("SELECT 1", timeout=2)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                self.probe_db = None
                return False
            return True

    async def _redis_up(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except (OSError, aioredis.RedisError):
            return False

    async def close(self) -> None:
        """Workers and connections closed."""
        for worker in self.workers:
            with contextlib.suppress(Exception):
                await worker.close(force=True)
        for queue in self.queues.values():
            with contextlib.suppress(Exception):
                await queue.close()
        await self.redis.aclose()
        for db in (self.crm, self.probe_db):
            if db is not None:
                await db.close(timeout=2)


def _on_stdin_closed(stop: asyncio.Event) -> None:
    """Set `stop` when the playground's end of stdin closes (the playground is gone)."""
    loop, fd = asyncio.get_running_loop(), sys.stdin.fileno()

    def readable() -> None:
        if not os.read(fd, 4096):
            loop.remove_reader(fd)
            stop.set()

    loop.add_reader(fd, readable)


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when the playground dies, even by SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


async def main() -> int:
    """Run the demo until told to stop."""
    spec = Spec(**json.loads(os.environ["FORGE_DEMO_SPEC"]))
    demo = Demo(spec)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    _on_stdin_closed(stop)
    runner = await demo.serve_api()
    demo.start_workers()
    steps = (demo.produce, demo.watch_dlq, demo.query_crm, demo.write_log)
    tasks = [asyncio.create_task(demo.forever(step)) for step in steps]
    await stop.wait()
    for task in tasks:
        task.cancel()
    await runner.cleanup()
    await demo.close()
    return 0


if __name__ == "__main__":
    _die_with_parent()
    sys.exit(asyncio.run(main()))

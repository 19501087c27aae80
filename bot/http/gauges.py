"""Queue gauges for ClientForge's alert rules (`crm_queue_*`), read from Redis on scrape, cached."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import CollectorRegistry, Gauge

from bot.core.context import Actor
from bot.core.dispatch import Invocation
from bot.core.errors import BackendError
from bot.core.forge import Forge
from bot.core.registry import Role
from bot.log import get_logger
from commands.queues import discover, samples, snapshot

log = get_logger(__name__)
REGISTRY = CollectorRegistry()
_LABEL = ["queue"]
WAITING = Gauge(
    "crm_queue_waiting", "Jobs waiting (wait and paused lists).", _LABEL, registry=REGISTRY
)
ACTIVE = Gauge("crm_queue_active", "Jobs being processed.", _LABEL, registry=REGISTRY)
DELAYED = Gauge("crm_queue_delayed", "Jobs delayed.", _LABEL, registry=REGISTRY)
PRIORITIZED = Gauge(
    "crm_queue_prioritized", "Jobs waiting by priority (BullMQ 4+).", _LABEL, registry=REGISTRY
)
PAUSED = Gauge("crm_queue_paused", "1 when the queue is paused.", _LABEL, registry=REGISTRY)
LAG = Gauge("crm_queue_lag_seconds", "Age of the oldest waiting job.", _LABEL, registry=REGISTRY)
DLQ = Gauge(
    "crm_queue_jobs_dlq_total",
    "Failed jobs that used every attempt (a gauge, so alerts clear after cleanup).",
    _LABEL,
    registry=REGISTRY,
)
FAILED = Gauge("crm_queue_failed", "Jobs in the failed set.", _LABEL, registry=REGISTRY)
COMPLETED = Gauge("crm_queue_completed", "Jobs in the completed set.", _LABEL, registry=REGISTRY)
WORKERS = Gauge(
    "crm_queue_workers", "Worker connections seen in CLIENT LIST.", _LABEL, registry=REGISTRY
)
UP = Gauge(
    "forge_queue_metrics_up",
    "1 when the last read of the queue gauges from Redis succeeded.",
    registry=REGISTRY,
)
ALL = (WAITING, ACTIVE, DELAYED, PRIORITIZED, PAUSED, LAG, DLQ, FAILED, COMPLETED, WORKERS)


class QueueGauges:
    """Refreshes gauges at most once per `alerts.gauge_cache_seconds`; scrapes share one read."""

    def __init__(self, forge: Forge) -> None:
        self.forge = forge
        self._lock = asyncio.Lock()
        self._read_at = float("-inf")

    async def refresh(self) -> None:
        """Read all configured and discovered queues; on failure the gauges empty and `up` is 0."""
        async with self._lock:
            if (
                time.monotonic() - self._read_at
                < self.forge.settings.config.alerts.gauge_cache_seconds
            ):
                return
            try:
                await self._read()
                UP.set(1)
            except BackendError as exc:
                for gauge in ALL:
                    gauge.clear()
                UP.set(0)
                log.warning("queue_gauges_unavailable", error=str(exc))
            self._read_at = time.monotonic()

    async def _read(self) -> None:
        ctx = self.forge.dispatcher.context(
            Actor("forge", Role.VIEWER, source="metrics"),
            Invocation("queue health", "forge", source="metrics"),
        )
        config = ctx.settings.config
        names = list(dict.fromkeys([*config.queues, *await discover(ctx)]))
        found = await snapshot(ctx, names, config.dlq.min_attempts)
        now_ms = int(ctx.clock.now().timestamp() * 1000)
        samples.record(self.forge.settings.env.redis_url.get_secret_value(), found, now_ms / 1000)
        for gauge in ALL:
            gauge.clear()
        for c in found:
            for gauge, value in (
                (WAITING, c.waiting),
                (ACTIVE, c.active),
                (DELAYED, c.delayed),
                (PRIORITIZED, c.prioritized),
                (PAUSED, int(c.paused)),
                (DLQ, c.dlq),
                (FAILED, c.failed),
                (COMPLETED, c.completed),
                (LAG, c.lag(now_ms) or 0),
            ):
                gauge.labels(queue=c.name).set(value)
            if c.workers is not None:
                WORKERS.labels(queue=c.name).set(c.workers)

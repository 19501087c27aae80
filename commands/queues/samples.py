"""forge's own recent readings of each queue, kept in memory: the sparklines' data when
Prometheus cannot answer. Fed by every /metrics scrape's queue read and by `queue graph`."""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

from commands.queues.bullmq import Counts

KEEP = 720  # a scrape every 5 s keeps the last hour


class Sample(NamedTuple):
    """One reading of one queue at a unix time."""

    at: float
    waiting: int
    active: int
    failed: int
    dlq: int
    lag: float


_kept: dict[tuple[str, str], deque[Sample]] = {}


def record(redis: str, found: list[Counts], at: float) -> None:
    """Keep a reading of each queue of this Redis (by its URL)."""
    for c in found:
        lag = c.lag(int(at * 1000)) or 0.0
        readings = _kept.setdefault((redis, c.name), deque(maxlen=KEEP))
        readings.append(Sample(at, c.waiting, c.active, c.failed, c.dlq, lag))


def kept(redis: str, queue: str, since: float) -> list[Sample]:
    """The readings of this Redis's queue since a unix time, oldest first."""
    return [s for s in _kept.get((redis, queue), ()) if s.at >= since]

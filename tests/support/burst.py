"""A burst of slash commands and button clicks, each in a channel of its own, and its accounting:
acked (2xx within Slack's 3 s), executed (audit rows), answered (messages) and reported."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

import asyncpg

from tests.fakes.slack_delivery import SlackDelivery
from tests.fakes.slack_double import SlackDouble

REPORTED = "stopped before"


@dataclass
class Burst:
    """What was sent: a channel per request, its status and ack time."""

    prefix: str
    statuses: dict[str, int] = field(default_factory=dict)
    ack_seconds: list[float] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    ended: float = 0.0

    @property
    def channels(self) -> list[str]:
        """Every channel a request went to."""
        return list(self.statuses)

    def ack_p(self, q: float) -> float:
        """The q-th quantile of the ack time, in ms."""
        ordered = sorted(self.ack_seconds)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def send(
    client: SlackDelivery,
    prefix: str,
    *,
    count: int,
    rate: float,
    until: asyncio.Event | None = None,
    concurrency: int = 64,
) -> Burst:
    """Send `count` requests (more while `until` is unset) at `rate` a second: every other one a
    slash command `/forge whoami`, the rest a click on a `whoami` Run button."""
    burst, gate, tasks = Burst(prefix), asyncio.Semaphore(concurrency), []

    async def one(n: int) -> None:
        channel = f"{prefix}{n:05d}"
        async with gate:
            if n % 2:
                answer = await client.click("forge_run:0", "whoami", user="U0OPS", channel=channel)
            else:
                answer = await client.slash("whoami", user="U0OPS", channel=channel)
        burst.statuses[channel] = answer.status
        burst.ack_seconds.append(answer.elapsed)

    n = 0
    while n < count or (until is not None and not until.is_set()):
        tasks.append(asyncio.create_task(one(n)))
        n += 1
        await asyncio.sleep(max(0.0, burst.started + n / rate - time.monotonic()))
    await asyncio.gather(*tasks)
    burst.ended = time.monotonic()
    return burst


async def executions(dsn: str, prefix: str) -> Counter[str]:
    """How many times each channel's command ran, from the audit trail."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT channel_id FROM forge.audit_log "
            "WHERE channel_id LIKE $1 AND event IN ('command', 'click')",
            prefix + "%",
        )
    finally:
        await conn.close()
    return Counter(r["channel_id"] for r in rows)


def answers(slack: SlackDouble, channels: list[str]) -> Counter[str]:
    """How many answers forge posted in each channel."""
    return Counter({c: len(slack.messages(c)) for c in channels})


def reports(slack: SlackDouble, channels: list[str]) -> Counter[str]:
    """How many 'stopped before it finished' reports each channel's requester got."""
    wanted = set(channels)
    return Counter(
        e["channel"] for e in slack.ephemerals if e["channel"] in wanted and REPORTED in e["text"]
    )


async def settled(slack: SlackDouble, channels: list[str], timeout: float) -> bool:
    """Wait until each channel has an answer or a report; False at the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, told = answers(slack, channels), reports(slack, channels)
        if all(done[c] or told[c] for c in channels):
            return True
        await asyncio.sleep(0.2)
    return False

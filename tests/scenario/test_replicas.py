"""Replicas for real: `forge serve` processes behind HAProxy, restarted and killed under a burst."""

from __future__ import annotations

import asyncio
import json
import signal

import aiohttp
import asyncpg
import pytest

from tests.conftest import SECRET
from tests.fakes.slack_delivery import SlackDelivery
from tests.support import burst
from tests.support.replicas import HAPROXY, SKIP_REASON, Cluster

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(HAPROXY is None, reason=SKIP_REASON),
    pytest.mark.timeout(240),
]


async def status_of(url: str) -> int:
    """The status of a GET."""
    async with aiohttp.ClientSession() as session, session.get(url) as answer:
        return answer.status


def events(log: str) -> list[str]:
    """The event names of a replica's JSON log, in order."""
    names = []
    for line in log.splitlines():
        try:
            names.append(json.loads(line).get("event", ""))
        except ValueError:
            continue
    return names


async def journaled(dsn: str, replica: str) -> list[str]:
    """The channels of the work a replica had acked and not answered."""
    conn = await asyncpg.connect(dsn)
    rows = await conn.fetch("SELECT channel_id FROM forge.inflight WHERE replica = $1", replica)
    await conn.close()
    return [r["channel_id"] for r in rows]


async def journaled_none(dsn: str, timeout: float) -> bool:
    """Wait until no acked work is left unanswered or unreported; False at the timeout."""
    conn = await asyncpg.connect(dsn)
    try:
        for _ in range(int(timeout / 0.2)):
            if not await conn.fetchval("SELECT count(*) FROM forge.inflight"):
                return True
            await asyncio.sleep(0.2)
        return False
    finally:
        await conn.close()


async def test_sigterm_turns_unready_first_then_drains_then_exits(state_dsn, slack):
    """On SIGTERM /readyz answers 503 at once while requests are still served; every acked
    command is answered before the process exits 0, and the lease is released."""
    slack.delay("chat.postMessage", 1.5)  # answers take a while: work is in flight at SIGTERM
    async with Cluster(1, state_dsn, slack.url, balanced=False) as cluster:
        replica = cluster.replicas[0]
        async with SlackDelivery(replica.url, SECRET, slack) as client:
            before = await asyncio.gather(
                *(client.slash("whoami", user="U0OPS", channel=f"CDRAIN{n}") for n in range(4))
            )
            replica.process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            unready, alive = (
                await status_of(replica.url + "/readyz"),
                await status_of(replica.url + "/healthz"),
            )
            during = await client.slash("whoami", user="U0OPS", channel="CDRAIN9")
            code = await replica.stop()
        log = replica.log.read_text()
    assert [a.status for a in before] == [200] * 4 and during.status == 200
    assert (unready, alive, code) == (503, 200, 0)
    for channel in [f"CDRAIN{n}" for n in range(4)] + ["CDRAIN9"]:
        assert len(slack.messages(channel)) == 1, channel
    names = events(log)
    assert names.index("draining") < names.index("drained")
    conn = await asyncpg.connect(state_dsn)
    leases, inflight = (
        await conn.fetchval("SELECT count(*) FROM forge.leases"),
        await conn.fetchval("SELECT count(*) FROM forge.inflight"),
    )
    await conn.close()
    assert (leases, inflight) == (0, 0)


async def test_a_rolling_restart_during_a_burst_loses_nothing(state_dsn, slack):
    """Commands and clicks keep coming while each replica in turn is stopped and started again:
    every one is acked (no 5xx), executed exactly once and answered exactly once."""
    slack.delay("chat.postMessage", 0.3)  # each answer takes a while: work is in flight at SIGTERM
    async with Cluster(2, state_dsn, slack.url) as cluster:
        async with SlackDelivery(cluster.url, SECRET, slack) as client:
            restarted = asyncio.Event()
            sending = asyncio.create_task(
                burst.send(client, "CROLL", count=200, rate=25, until=restarted)
            )
            await asyncio.sleep(1.0)
            codes = await cluster.rolling_restart()
            restarted.set()
            sent = await sending
        channels = sent.channels
        assert await burst.settled(slack, channels, timeout=60)
    assert codes == [0, 0]
    assert set(sent.statuses.values()) == {200}, client.statuses
    ran, answered = await burst.executions(state_dsn, "CROLL"), burst.answers(slack, channels)
    assert [c for c in channels if ran[c] != 1] == []
    assert [c for c in channels if answered[c] != 1] == []
    assert not burst.reports(slack, channels)


async def test_kill_9_mid_burst_reports_what_was_lost_and_runs_nothing_twice(state_dsn, slack):
    """A replica killed mid-burst: requests it had not answered reach the other one through
    HAProxy; what it had acked but not finished is reported to the requester; nothing runs twice."""
    slack.delay("chat.postMessage", 0.4)  # each answer takes a while: the victim holds acked work
    async with Cluster(2, state_dsn, slack.url) as cluster:
        async with SlackDelivery(cluster.url, SECRET, slack) as client:
            sending = asyncio.create_task(burst.send(client, "CKILL", count=150, rate=40))
            await asyncio.sleep(1.5)
            victim = cluster.replicas[0]
            await victim.stop(signal.SIGKILL)
            lost = await journaled(state_dsn, victim.replica_id)
            sent = await sending
        channels = sent.channels
        settled = await burst.settled(slack, channels, timeout=60)
        assert await journaled_none(state_dsn, timeout=60)
        told = burst.reports(slack, channels)
    ran, answered = await burst.executions(state_dsn, "CKILL"), burst.answers(slack, channels)
    assert set(sent.statuses.values()) == {200}, client.statuses
    assert settled, [c for c in channels if not (answered[c] or told[c])]
    assert max(ran.values()) == 1 and max(answered.values()) == 1
    # A row read as journaled may belong to an answer already in Slack: the victim's last DELETE
    # can commit after the kill. Every journaled channel is answered or told; only those are told.
    assert set(told) <= set(lost) and sum(told.values()) >= 1
    assert all(answered[c] or told[c] for c in lost)
    assert all(told[c] <= 1 for c in channels)

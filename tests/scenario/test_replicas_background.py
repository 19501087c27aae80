"""Replicas for real, beyond requests: background work on one replica at a time (and its failover
after kill -9), Socket Mode with a connection per replica, and Alertmanager in HA."""

from __future__ import annotations

import asyncio
import signal
import time

import asyncpg
import pytest

from tests.conftest import SECRET
from tests.fakes.slack_delivery import SlackDelivery
from tests.scenario.test_replicas import events
from tests.support.alertmanager_fixture import SKIP_REASON as AM_SKIP
from tests.support.alertmanager_fixture import Alertmanager, now, unavailable
from tests.support.replicas import Cluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
FAILOVER_LIMIT = 30.0


async def holder(dsn: str, not_: str | None = None, timeout: float = 45.0) -> tuple[str, float]:
    """The live holder of the background lease (other than `not_`), and when it was seen."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = await conn.fetchval(
                "SELECT holder FROM forge.leases WHERE name = 'background' AND expires_at > now()"
            )
            if found and found != not_:
                return found, time.monotonic()
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    raise AssertionError(f"no lease holder other than {not_} within {timeout:g} s")


def cards(slack, channel: str) -> list[dict]:
    """Top-level messages in a channel (thread replies left out)."""
    return [m for m in slack.messages(channel) if not m.get("thread_ts")]


async def declare(replica, slack, title: str) -> None:
    """Declare an incident through one replica, in the incidents channel."""
    async with SlackDelivery(replica.url, SECRET, slack) as client:
        answer = await client.slash(f"incident declare P2 {title}", user="U0OPS", channel="C0INC")
    assert answer.status == 200


async def wait_cards(slack, channel: str, count: int, timeout: float = 30.0) -> None:
    """Until the channel holds `count` cards, then a little longer for any duplicate."""
    deadline = time.monotonic() + timeout
    while len(cards(slack, channel)) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(2.0)


async def test_background_runs_on_one_replica_and_moves_within_30s_of_a_kill(state_dsn, slack):
    """One replica of two holds the lease and runs the jobs (one card per incident, whichever
    replica took the command); after kill -9 the other takes over within 30 s and carries on."""
    async with Cluster(2, state_dsn, slack.url, balanced=False) as cluster:
        leader_id, _ = await holder(state_dsn)
        [leader] = [r for r in cluster.replicas if r.replica_id == leader_id]
        [follower] = [r for r in cluster.replicas if r is not leader]
        await declare(follower, slack, "Checkout is down")
        await declare(leader, slack, "Search is slow")
        await wait_cards(slack, "C0INC", 2)
        assert len(cards(slack, "C0INC")) == 2
        elected = [r.name for r in cluster.replicas if "leader_elected" in events(r.tail(10**6))]
        assert elected == [leader.name]
        killed = time.monotonic()
        await leader.stop(signal.SIGKILL)
        heir, seen = await holder(state_dsn, not_=leader_id)
        await declare(follower, slack, "Payments fail")
        await wait_cards(slack, "C0INC", 3)
    assert heir == follower.replica_id and seen - killed <= FAILOVER_LIMIT
    assert len(cards(slack, "C0INC")) == 3


async def test_socket_mode_two_replicas_handle_each_envelope_once(state_dsn, slack):
    """Each replica holds its own Socket Mode connection; each envelope goes to one of them and
    is handled once; what a stopped replica never acked is redelivered to the other and handled."""
    async with Cluster(
        2, state_dsn, slack.url, balanced=False, SLACK_APP_TOKEN="xapp-1-replicas"
    ) as cluster:
        while slack.open_sockets < 2:
            await asyncio.sleep(0.05)
        channels = [f"CSOCK{n}" for n in range(12)]
        for channel in channels[:8]:
            sent = await slack.send_envelope("slash_commands", slash(slack, channel), spread=True)
            await slack.wait_for_ack(sent, timeout=10)
        deadline = time.monotonic() + 30
        while any(not slack.messages(c) for c in channels[:8]) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)  # answered, not only acked, before one replica is stopped
        stuck = cluster.replicas[0]
        stuck.process.send_signal(signal.SIGSTOP)
        for channel in channels[8:]:
            await slack.send_envelope("slash_commands", slash(slack, channel), spread=True)
        await stuck.stop(signal.SIGKILL)
        deadline = time.monotonic() + 30
        while any(not slack.messages(c) for c in channels) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
    assert [len(slack.messages(c)) for c in channels] == [1] * len(channels)
    assert len({ws for _, ws in slack.deliveries}) == 2 and len(slack.redelivered) == 2


def slash(slack, channel: str) -> dict:
    """A /forge whoami slash-command payload in a channel of its own."""
    return {
        "command": "/forge",
        "text": "whoami",
        "user_id": "U0OPS",
        "channel_id": channel,
        "team_id": "T0FORGE",
        "response_url": slack.new_response_url(channel=channel, user="U0OPS"),
        "trigger_id": slack.new_trigger_id(),
    }


@pytest.mark.skipif(unavailable(), reason=AM_SKIP)
async def test_two_alertmanagers_to_two_replicas_make_one_card(state_dsn, slack):
    """Alertmanager in HA: two (unclustered, the worst case) send the same notification, each to
    another replica; forge posts one card."""
    token = "am-replicas-token"
    async with Cluster(
        2, state_dsn, slack.url, balanced=False, FORGE_ALERTMANAGER_TOKEN=token
    ) as cluster:
        managers = [Alertmanager(r.url, token) for r in cluster.replicas]
        try:
            for manager in managers:
                manager.wait_ready()
            labels = {"alertname": "QueueBacklog", "queue": "email", "severity": "warning"}
            for manager in managers:
                manager.push(labels, {"summary": "email backlog"}, now())
            await wait_cards(slack, "C0ALERTS", 1)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not all(
                "alerts_received" in events(r.tail(10**6)) for r in cluster.replicas
            ):
                await asyncio.sleep(0.2)
            received = [
                r.name for r in cluster.replicas if "alerts_received" in events(r.tail(10**6))
            ]
        finally:
            for manager in managers:
                manager.stop()
    assert received == ["r1", "r2"]
    assert len(cards(slack, "C0ALERTS")) == 1

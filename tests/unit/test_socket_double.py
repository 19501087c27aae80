"""The Slack double's Socket Mode with several connections: one connection per envelope, and
redelivery of what a closed connection had not acked."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from tests.fakes.slack_double import SlackDouble


async def connect(
    session: aiohttp.ClientSession, slack: SlackDouble
) -> aiohttp.ClientWebSocketResponse:
    """Open a Socket Mode connection as an app would, and read its hello."""
    headers = {"Authorization": "Bearer xapp-1-test"}
    async with session.post(slack.url + "apps.connections.open", headers=headers) as answer:
        url = (await answer.json())["url"]
    ws = await session.ws_connect(url)
    assert json.loads((await ws.receive()).data)["type"] == "hello"
    return ws


async def received(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[dict]:
    """The next `count` envelopes on a connection."""
    return [json.loads((await asyncio.wait_for(ws.receive(), 3)).data) for _ in range(count)]


async def test_one_connection_per_envelope_and_redelivery_when_one_closes():
    """Spread envelopes alternate between two connections; those one never acked go to the other."""
    async with SlackDouble() as slack, aiohttp.ClientSession() as session:
        first, second = await connect(session, slack), await connect(session, slack)
        sent = [await slack.send_envelope("events_api", {"n": n}, spread=True) for n in range(4)]
        to_first, to_second = await received(first, 2), await received(second, 2)
        assert sorted(e["envelope_id"] for e in to_first + to_second) == sorted(sent)
        for envelope in to_second:
            await second.send_json({"envelope_id": envelope["envelope_id"]})
        await slack.wait_for_ack(to_second[-1]["envelope_id"])
        await first.close()
        again = await received(second, 2)
        assert [e["envelope_id"] for e in again] == [e["envelope_id"] for e in to_first]
        assert {e["retry_attempt"] for e in again} == {1}
        assert len(slack.deliveries) == 6 and sorted(slack.redelivered) == sorted(
            e["envelope_id"] for e in to_first
        )
        await second.close()

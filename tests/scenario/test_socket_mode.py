"""Socket Mode: the same listeners over Slack's WebSocket, acked through the socket."""

from __future__ import annotations

import asyncio
import json

import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from bot.core.forge import Forge
from bot.slack.app import SlackSurface
from bot.slack.outbox import close_client, make_client
from tests.conftest import CONFIG, make_settings

pytestmark = pytest.mark.integration


@pytest.fixture
async def socket_forge(state_dsn, slack):
    """forge connected to the double over Socket Mode."""
    settings = make_settings(
        CONFIG,
        forge_state_database_url=state_dsn,
        slack_api_url=slack.url,
        slack_app_token="xapp-1-forge-test",
    )
    client = make_client(settings)
    forge = Forge(settings)
    await forge.start()
    surface = SlackSurface(forge, client, "unused-in-socket-mode")
    handler = AsyncSocketModeHandler(surface.app, "xapp-1-forge-test")
    await handler.connect_async()
    await asyncio.wait_for(slack.socket_connected.wait(), 5)
    yield surface
    await handler.close_async()
    await surface.drain()
    await forge.aclose()
    await close_client(client)


async def test_slash_command_over_socket_mode(socket_forge, slack):
    """A slash_commands envelope is acked on the socket and answered in the channel."""
    payload = {
        "command": "/forge",
        "text": "whoami",
        "user_id": "U0OPS",
        "channel_id": "C0OPS",
        "team_id": "T0FORGE",
        "response_url": slack.new_response_url(),
        "trigger_id": slack.new_trigger_id(),
    }
    envelope = await slack.send_envelope("slash_commands", payload)
    await slack.wait_for_ack(envelope)
    [post] = await slack.wait_for("chat.postMessage")
    assert "operator" in json.dumps(post.args)


async def test_event_retry_over_socket_mode_runs_once(socket_forge, slack):
    """An events_api envelope redelivered with retry_attempt runs its command once (B3)."""
    event = {
        "type": "app_mention",
        "user": "U0VIEW",
        "text": "<@U0BOT> whoami",
        "channel": "C0OPS",
        "ts": "1700000002.000300",
        "event_ts": "1700000002.000300",
    }
    payload = {
        "type": "event_callback",
        "team_id": "T0FORGE",
        "event_id": "Ev0SOCK1",
        "event": event,
    }
    first = await slack.send_envelope("events_api", payload)
    await slack.wait_for_ack(first)
    again = await slack.send_envelope(
        "events_api", payload, retry_attempt=1, retry_reason="timeout"
    )
    await slack.wait_for_ack(again)
    await socket_forge.drain()
    await asyncio.sleep(0.2)
    assert len(slack.calls_to("chat.postMessage")) == 1

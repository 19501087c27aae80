"""The Slack double and the signed-request client, tried with the real slack_sdk and slack_bolt."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.conftest import served
from tests.fakes.slack_client import SlackClient, sign, slash_body
from tests.fakes.slack_double import SlackDouble

SECRET = "forge-test-signing-secret"


@pytest.fixture
async def slack() -> AsyncIterator[SlackDouble]:
    """A running double, stopped after the test."""
    async with SlackDouble() as double:
        yield double


@pytest.fixture
def client(slack: SlackDouble) -> AsyncWebClient:
    """The real slack_sdk client pointed at the double."""
    return AsyncWebClient(token="xoxb-test", base_url=slack.url)


async def error_of(pending) -> str:
    """The Slack error code a call fails with."""
    with pytest.raises(SlackApiError) as raised:
        await pending
    return raised.value.response["error"]


async def test_post_then_update_round_trips_through_the_message_store(slack, client):
    """A posted message can be read back, and chat.update edits it in place."""
    posted = await client.chat_postMessage(
        channel="C0OPS", text="deploying", blocks=[{"type": "divider"}]
    )
    reply = await client.chat_postMessage(channel="C0OPS", text="step 1", thread_ts=posted["ts"])
    updated = await client.chat_update(channel="C0OPS", ts=posted["ts"], text="deployed")

    assert posted["message"]["user"] == "U0BOT" and posted["message"]["blocks"] == [
        {"type": "divider"}
    ]
    assert float(reply["ts"]) > float(posted["ts"])
    assert updated["ts"] == posted["ts"] and updated["message"]["text"] == "deployed"
    assert [m["text"] for m in slack.messages("C0OPS")] == ["deployed", "step 1"]
    assert slack.messages("C0OPS", thread_ts=posted["ts"])[0]["ts"] == reply["ts"]


async def test_update_and_delete_of_unknown_message_fail_like_slack(client):
    """Editing or deleting a ts the double never issued answers message_not_found."""
    assert (
        await error_of(client.chat_update(channel="C0OPS", ts="1.000001", text="x"))
        == "message_not_found"
    )
    assert await error_of(client.chat_delete(channel="C0OPS", ts="1.000001")) == "message_not_found"


async def test_ephemeral_is_recorded_with_its_recipient(slack, client):
    """chat.postEphemeral returns a message_ts and is kept in ephemerals."""
    response = await client.chat_postEphemeral(channel="C0OPS", user="U1", text="only you")

    assert response["message_ts"]
    assert slack.ephemerals[0] | {"message_ts": None} == {
        "channel": "C0OPS",
        "user": "U1",
        "text": "only you",
        "blocks": [],
        "thread_ts": None,
        "message_ts": None,
    }


async def test_usergroup_members_come_from_the_test(slack, client):
    """usergroups.users.list answers from slack.usergroups and refuses unknown groups."""
    slack.usergroups = {"S0ONCALL": ["U1", "U2"]}

    assert (await client.usergroups_users_list(usergroup="S0ONCALL"))["users"] == ["U1", "U2"]
    assert await error_of(client.usergroups_users_list(usergroup="S0NOPE")) == "no_such_subteam"


async def test_get_with_query_string_args_is_understood(slack, client):
    """conversations.info (a GET with query args) returns the channel object."""
    channel = (await client.conversations_info(channel="C0OPS"))["channel"]

    assert channel == {
        "id": "C0OPS",
        "name": "ops",
        "is_channel": True,
        "is_private": False,
        "is_member": True,
        "is_archived": False,
        "created": 1_700_000_000,
    }
    assert slack.calls_to("conversations.info")[0].args == {"channel": "C0OPS"}


async def test_tokens_are_checked_like_slack(slack):
    """Tokens: none not_authed, foreign invalid_auth, app on a bot method not_allowed_token_type."""
    assert await error_of(AsyncWebClient(base_url=slack.url).auth_test()) == "not_authed"
    assert (
        await error_of(AsyncWebClient(token="xoxp-user", base_url=slack.url).auth_test())
        == "invalid_auth"
    )
    app_token = AsyncWebClient(token="xapp-1-test", base_url=slack.url)
    assert (
        await error_of(app_token.chat_postMessage(channel="C0OPS", text="x"))
        == "not_allowed_token_type"
    )
    me = await AsyncWebClient(token="xoxb-test", base_url=slack.url).auth_test()

    assert (me["team_id"], me["user_id"], me["bot_id"]) == ("T0FORGE", "U0BOT", "B0BOT")
    assert "chat:write" in me.headers["x-oauth-scopes"]
    assert slack.calls[-1].headers["authorization"] == "Bearer xoxb-test"


async def test_rate_limit_is_retried_after_retry_after(slack, client):
    """A scripted 429 carries Retry-After; slack_sdk's retry handler waits it out and succeeds."""
    slack.fail("chat.postMessage", status=429, error="ratelimited", times=1, retry_after=1)
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=1))

    started = time.monotonic()
    await client.chat_postMessage(channel="C0OPS", text="hi")
    calls = slack.calls_to("chat.postMessage")

    assert [c.status for c in calls] == [429, 200]
    assert calls[1].at - calls[0].at >= 1 and time.monotonic() - started >= 1
    assert len(slack.messages("C0OPS")) == 1


async def test_scripted_errors_delays_and_unknown_methods(slack, client):
    """fail(status) answers that error once; delay() slows a method; unknown methods are refused."""
    slack.fail("chat.postMessage", status=200, error="channel_not_found")
    slack.delay("auth.test", 0.2)

    assert (
        await error_of(client.chat_postMessage(channel="C0GONE", text="x")) == "channel_not_found"
    )
    assert (await client.chat_postMessage(channel="C0OPS", text="x"))["ok"]
    started = time.monotonic()
    await client.auth_test()
    assert time.monotonic() - started >= 0.2
    assert await error_of(client.api_call("forge.nothing")) == "unknown_method"


async def test_channel_rate_limit_allows_a_burst_then_429s(slack, client):
    """With enforce_channel_rate, a fourth message in a burst to one channel is rate limited."""
    slack.enforce_channel_rate = True
    for n in range(3):
        await client.chat_postMessage(channel="C0OPS", text=str(n))
    await client.chat_postMessage(channel="C0OTHER", text="elsewhere")

    assert (
        await error_of(client.chat_postMessage(channel="C0OPS", text="too fast")) == "ratelimited"
    )
    assert slack.calls[-1].status == 429


async def test_trigger_ids_are_single_use_and_validated(slack, client):
    """views.open accepts a trigger once, then refuses it, and refuses malformed ones."""
    trigger = slack.new_trigger_id()
    view = {
        "type": "modal",
        "callback_id": "confirm",
        "title": {"type": "plain_text", "text": "Sure?"},
        "blocks": [],
    }

    opened = (await client.views_open(trigger_id=trigger, view=view))["view"]
    updated = (
        await client.views_update(view_id=opened["id"], view={**view, "callback_id": "done"})
    )["view"]

    assert opened["id"].startswith("V") and opened["callback_id"] == "confirm"
    assert updated["id"] == opened["id"] and updated["callback_id"] == "done"
    assert (
        await error_of(client.views_open(trigger_id=trigger, view=view)) == "exchanged_trigger_id"
    )
    assert (
        await error_of(client.views_open(trigger_id="not-a-trigger", view=view))
        == "invalid_trigger_id"
    )


async def test_issued_trigger_ids_expire(slack, client):
    """A trigger id the double issued is refused once trigger_ttl has passed."""
    slack.trigger_ttl = 0.05
    trigger = slack.new_trigger_id()
    await asyncio.sleep(0.1)

    assert (
        await error_of(client.views_open(trigger_id=trigger, view={"type": "modal"}))
        == "expired_trigger_id"
    )


async def test_response_url_takes_five_posts_then_refuses(slack):
    """Posts to a response_url are recorded, and the sixth is answered 404 used_url."""
    webhook = AsyncWebhookClient(slack.new_response_url(channel="C0OPS", user="U1"))
    statuses = [
        (await webhook.send(text=f"r{n}", response_type="in_channel")).status_code for n in range(5)
    ]
    refused = await webhook.send(text="r5")

    assert statuses == [200] * 5 and (refused.status_code, refused.body) == (404, "used_url")
    assert [r["text"] for r in slack.responses] == ["r0", "r1", "r2", "r3", "r4"]
    assert slack.responses[0]["response_type"] == "in_channel" and len(slack.messages("C0OPS")) == 5
    assert [c.status for c in slack.calls_to("response_url")] == [200] * 5 + [404]


async def test_files_upload_v2_lands_in_files(slack, client):
    """files_upload_v2's three steps store the uploaded bytes against the channel."""
    response = await client.files_upload_v2(
        channel="C0OPS",
        content="x" * 5000,
        filename="out.txt",
        initial_comment="report",
        thread_ts="1700000000.000100",
    )
    [uploaded] = slack.files

    assert (uploaded.filename, uploaded.title, uploaded.content) == (
        "out.txt",
        "out.txt",
        b"x" * 5000,
    )
    assert (uploaded.channel_id, uploaded.initial_comment, uploaded.thread_ts) == (
        "C0OPS",
        "report",
        "1700000000.000100",
    )
    assert response["file"]["id"] == uploaded.id
    assert [c.method for c in slack.calls] == [
        "files.getUploadURLExternal",
        "upload",
        "files.completeUploadExternal",
    ]


async def test_socket_mode_client_connects_and_its_ack_is_recorded(slack):
    """slack_sdk's Socket Mode client gets hello and a pushed envelope, and its ack is recorded."""
    received: list[SocketModeRequest] = []

    async def on_request(socket: SocketModeClient, request: SocketModeRequest) -> None:
        received.append(request)
        await socket.send_socket_mode_response(
            SocketModeResponse(request.envelope_id, {"text": "on it"})
        )

    socket = SocketModeClient(
        app_token="xapp-1-test", web_client=AsyncWebClient(token="xoxb-test", base_url=slack.url)
    )
    socket.socket_mode_request_listeners.append(on_request)
    try:
        await socket.connect()
        envelope_id = await slack.send_envelope(
            "slash_commands", {"command": "/forge", "text": "help"}
        )
        ack = await slack.wait_for_ack(envelope_id)
    finally:
        await socket.close()

    assert ack == {"envelope_id": envelope_id, "payload": {"text": "on it"}}
    assert (received[0].type, received[0].payload["text"]) == ("slash_commands", "help")
    assert socket.last_ping_pong_time is not None
    assert (
        slack.calls_to("apps.connections.open")[0].headers["authorization"] == "Bearer xapp-1-test"
    )


async def test_wait_for_reports_what_arrived_instead(slack, client):
    """wait_for times out with an AssertionError naming the calls that did arrive."""
    await client.auth_test()

    with pytest.raises(AssertionError, match="chat.postMessage.*auth.test x1"):
        await slack.wait_for("chat.postMessage", timeout=0.05)


def test_sign_matches_slack_sdk_signature_verifier():
    """sign() produces the signature slack_sdk computes and accepts."""
    body = slash_body("deploy api")
    headers = sign(SECRET, body, timestamp=int(time.time()))
    verifier = SignatureVerifier(SECRET)

    expected = verifier.generate_signature(
        timestamp=headers["X-Slack-Request-Timestamp"], body=body
    )
    assert headers["X-Slack-Signature"] == expected
    assert verifier.is_valid_request(body, headers)


@pytest.fixture
async def bolt(slack: SlackDouble) -> AsyncIterator[tuple[str, list]]:
    """A real bolt AsyncApp over HTTP talking Slack to the double; its base URL and what it saw."""
    seen: list = []
    app = AsyncApp(
        client=AsyncWebClient(token="xoxb-test", base_url=slack.url),
        signing_secret=SECRET,
        process_before_response=True,
    )

    @app.command("/forge")
    async def forge(ack, respond, command):
        await ack()
        await respond(f"ran {command['text']}")

    @app.action("approve")
    async def approve(ack, respond, body):
        await ack()
        await respond(text=f"approved by {body['user']['id']}", replace_original=True)

    @app.view("confirm")
    async def confirm(ack, view):
        seen.append(view["private_metadata"])
        await ack(
            response_action="errors",
            errors={"reason": view["state"]["values"]["reason"]["r"]["value"]},
        )

    @app.event("app_mention")
    async def mention(event, request):
        seen.append((event["text"], request.headers.get("x-slack-retry-num")))

    async with served(app.web_app()) as url:
        yield url, seen


async def test_signed_requests_drive_bolt_and_replies_land_in_the_double(slack, client, bolt):
    """A signed slash command and button click reach bolt, and its replies arrive at the double."""
    posted = await client.chat_postMessage(channel="C0OPS", text="approve deploy?")
    async with SlackClient(bolt[0], SECRET, slack) as user:
        slashed = await user.slash("deploy api", user="U1")
        clicked = await user.click("approve", "yes", user="U1", message_ts=posted["ts"])

    assert (slashed.status, clicked.status) == (200, 200)
    assert [r["text"] for r in slack.responses] == ["ran deploy api", "approved by U1"]
    assert slack.ephemerals[0]["user"] == "U1"
    assert slack.messages("C0OPS")[0]["text"] == "approved by U1"


async def test_forged_and_stale_requests_are_refused_by_bolt(slack, bolt):
    """A wrong signature and a ten-minute-old timestamp are both answered 401."""
    body = slash_body("deploy api")
    async with SlackClient(bolt[0], SECRET, slack) as user:
        forged = await user.post_raw(body, sign("not-the-secret", body))
        stale = await user.post_raw(body, sign(SECRET, body, timestamp=int(time.time()) - 600))
        unsigned = await user.slash("deploy api", signed=False)

    assert (forged.status, stale.status, unsigned.status) == (401, 401, 401)
    assert slack.responses == []


async def test_view_submission_and_retried_event_reach_bolt(slack, bolt):
    """A modal submission's state and metadata and an event's retry headers reach bolt as sent."""
    url, seen = bolt
    async with SlackClient(url, SECRET, slack) as user:
        submitted = await user.submit_view(
            "confirm",
            {"reason": {"r": {"type": "plain_text_input", "value": "why"}}},
            private_metadata="deploy-42",
        )
        mentioned = await user.event(
            {
                "type": "app_mention",
                "user": "U1",
                "text": "<@U0BOT> hi",
                "channel": "C0OPS",
                "ts": "1700000000.000200",
            },
            retry_num=1,
            retry_reason="http_timeout",
        )

    assert submitted.json() == {"response_action": "errors", "errors": {"reason": "why"}}
    assert mentioned.status == 200
    assert seen == ["deploy-42", ("<@U0BOT> hi", ["1"])]

"""Scenarios over real HTTP: signed requests to /slack/events, answers the Slack double records."""

from __future__ import annotations

import asyncio
import json
import time

import asyncpg
import pytest

from tests.conftest import CONFIG, SECRET, make_settings, running_forge
from tests.fakes.slack_client import sign, slash_body

pytestmark = pytest.mark.integration


def texts(calls) -> str:
    """Everything the bot said in these calls, as one string."""
    return json.dumps([c.args for c in calls], ensure_ascii=False)


async def audit_rows(harness) -> list[asyncpg.Record]:
    """Every audit row, oldest first."""
    pool = await harness.forge.store.pool()
    return await pool.fetch("SELECT * FROM forge.audit_log ORDER BY id")


async def test_help_is_acked_at_once_and_posted_to_the_channel(harness):
    """`/forge help` answers 200 immediately; the list arrives as a channel message."""
    response = await harness.client.slash("help", user="U0VIEW")
    assert response.status == 200 and response.elapsed < 0.5
    [post] = await harness.slack.wait_for("chat.postMessage")
    assert post.args["channel"] == "C0OPS"
    said = texts([post])
    assert "health" in said and "whoami" in said and "audit" not in said


async def test_help_lists_admin_commands_only_for_admins(harness):
    """An admin's help includes `audit`; a viewer's does not (C12)."""
    await harness.client.slash("help", user="U0ADMIN")
    [post] = await harness.slack.wait_for("chat.postMessage")
    assert "audit" in texts([post])


async def test_whoami_resolves_roles_through_user_groups(harness):
    """A member of an operator user group is an operator, found with usergroups.users.list."""
    await harness.client.slash("whoami", user="U0ONCALL")
    [post] = await harness.slack.wait_for("chat.postMessage")
    assert "operator" in texts([post])
    assert harness.slack.calls_to("usergroups.users.list")[0].args["usergroup"] == "S0ONCALL"


async def test_health_edits_one_message_in_place(state_dsn, slack):
    """A slow command posts ⏳ once, then edits it into the result, within timeout + 1 s."""

    async def never_answer(reader, writer):
        await asyncio.sleep(30)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = make_settings(
        CONFIG,
        forge_state_database_url=state_dsn,
        slack_api_url=slack.url,
        clientforge_api_url=f"http://127.0.0.1:{port}",
    )
    async with running_forge(settings, slack) as harness:
        started = time.monotonic()
        response = await harness.client.slash("health", user="U0VIEW")
        [post] = await harness.slack.wait_for("chat.postMessage")
        [update] = await harness.slack.wait_for("chat.update", timeout=5)
        elapsed = time.monotonic() - started
    server.close()
    assert response.status == 200 and response.elapsed < 0.5 and elapsed < 3.0
    assert "⏳" in post.args["text"] and update.args["ts"] == post.response["ts"]
    assert (
        "timed out after 2 s" in json.dumps(update.args, ensure_ascii=False)
        and "🔴" in update.args["text"]
    )
    assert len(harness.slack.messages("C0OPS")) == 1


async def test_quick_slow_command_posts_no_placeholder(harness):
    """A slow command that finishes quickly answers with one message and no ⏳ notice."""
    await harness.client.slash("health", user="U0VIEW")
    [post] = await harness.slack.wait_for("chat.postMessage")
    await harness.settle()
    assert "⏳" not in post.args["text"] and not harness.slack.calls_to("chat.update")


async def test_denial_names_the_role_and_goes_only_to_the_caller(harness):
    """A viewer running `audit` is told privately the role it needs; nothing posted; audited."""
    await harness.client.slash("audit", user="U0VIEW")
    await harness.settle()
    assert not harness.slack.calls_to("chat.postMessage")
    [reply] = harness.slack.responses
    assert (
        "needs the admin role" in reply["text"]
        and reply.get("response_type", "ephemeral") == "ephemeral"
    )
    rows = await audit_rows(harness)
    assert [(r["event"], r["outcome"], r["actor_id"]) for r in rows] == [
        ("authz_fail", "denied", "U0VIEW")
    ]


async def test_unknown_command_suggests_and_changes_nothing(harness):
    """A typo gets 'did you mean' privately."""
    await harness.client.slash("helth", user="U0VIEW")
    await harness.settle()
    assert "Did you mean `health`" in harness.slack.responses[0]["text"]
    assert not harness.slack.calls_to("chat.postMessage")


async def test_bad_arguments_answer_with_usage(harness):
    """Bad arguments get the command's usage, privately."""
    await harness.client.slash("audit --limit 0", user="U0ADMIN")
    await harness.settle()
    said = json.dumps(harness.slack.responses[0])
    assert "Bad `limit`" in said and "audit [--user USER]" in said


async def test_mention_injection_is_escaped(harness):
    """Echoed input cannot ping the channel or render a link (D9)."""
    await harness.client.slash("help <!channel>", user="U0VIEW")
    await harness.settle()
    said = json.dumps(harness.slack.responses[0], ensure_ascii=False)
    assert "&lt;!channel&gt;" in said and "<!channel>" not in said


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Slack-Request-Timestamp": "{ts}", "X-Slack-Signature": "v0=" + "0" * 64},
        {"X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": "{sig}"},
        {"X-Slack-Request-Timestamp": "9" * 5000, "X-Slack-Signature": "{sig}"},
        {"X-Slack-Request-Timestamp": "-1", "X-Slack-Signature": "{sig}"},
        {"X-Slack-Request-Timestamp": "{ts}", "X-Slack-Signature": "v0=ünïcödé"},
        {"X-Slack-Request-Timestamp": "{ts}"},
        {"X-Slack-Signature": "{sig}"},
        {},
    ],
    ids=[
        "forged",
        "ts-abc",
        "ts-huge",
        "ts-negative",
        "sig-non-ascii",
        "no-sig",
        "no-ts",
        "no-headers",
    ],
)
async def test_forged_and_malformed_signatures_get_401_and_run_nothing(harness, headers):
    """Forged or malformed signature headers get 401; no command runs, nothing is posted."""
    body = slash_body("help", user="U0ADMIN")
    signed = sign(SECRET, body)
    filled = {
        k: v.format(ts=signed["X-Slack-Request-Timestamp"], sig=signed["X-Slack-Signature"])
        for k, v in headers.items()
    }
    response = await harness.client.post_raw(
        body, {"Content-Type": "application/x-www-form-urlencoded", **filled}
    )
    await harness.settle()
    assert response.status == 401
    assert not [c for c in harness.slack.calls if c.method != "auth.test"]
    assert await audit_rows(harness) == []


@pytest.mark.parametrize("skew", [-301, 301])
async def test_stale_or_future_timestamps_are_refused(harness, skew):
    """A correctly signed request more than five minutes off is refused (A4)."""
    body = slash_body("help")
    response = await harness.client.post_raw(body, sign(SECRET, body, int(time.time()) + skew))
    await harness.settle()
    assert response.status == 401 and not harness.slack.calls_to("chat.postMessage")


async def test_tampered_body_is_refused(harness):
    """A body changed after signing fails verification (A3)."""
    headers = sign(SECRET, slash_body("help", user="U0VIEW"))
    response = await harness.client.post_raw(slash_body("help", user="U0ADMIN"), headers)
    assert response.status == 401


async def test_byte_identical_replay_runs_once(harness):
    """The same signed request delivered twice runs the command once (B1)."""
    body = slash_body("whoami", user="U0VIEW", response_url=harness.slack.new_response_url())
    headers = sign(SECRET, body)
    first = await harness.client.post_raw(body, headers)
    second = await harness.client.post_raw(body, headers)
    await harness.settle()
    assert first.status == second.status == 200
    assert len(harness.slack.calls_to("chat.postMessage")) == 1


async def test_events_api_retry_never_runs_twice(harness):
    """An app_mention redelivered with X-Slack-Retry-Num runs its command once (B2)."""
    event = {
        "type": "app_mention",
        "user": "U0VIEW",
        "text": "<@U0BOT> whoami",
        "channel": "C0OPS",
        "ts": "1700000001.000200",
        "event_ts": "1700000001.000200",
    }
    first = await harness.client.event(event, event_id="Ev0FORGE1")
    retry = await harness.client.event(
        event, event_id="Ev0FORGE1", retry_num=1, retry_reason="http_timeout"
    )
    await harness.settle()
    assert first.status == retry.status == 200
    [post] = harness.slack.calls_to("chat.postMessage")
    assert post.args["thread_ts"] == "1700000001.000200" and "viewer" in texts([post])


async def test_button_click_runs_with_the_clickers_permissions(harness):
    """A follow-up button runs its command as the clicker: an admin may, a viewer may not (C3)."""
    await harness.client.click(
        "forge_run:0", "audit --limit 5", user="U0VIEW", message_ts="1700000000.000100"
    )
    await harness.settle()
    assert not harness.slack.calls_to("chat.postMessage")
    assert "needs the admin role" in json.dumps(harness.slack.responses, ensure_ascii=False)
    await harness.client.click(
        "forge_run:0", "audit --limit 5", user="U0ADMIN", message_ts="1700000000.000100"
    )
    [post] = await harness.slack.wait_for("chat.postMessage")
    assert post.args["thread_ts"] == "1700000000.000100"
    rows = await audit_rows(harness)
    assert [r["event"] for r in rows] == ["authz_fail", "click"]


async def test_audit_rows_and_chain_check(harness):
    """Commands, denials, usage errors audited with actor, channel, outcome; the chain verifies."""
    for user, text in [
        ("U0VIEW", "help"),
        ("U0VIEW", "audit"),
        ("U0ADMIN", "whoami"),
        ("U0OPS", "nope"),
    ]:
        await harness.client.slash(text, user=user)
        await harness.settle()
    rows = await audit_rows(harness)
    assert [(r["actor_id"], r["event"], r["outcome"]) for r in rows] == [
        ("U0VIEW", "command", "ok"),
        ("U0VIEW", "authz_fail", "denied"),
        ("U0ADMIN", "command", "ok"),
        ("U0OPS", "input_validation_fail", "unknown"),
    ]
    assert all(r["channel_id"] == "C0OPS" and r["duration_ms"] is not None for r in rows)
    harness.slack.clear()
    await harness.client.slash("audit --verify", user="U0ADMIN")
    [post] = await harness.slack.wait_for("chat.postMessage")
    assert "Hash chain intact over 4 rows" in texts([post])


async def test_rate_limited_post_is_retried_after_retry_after(harness):
    """A 429 with Retry-After on chat.postMessage is retried and the message lands once (F1)."""
    harness.slack.fail("chat.postMessage", status=429, retry_after=1, times=1)
    await harness.client.slash("whoami", user="U0VIEW")
    calls = await harness.slack.wait_for("chat.postMessage", count=2, timeout=5)
    assert calls[0].status == 429 and calls[1].status == 200
    assert calls[1].at - calls[0].at >= 1.0
    assert len(harness.slack.messages("C0OPS")) == 1


async def test_not_in_channel_falls_back_to_response_url(harness):
    """Where the bot may not post, the result still reaches the channel through response_url."""
    harness.slack.fail("chat.postMessage", status=200, error="channel_not_found", times=1)
    await harness.client.slash("whoami", user="U0VIEW", channel="G0PRIVATE")
    await harness.settle()
    assert harness.slack.responses[-1].get("response_type") == "in_channel"


async def test_secrets_never_reach_slack(harness):
    """No outbound call carries the signing secret, the bot token or a DSN password (I1)."""
    for text in ("health", "whoami", "help health", "audit"):
        await harness.client.slash(text, user="U0ADMIN")
        await harness.settle()
    outbound = json.dumps([c.args for c in harness.slack.calls] + harness.slack.responses)
    assert SECRET not in outbound and "xoxb-forge-test-token" not in outbound


async def test_metrics_count_commands_by_name_and_outcome(harness):
    """/metrics exposes forge's own counters after a command ran."""
    await harness.client.slash("whoami", user="U0VIEW")
    await harness.settle()
    status, body = await harness.get("/metrics")
    assert status == 200
    assert 'forge_commands_total{command="whoami",outcome="ok"}' in body
    assert "forge_command_duration_seconds_bucket" in body


async def test_healthz_and_readyz(harness):
    """/healthz says the process is up; /readyz that the state store answers."""
    assert (await harness.get("/healthz"))[0] == 200
    status, body = await harness.get("/readyz")
    assert status == 200 and json.loads(body)["state_store"] == "up"

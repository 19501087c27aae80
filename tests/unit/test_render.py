"""The renderer: Slack's limits, escaping, files for long output, the terminal and JSON forms."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bot.cli.terminal import to_json, to_text
from bot.core.dispatch import Outcome
from bot.core.result import Action, Result, Status, Table
from bot.slack.mrkdwn import escape
from bot.slack.outbox import Outbox, close_client, make_client
from bot.slack.render import MAX_BLOCKS, Meta, to_message
from bot.slack.reply import Reply
from tests.conftest import make_settings

META = Meta("U0OPS", datetime(2026, 11, 30, 3, 0, tzinfo=UTC), 42, "production")


def sections(message) -> list[str]:
    """Every section text of a message."""
    return [b["text"]["text"] for b in message.blocks if b["type"] == "section" and "text" in b]


def test_first_line_and_context_follow_the_product_shape():
    """Headline with symbol, command, status and environment; context with who, when, how long."""
    message = to_message(
        Outcome("result", Result("health", Status.WARNING, summary="5 of 6")), META
    )
    assert message.text == "⚠️ health — warning · production: 5 of 6"
    assert sections(message)[0] == "*⚠️ health — warning · production*"
    assert message.blocks[1]["elements"][0]["text"] == "<@U0OPS> · 2026-11-30 03:00:00 UTC · 42 ms"


def test_fields_are_split_ten_per_section_and_escaped():
    """At most 10 fields per section; values from backends are escaped."""
    fields = [(f"k{i}", "<script> & co") for i in range(23)]
    message = to_message(Outcome("result", Result("x", fields=fields)), META)
    field_sections = [b for b in message.blocks if "fields" in b]
    assert [len(b["fields"]) for b in field_sections] == [10, 10, 3]
    assert "&lt;script&gt; &amp; co" in field_sections[0]["fields"][0]["text"]


def test_long_table_goes_up_as_a_file_with_a_preview():
    """A table too long for a section is attached whole; the message previews under 3,000 chars."""
    rows = [[f"job-{i}", "failed", "x" * 40] for i in range(500)]
    message = to_message(
        Outcome("result", Result("dlq list", tables=[Table(["id", "state", "reason"], rows)])), META
    )
    assert all(len(t) <= 3000 for t in sections(message))
    [attachment] = message.attachments
    assert attachment.content.decode().count("\n") == 500 and "500 rows" in sections(message)[-1]


def test_long_text_goes_up_as_a_file():
    """Text beyond what a message should hold is attached."""
    message = to_message(Outcome("result", Result("logs", text="line\n" * 5000)), META)
    assert message.attachments and len(message.blocks) < MAX_BLOCKS


def test_block_count_never_exceeds_fifty():
    """A result with many tables stays within 50 blocks; the rest goes to a file."""
    tables = [Table(["a"], [["1"]], title=f"t{i}") for i in range(60)]
    message = to_message(Outcome("result", Result("db tables", tables=tables)), META)
    assert len(message.blocks) <= MAX_BLOCKS and message.attachments


def test_actions_become_buttons_that_carry_only_the_command_text():
    """Follow-up actions render as buttons with forge_run ids and the command as value."""
    result = Result(
        "queue health",
        actions=[Action("List DLQ", "dlq list email"), Action("Clear", "x", "danger")],
    )
    [actions] = [
        b for b in to_message(Outcome("result", result), META).blocks if b["type"] == "actions"
    ]
    assert [e["action_id"] for e in actions["elements"]] == ["forge_run:0", "forge_run:1"]
    assert (
        actions["elements"][0]["value"] == "dlq list email"
        and actions["elements"][1]["style"] == "danger"
    )


def test_private_outcome_is_one_escaped_line_with_usage():
    """Errors are one line plus the usage, escaped, never a stack trace."""
    message = to_message(
        Outcome("usage", message="Bad `limit` <x>", usage="audit [--limit LIMIT]"), META
    )
    assert (
        message.text == "❓ Bad `limit` &lt;x&gt;"
        and "Usage: `audit [--limit LIMIT]`" in sections(message)[1]
    )


def test_text_and_json_forms():
    """The terminal gets aligned text; --json gets a document with the exit code."""
    result = Result(
        "health",
        Status.CRITICAL,
        fields=[("Redis", "7.0")],
        tables=[Table(["a", "bb"], [["1", "2"]])],
    )
    text = to_text(Outcome("result", result), "staging")
    assert text.startswith("🔴 health — critical · staging") and "a  bb\n1  2" in text
    doc = json.loads(to_json(Outcome("result", result), "staging"))
    assert (
        doc["status"] == "critical" and doc["exit_code"] == 1 and doc["fields"] == {"Redis": "7.0"}
    )


def test_escape():
    """Slack's three control characters are escaped."""
    assert escape("<!here> & <@U1>") == "&lt;!here&gt; &amp; &lt;@U1&gt;"


@pytest.mark.parametrize("rows", [600])
async def test_reply_uploads_long_output_beside_the_message(slack, rows):
    """Delivered through Slack, long output lands as a message plus a file in its thread."""
    client = make_client(make_settings(slack_api_url=slack.url))
    reply = Reply(Outbox(client, 5), "C0OPS", "U0OPS")
    table = Table(["id", "reason"], [[str(i), "boom " * 8] for i in range(rows)])
    await reply.deliver(Outcome("result", Result("dlq list", tables=[table])), META)
    await close_client(client)
    [post] = slack.calls_to("chat.postMessage")
    [uploaded] = slack.files
    assert uploaded.channel_id == "C0OPS" and uploaded.thread_ts == post.response["ts"]
    assert uploaded.content.decode().count("\n") == rows

"""Typed cells drawn three ways: Slack mrkdwn (strs escaped, cells live), the terminal, JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bot.cli.terminal import to_json, to_text
from bot.core.dispatch import Outcome
from bot.core.result import Result, Status, Table
from bot.slack.mrkdwn import chunks, clip, mrkdwn
from bot.text.cells import (
    Channel,
    Code,
    Emphasis,
    Link,
    Pre,
    StatusCell,
    Strong,
    Struck,
    Time,
    User,
    join,
    lines,
    map_text,
    plain,
    rich,
)

HOSTILE = "<!channel> <@U0EVIL> <https://evil.example|x> & co"
AT = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cell", "drawn"),
    [
        (User("U0OPS"), "<@U0OPS>"),
        (User("cli:alice"), "cli:alice"),
        (User("<!here>"), "&lt;!here&gt;"),
        (Channel("C0OPS"), "<#C0OPS>"),
        (Channel("C0OPS|x><!here"), "#C0OPS|x&gt;&lt;!here"),
        (Code("dlq clear email"), "`dlq clear email`"),
        (Code("a`b\n<!here>"), "`a'b &lt;!here&gt;`"),
        (Pre("x\n```<@U1>"), "```x\n'''&lt;@U1&gt;```"),
        (Link("https://a.example/?q=1&r=<@U1>|y", "Run|book"), None),
        (Link("javascript:alert(1)", "click"), "click (javascript:alert(1))"),
        (Emphasis("<!here>"), "_&lt;!here&gt;_"),
        (Strong(rich("Dry run of ", Code("x"))), "*Dry run of `x`*"),
        (Struck("done <@U1>"), "~done &lt;@U1&gt;~"),
        (StatusCell(Status.WARNING), "⚠️ warning"),
        (Time(AT), "<!date^1796007600^{date_short_pretty} {time}|2026-11-30 03:00 UTC>"),
    ],
)
def test_slack_draws_forge_cells_and_escapes_what_they_carry(cell, drawn):
    """Each cell is markup forge builds; the text inside it is escaped and cannot break out."""
    if drawn is not None:
        assert mrkdwn(cell) == drawn
    out = mrkdwn(rich(HOSTILE, " ", cell))
    assert "<!channel>" not in out and "<@U0EVIL>" not in out and "<https://evil" not in out


def test_a_link_cannot_smuggle_markup_through_its_url_or_label():
    """`|`, `<`, `>` and `&` in a URL are encoded; the label is escaped."""
    drawn = mrkdwn(Link("https://a.example/?q=1&r=<@U1>|y", "Run|book <!here>"))
    assert drawn == "<https://a.example/?q=1&amp;r=%3C@U1%3E%7Cy|Run/book &lt;!here&gt;>"


def test_plain_strs_are_always_plain_text():
    """A str is escaped wherever it appears in a text, even beside cells."""
    text = rich("Would remove ", Code("email"), f" {HOSTILE}")
    assert mrkdwn(text) == (
        "Would remove `email` &lt;!channel&gt; &lt;@U0EVIL&gt; "
        "&lt;https://evil.example|x&gt; &amp; co"
    )


def test_clip_never_cuts_an_entity_a_link_or_a_code_block():
    """Cut markup ends before a half entity or link, and closes an open code block."""
    assert clip("a &lt;!here&gt;", 8) == "a …"
    assert clip("see <https://a.example|x> now", 12) == "see …"
    assert clip("```" + "x" * 50 + "```", 20) == "```" + "x" * 13 + "```…"


def test_long_text_is_split_between_lines_and_code_blocks_stay_closed():
    """Pieces stay within the limit; a preformatted block split in two is fenced in both."""
    text = lines("intro", Pre("\n".join(f"line {i}" for i in range(100))), "outro")
    pieces = chunks(text, 300)
    assert len(pieces) > 2 and all(len(m) <= 300 for m, _ in pieces)
    assert all(m.count("```") % 2 == 0 for m, _ in pieces)
    assert "\n".join(p for _, p in pieces).split("\n")[0] == "intro"


def test_terminal_draws_cells_its_own_way():
    """The terminal shows `@U0OPS`, `#C0OPS`, plain code and `label (url)`; never Slack markup."""
    result = Result(
        "whoami",
        summary=rich(User("U0OPS"), " is operator in ", Channel("C0OPS")),
        fields=[("Runbook", Link("https://runbook.example/q", "Runbook"))],
        tables=[Table(["who", "command"], [[User("U0OPS"), Code("dlq clear email")]])],
        text=join("\n", [rich("Run ", Code("queue health")), Pre("a <b>")]),
    )
    shown = to_text(Outcome("result", result), "staging")
    assert "@U0OPS is operator in #C0OPS" in shown
    assert "Runbook (https://runbook.example/q)" in shown
    assert "Run queue health\na <b>" in shown and "dlq clear email" in shown
    assert "<@" not in shown and "<#" not in shown and "`" not in shown


def test_json_keeps_machine_values():
    """A lone cell in a field or table cell is its ID or URL in JSON; texts are plain."""
    result = Result(
        "approvals",
        summary=rich("1 pending for ", User("U0OPS")),
        fields=[("Requested by", User("U0OPS")), ("Link", Link("https://x.example", "x"))],
        tables=[Table(["who", "where", "n"], [[User("U0OPS"), Channel("C0OPS"), 3]])],
    )
    doc = json.loads(to_json(Outcome("result", result), "staging"))
    assert doc["summary"] == "1 pending for @U0OPS"
    assert doc["fields"] == {"Requested by": "U0OPS", "Link": "https://x.example"}
    assert doc["tables"][0]["rows"] == [["U0OPS", "C0OPS", 3]]
    assert set(doc) >= {"ok", "command", "status", "fields", "tables", "text", "actions", "data"}


def test_redaction_reaches_inside_cells_but_not_ids():
    """map_text applies to every str and to the words inside cells; IDs stay as they are."""
    text = rich("token=abc ", Code("token=abc"), User("U0OPS"), Link("https://x/?token=abc", "t"))
    masked = map_text(text, lambda s: s.replace("abc", "***"))
    assert plain(masked) == "token=*** token=***@U0OPSt (https://x/?token=***)"

"""Tables: Slack's table block where it fits, monospace aligned by display width where not."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import commands  # noqa: F401  (registers the commands)
from bot.core.dispatch import Outcome
from bot.core.paging import Page, page_of
from bot.core.registry import REGISTRY
from bot.core.result import Result, Status, Table, display_width, table_text
from bot.playground.table_rules import table_error
from bot.slack.render import Meta, table_block, to_message
from bot.text.cells import Code, Link, StatusCell, User

META = Meta("U0OPS", datetime(2026, 11, 30, 3, 0, tzinfo=UTC), 42, "production")


def blocks_of(*tables: Table) -> list[dict]:
    return to_message(Outcome("result", Result("db tables", tables=list(tables))), META).blocks


def test_a_table_that_fits_is_one_table_block_placed_last():
    """Header row first, plain cells as raw_text, cells as rich_text elements; below the rest."""
    table = Table(
        ["queue", "owner", "state", "runbook"],
        [["email", User("U0OPS"), StatusCell(Status.WARNING), Link("https://x.example/rb", "rb")]],
    )
    blocks = blocks_of(table)
    assert blocks[-1]["type"] == "table" and "```" not in str(blocks)
    header, row = blocks[-1]["rows"]
    assert header[0] == {"type": "raw_text", "text": "queue"}
    assert row[0] == {"type": "raw_text", "text": "email"}
    [owner] = row[1]["elements"][0]["elements"]
    assert owner == {"type": "user", "user_id": "U0OPS"}
    assert row[3]["elements"][0]["elements"][0]["type"] == "link"
    assert table_error(blocks) is None


def test_more_than_99_rows_or_a_second_table_fall_back_to_monospace():
    """100 data rows + header exceed 100 rows; the second of two tables is monospace."""
    big = Table(["id"], [[str(i)] for i in range(100)])
    assert not [b for b in blocks_of(big) if b["type"] == "table"]
    fits = Table(["id"], [[str(i)] for i in range(99)])
    assert [b["type"] for b in blocks_of(fits)][-1] == "table"
    blocks = blocks_of(Table(["a"], [["1"]]), Table(["b"], [["2"]], title="second"))
    assert [b["type"] for b in blocks].count("table") == 1
    assert any("```b" in b.get("text", {}).get("text", "") for b in blocks)


def test_21_columns_do_not_make_a_table_block():
    """Slack's rows hold at most 20 cells."""
    wide = Table([f"c{i}" for i in range(21)], [[str(i) for i in range(21)]])
    assert not [b for b in blocks_of(wide) if b["type"] == "table"]


def test_short_rows_are_padded_and_empty_cells_hold_a_dash():
    """Every row as wide as the header; Slack's raw_text needs some text."""
    block = table_block(Table(["a", "b", "c"], [["1", ""]]))
    assert [c["text"] for c in block["rows"][1]] == ["1", "—", "—"]


def test_emoji_status_cells_line_up_in_monospace():
    """✅, ⚠️ and 🔴 take two columns each; the next column starts at the same display column."""
    table = Table(
        ["status", "queue"],
        [[StatusCell(s), "email"] for s in (Status.OK, Status.WARNING, Status.CRITICAL)],
    )
    lines = table_text(table).splitlines()[1:]
    starts = {display_width(line[: line.index("email")]) for line in lines}
    assert len(starts) == 1
    assert display_width("⚠️ warning") == display_width("✅ warning") == 10
    assert display_width("ok") == 2 and display_width(Code("x").text) == 1


def test_the_double_refuses_tables_slack_would_refuse():
    """Two tables, 101 rows, 21 cells, an unknown cell type or a bad column setting."""
    row = [{"type": "raw_text", "text": "x"}]
    ok = {"type": "table", "rows": [row]}
    assert table_error([ok]) is None
    assert "only_one_table_allowed" in str(table_error([ok, ok]))
    assert table_error([{"type": "table", "rows": [row] * 101}])["error"] == "invalid_blocks"
    assert table_error([{"type": "table", "rows": [row * 21]}]) is not None
    assert table_error([{"type": "table", "rows": [[{"type": "mrkdwn", "text": "*x*"}]]}])
    assert table_error([ok | {"column_settings": [{"align": "middle"}]}])
    assert table_error([ok | {"column_settings": [{"align": "right", "is_wrapped": True}]}]) is None


def test_page_of_and_its_label():
    """Pages of 20; a page past the end shows the last; the next page's command text."""
    rows, page = page_of(list(range(45)), 2)
    assert rows == list(range(20, 40)) and page.label == "page 2 of 3 · 20 per page"
    rows, page = page_of(list(range(45)), 9)
    assert rows == list(range(40, 45)) and page.number == 3
    shown = Page(1, 5, 12, "audit --page=1 --limit 5")
    assert shown.command(2) == "audit --limit 5 --page 2"


@pytest.mark.parametrize(
    "name",
    [
        "dlq list",
        "db slow",
        "db top",
        "db tables",
        "audit",
        "es indices",
        "incident list",
        "approvals",
    ],
)
def test_every_long_list_takes_a_page(name):
    """The lists issue 19 names page through the one mechanism: a `--page` option, last."""
    spec = REGISTRY.get(name)
    assert spec is not None and spec.usage.endswith("[--page PAGE]")

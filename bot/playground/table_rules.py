"""Slack's table block as its reference documents it, checked where messages arrive.

A message holds at most one table; a table has 1 to 100 rows of 1 to 20 cells, each cell
`raw_text` (a text) or `rich_text` (elements); column_settings has at most 20 entries of
`align` (left, center, right) and `is_wrapped` (a boolean); block_id is at most 255 characters.
"""

from __future__ import annotations

from typing import Any

from bot.playground.slack_types import Json, err

MAX_ROWS, MAX_CELLS, MAX_SETTINGS, MAX_BLOCK_ID = 100, 20, 20, 255
ALIGN = {"left", "center", "right"}


def table_error(blocks: Any) -> Json | None:
    """Slack's invalid_blocks answer for a message whose table blocks break the rules, or None."""
    if not isinstance(blocks, list):
        return None
    tables = [b for b in blocks if isinstance(b, dict) and b.get("type") == "table"]
    if not tables:
        return None
    problem = "only_one_table_allowed" if len(tables) > 1 else _problem(tables[0])
    if problem is None:
        return None
    return err("invalid_blocks") | {"response_metadata": {"messages": [f"[ERROR] {problem}"]}}


def _problem(table: Json) -> str | None:
    rows = table.get("rows")
    if not isinstance(rows, list) or not 1 <= len(rows) <= MAX_ROWS:
        return f"rows must be a list of 1 to {MAX_ROWS} rows"
    for i, row in enumerate(rows):
        if not isinstance(row, list) or not 1 <= len(row) <= MAX_CELLS:
            return f"row {i} must be a list of 1 to {MAX_CELLS} cells"
        bad = next((j for j, cell in enumerate(row) if not _cell_ok(cell)), None)
        if bad is not None:
            return f"cell {bad} of row {i} is neither raw_text nor rich_text"
    block_id = table.get("block_id")
    if block_id is not None and not (isinstance(block_id, str) and len(block_id) <= MAX_BLOCK_ID):
        return "block_id must be a string of at most 255 characters"
    return _settings_problem(table.get("column_settings"))


def _cell_ok(cell: Any) -> bool:
    if not isinstance(cell, dict):
        return False
    if cell.get("type") == "raw_text":
        return isinstance(cell.get("text"), str)
    elements = cell.get("elements")
    return cell.get("type") == "rich_text" and isinstance(elements, list) and bool(elements)


def _settings_problem(settings: Any) -> str | None:
    if settings is None:
        return None
    if not isinstance(settings, list) or len(settings) > MAX_SETTINGS:
        return f"column_settings must be a list of at most {MAX_SETTINGS}"
    for setting in settings:
        if setting is None:
            continue
        if not isinstance(setting, dict) or set(setting) - {"align", "is_wrapped"}:
            return "a column setting holds only align and is_wrapped"
        if "align" in setting and setting["align"] not in ALIGN:
            return "align is left, center or right"
        if "is_wrapped" in setting and not isinstance(setting["is_wrapped"], bool):
            return "is_wrapped is a boolean"
    return None

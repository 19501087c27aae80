"""An Outcome as Block Kit: the result for the channel, ⏳ progress, or an error for the caller.

Every text goes through bot.slack.mrkdwn, which escapes plain strs and draws forge's cells; no
other module writes mrkdwn. Files uploaded beside a message hold plain text, never mrkdwn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.core.dispatch import Outcome
from bot.core.paging import Page
from bot.core.result import Action, Attachment, Result, Table, table_text
from bot.slack.mrkdwn import chunks, clip, mrkdwn, table_cell
from bot.text.cells import Code, Emphasis, Pre, Strong, Text, User, plain, rich

MAX_BLOCKS = 50
SECTION_CHARS = 2900
FIELD_CHARS = 1900
FIELDS_PER_SECTION = 10
INLINE_TEXT_CHARS = 8000
PREVIEW_CHARS = 1500
BUTTONS_PER_ACTIONS = 5
MESSAGE_TEXT_CHARS = 3000
PAGE_ACTION = "forge_page"
TABLE_ROWS = 100
TABLE_CELLS = 20


@dataclass
class Message:
    """A Slack message: its notification text, blocks, and files to upload beside it."""

    text: str
    blocks: list[dict[str, Any]]
    attachments: list[Attachment] = field(default_factory=list)


@dataclass(frozen=True)
class Meta:
    """Who ran it, when, how long, where: the context line."""

    user_id: str
    at: datetime
    duration_ms: int
    environment: str


def message(text: Text, blocks: list[dict[str, Any]], files: list[Attachment] | None = None):
    """A Message whose notification text is the escaped text."""
    return Message(clip(mrkdwn(text), MESSAGE_TEXT_CHARS), blocks, files or [])


def image_block(file_id: str, title: str) -> dict[str, Any]:
    """A picture forge uploaded (a Slack file ID), with its title as plain text and alt text."""
    return {
        "type": "image",
        "slack_file": {"id": file_id},
        "alt_text": title[:2000],
        "title": {"type": "plain_text", "text": title[:2000]},
    }


def section(text: Text, limit: int = SECTION_CHARS) -> dict[str, Any]:
    """A mrkdwn section block of the text."""
    return _markup_section(clip(mrkdwn(text), limit))


def _markup_section(markup: str) -> dict[str, Any]:
    """A section of markup this module has already drawn and clipped."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": markup}}


def context(*items: Text) -> dict[str, Any]:
    """A context block: small print, one element an item."""
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": clip(mrkdwn(i), SECTION_CHARS)} for i in items],
    }


def headline(result: Result, environment: str) -> str:
    """`✅ health — ok · production`: the first line of every result."""
    return f"{result.status.symbol} {result.command} — {result.status.value} · {environment}"


def field_sections(fields: Sequence[tuple[Text, Text]]) -> list[dict[str, Any]]:
    """Key figures as section fields, at most ten a section."""
    return [
        {
            "type": "section",
            "fields": [
                {
                    "type": "mrkdwn",
                    "text": clip(mrkdwn(rich(Strong(plain(k)), "\n", v)), FIELD_CHARS),
                }
                for k, v in fields[start : start + FIELDS_PER_SECTION]
            ],
        }
        for start in range(0, len(fields), FIELDS_PER_SECTION)
    ]


def action_blocks(actions: list[Action]) -> list[dict[str, Any]]:
    """Follow-up command buttons (value: the command), checked for the clicker like typed ones."""
    blocks = []
    for start in range(0, len(actions), BUTTONS_PER_ACTIONS):
        elements = []
        for i, action in enumerate(actions[start : start + BUTTONS_PER_ACTIONS], start):
            button = {
                "type": "button",
                "action_id": f"forge_run:{i}",
                "value": action.command[:2000],
                "text": {"type": "plain_text", "text": action.label[:75]},
            }
            if action.style in ("primary", "danger"):
                button["style"] = action.style
            elements.append(button)
        blocks.append({"type": "actions", "elements": elements})
    return blocks


def page_blocks(page: Page | None) -> list[dict[str, Any]]:
    """`page 2 of 9 · 20 per page`, and Prev/Next buttons that list a page again when clicked."""
    if page is None or page.pages < 2:
        return []
    buttons = []
    for step, label, number in (
        ("prev", "◀ Prev", page.number - 1),
        ("next", "Next ▶", page.number + 1),
    ):
        if 1 <= number <= page.pages:
            buttons.append(
                {
                    "type": "button",
                    "action_id": f"{PAGE_ACTION}:{step}",
                    "value": page.command(number)[:2000],
                    "text": {"type": "plain_text", "text": label},
                }
            )
    return [context(page.label), {"type": "actions", "elements": buttons}]


def to_message(outcome: Outcome, meta: Meta) -> Message:
    """Block Kit for an outcome: a result for the channel, or a one-line error for the caller."""
    if outcome.result is None:
        return _private_message(outcome)
    return _result_message(outcome.result, meta)


def running_message(note: Text, meta: Meta) -> Message:
    """The ⏳ placeholder a slow command edits in place."""
    line = rich("⏳ ", note, f" · {meta.environment}")
    return message(line, [section(line), _context(meta)])


def _private_message(outcome: Outcome) -> Message:
    """A refusal or failure, with the usage when there is one."""
    icon = {"denied": "🚫", "usage": "❓", "unknown": "❓"}.get(outcome.kind, "❌")
    line = rich(f"{icon} ", outcome.message)
    blocks = [section(line)]
    if outcome.usage:
        blocks.append(section(rich("Usage: ", Code(outcome.usage))))
    return message(line, blocks)


def _context(meta: Meta) -> dict[str, Any]:
    """Who ran it, when and how long, as a context line."""
    when = meta.at.strftime("%Y-%m-%d %H:%M:%S UTC")
    return context(rich(User(meta.user_id), f" · {when} · {meta.duration_ms} ms"))


def _result_message(result: Result, meta: Meta) -> Message:
    """A result as blocks, each with its plain text for the overflow file."""
    files = list(result.attachments)
    head = headline(result, meta.environment)
    shown: list[tuple[dict[str, Any], str]] = [(section(Strong(head)), head)]
    shown.append((_context(meta), ""))
    if result.summary:
        shown.append((section(result.summary), plain(result.summary)))
    shown.extend((b, "") for b in field_sections(result.fields))
    native = next((t for t in result.tables if fits_table_block(t)), None)
    for table in result.tables:
        if table is not native:
            shown.extend(_table_blocks(result.command, table, files))
    shown.extend(_text_blocks(result, files))
    shown.extend((b, "") for b in action_blocks(result.actions))
    shown.extend((b, "") for b in page_blocks(result.page))
    last = _native_blocks(native) if native else []
    room = MAX_BLOCKS - len(last)
    if len(shown) > room:
        rest = "\n\n".join(p for _, p in shown[room - 1 :] if p)
        files.append(Attachment(f"{_slug(result.command)}-more.txt", rest.encode()))
        shown = shown[: room - 1] + [(section(Emphasis("More in the attached file.")), "")]
    shown.extend(last)
    return message(
        rich(head, ": " if result.summary else "", result.summary), [b for b, _ in shown], files
    )


def fits_table_block(table: Table) -> bool:
    """Slack's table block holds at most 100 rows (the header is one) of at most 20 cells."""
    return 0 < len(table.columns) <= TABLE_CELLS and len(table.rows) + 1 <= TABLE_ROWS


def table_block(table: Table) -> dict[str, Any]:
    """A native table block: the header row, then each row padded to the header's width."""
    width = len(table.columns)
    rows = [[table_cell(c) for c in table.columns]]
    rows += [[table_cell(c) for c in (list(row) + [""] * width)[:width]] for row in table.rows]
    return {"type": "table", "rows": rows}


def _native_blocks(table: Table) -> list[tuple[dict[str, Any], str]]:
    """The message's one table block, last: Slack shows a table below the other blocks anyway."""
    title = plain(table.title)
    blocks = [(section(Strong(title)), title)] if title else []
    return [*blocks, (table_block(table), table_text(table))]


def _table_blocks(
    command: str, table: Table, files: list[Attachment]
) -> list[tuple[dict[str, Any], str]]:
    """A table as monospace, or a preview and the whole table as a file."""
    rendered = table_text(table)
    title = plain(table.title)
    blocks = [(section(Strong(title)), title)] if title else []
    if len(mrkdwn(Pre(rendered))) <= SECTION_CHARS:
        return [*blocks, (section(Pre(rendered)), rendered)]
    name = f"{_slug(title or command)}.txt"
    files.append(Attachment(name, rendered.encode(), title or command))
    keep = max(1, len(table.rows) * SECTION_CHARS // len(mrkdwn(rendered)) - 2)
    head = table_text(Table(table.columns, table.rows[:keep]))
    note = Emphasis(f"{len(table.rows)} rows; all of them in {name}.")
    return [*blocks, (section(rich(Pre(head[: SECTION_CHARS - 80]), "\n", note)), head)]


def _text_blocks(result: Result, files: list[Attachment]) -> list[tuple[dict[str, Any], str]]:
    """The text in sections split between lines, or a preview and a file."""
    if not result.text:
        return []
    text = plain(result.text)
    if len(text) > INLINE_TEXT_CHARS:
        name = f"{_slug(result.command)}.txt"
        files.append(Attachment(name, text.encode(), result.command))
        first, shown = chunks(result.text, PREVIEW_CHARS)[0]
        more = mrkdwn(Emphasis(f"…the rest is in {name}."))
        return [(_markup_section(f"{first}\n{more}"), shown)]
    return [(_markup_section(m), p) for m, p in chunks(result.text, SECTION_CHARS)]


def _slug(text: str) -> str:
    """A file name stem from a command or title."""
    return "-".join(text.lower().split())[:40] or "forge"

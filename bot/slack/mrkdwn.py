"""Text as Slack mrkdwn: every plain str escaped, only forge-built cells drawn as markup.

This is the one place where text meets Slack's markup. A str from a user or a backend can hold
`<!channel>`, `<@U…>` or `<url|label>`; escaped (`&`, `<`, `>`) it is shown, never rendered.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from bot.text.cells import (
    Cell,
    Channel,
    Code,
    Emphasis,
    Link,
    Pre,
    StatusCell,
    Strong,
    Struck,
    Text,
    Time,
    User,
    parts,
    plain,
    shorten,
)

USER_ID = re.compile(r"[UW][A-Z0-9]{2,20}")
CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,20}")
WEB = re.compile(r"(?i)(?:https?://|mailto:)[^\s]+")
FENCE = "```"
NO_FENCE = "'''"
MARKS = {Emphasis: "_", Strong: "*", Struck: "~"}


def escape(text: str) -> str:
    """Slack's three control characters as entities: the text is shown, never parsed."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mrkdwn(value: Text) -> str:
    """The text as mrkdwn: strs escaped, cells drawn."""
    return "".join(escape(p) if isinstance(p, str) else draw(p) for p in parts(value))


def draw(cell: Cell) -> str:
    """One cell as mrkdwn; anything Slack would not take as meant is shown as plain text."""
    match cell:
        case User(id=user_id) if USER_ID.fullmatch(user_id):
            return f"<@{user_id}>"
        case Channel(id=channel_id) if CHANNEL_ID.fullmatch(channel_id):
            return f"<#{channel_id}>"
        case Code(text=text) if text.strip():
            return "`" + escape(" ".join(text.replace("`", "'").splitlines())) + "`"
        case Pre(text=text) if text:
            return FENCE + escape(text.replace(FENCE, NO_FENCE)) + FENCE
        case Link(url=url, label=label) if WEB.fullmatch(url):
            target = escape(quote(url, safe="/:?#[]@!$&'()*+,;=%~-._"))
            shown = escape(" ".join(label.replace("|", "/").split()))
            return f"<{target}|{shown}>" if shown else f"<{target}>"
        case Emphasis(text=text) | Strong(text=text) | Struck(text=text) if inner := _inline(text):
            mark = MARKS[type(cell)]
            return f"{mark}{inner}{mark}"
        case StatusCell(status=status):
            return f"{status.symbol} {status.value}"
        case Time(at=at):
            return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}|{plain(cell)}>"
        case _:
            return escape(plain(cell))


def _inline(text: Text) -> str:
    """Markup on one line, trimmed: Slack sets off a span only within a line."""
    return " ".join(mrkdwn(text).split())


def clip(markup: str, limit: int) -> str:
    """Markup cut to `limit` characters without splitting an entity, a link or a code block."""
    if len(markup) <= limit:
        return markup
    cut = markup[: max(0, limit - len(FENCE) - 1)]
    opened = cut.rfind("<")
    if opened > cut.rfind(">"):
        cut = cut[:opened]
    amp = cut.rfind("&")
    if amp > cut.rfind(";"):
        cut = cut[:amp]
    if cut.count(FENCE) % 2:
        cut += FENCE
    return cut + "…"


def chunks(value: Text, limit: int) -> list[tuple[str, str]]:
    """The text as mrkdwn pieces of at most `limit` characters, split between lines; each piece
    with its plain text."""
    pieces: list[tuple[str, str]] = []
    current: list[Row] = []
    size = 0
    for row in _rows(value):
        extra = len(row[1]) + 1 + (2 * len(FENCE) if row[0] else 0)
        if current and size + extra > limit:
            pieces.append(_joined(current))
            current, size = [], 0
        current.append((row[0], clip(row[1], limit - 2 * len(FENCE) - 1), row[2]))
        size += extra
    if current:
        pieces.append(_joined(current))
    return [p for p in pieces if p[0].strip()]


Row = tuple[int, str, str]


def _rows(value: Text) -> list[Row]:
    """Lines as (preformatted block or 0, markup, plain text)."""
    rows: list[Row] = []
    line, text, block, after_block = "", "", 0, False
    for part in parts(value):
        if isinstance(part, Pre):
            if line:
                rows.append((0, line, text))
            block, line, text, after_block = block + 1, "", "", True
            rows.extend(
                (block, escape(t.replace(FENCE, NO_FENCE)), t) for t in part.text.split("\n")
            )
            continue
        if isinstance(part, str):
            markup, shown = escape(part), part
        else:
            markup, shown = draw(part).replace("\n", " "), plain(part).replace("\n", " ")
        if after_block and shown.startswith("\n"):
            markup, shown = markup[1:], shown[1:]
        after_block = False
        (first, *rest), (first_plain, *rest_plain) = markup.split("\n"), shown.split("\n")
        line, text = line + first, text + first_plain
        for more, more_plain in zip(rest, rest_plain, strict=True):
            rows.append((0, line, text))
            line, text = more, more_plain
    if line:
        rows.append((0, line, text))
    return rows


def _joined(rows: list[Row]) -> tuple[str, str]:
    """Rows as one piece of markup (fenced where preformatted) and its plain text."""
    out: list[str] = []
    for i, (group, line, _) in enumerate(rows):
        opens = group and (i == 0 or rows[i - 1][0] != group)
        closes = group and (i == len(rows) - 1 or rows[i + 1][0] != group)
        out.append(f"{FENCE if opens else ''}{line}{FENCE if closes else ''}")
    return "\n".join(out), "\n".join(r[2] for r in rows)


TABLE_CELL_CHARS = 500
EMPTY_CELL = "—"
STYLES = {Emphasis: "italic", Strong: "bold", Struck: "strike"}


def table_cell(value: Text) -> dict[str, Any]:
    """One cell of a table block: raw_text for plain text, rich_text elements for cells."""
    found = parts(shorten(value, TABLE_CELL_CHARS))
    if all(isinstance(p, str) for p in found):
        text = " ".join(plain(value).split())[:TABLE_CELL_CHARS]
        return {"type": "raw_text", "text": text or EMPTY_CELL}
    elements = [_rich_element(p) for p in found]
    return {"type": "rich_text", "elements": [{"type": "rich_text_section", "elements": elements}]}


def _rich_element(part: str | Cell) -> dict[str, Any]:
    """A rich_text element: Slack draws it; nothing in it is parsed as markup."""
    match part:
        case str():
            return {"type": "text", "text": " ".join(part.split()) or " "}
        case User(id=user_id) if USER_ID.fullmatch(user_id):
            return {"type": "user", "user_id": user_id}
        case Channel(id=channel_id) if CHANNEL_ID.fullmatch(channel_id):
            return {"type": "channel", "channel_id": channel_id}
        case Link(url=url, label=label) if WEB.fullmatch(url):
            return {"type": "link", "url": url} | ({"text": label} if label else {})
        case Time(at=at):
            return {
                "type": "date",
                "timestamp": int(at.timestamp()),
                "format": "{date_short_pretty} {time}",
                "fallback": plain(part),
            }
        case Code() | Pre():
            return {"type": "text", "text": _one_line(part), "style": {"code": True}}
        case Emphasis() | Strong() | Struck():
            return {"type": "text", "text": _one_line(part), "style": {STYLES[type(part)]: True}}
        case _:
            return {"type": "text", "text": _one_line(part)}


def _one_line(part: Cell) -> str:
    return " ".join(plain(part).split()) or " "

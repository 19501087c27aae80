"""Typed cells: text forge builds itself (a mention, code, a link, a time) beside plain str.

A handler's text is a `Text`: a plain str, one cell, or a `Rich` sequence of both. A plain str
is always plain text, whatever characters it holds; only cells become markup, and each renderer
(Slack, the terminal, JSON) draws them its own way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from bot.core.result import Status


SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,20}")


class _Joins:
    """`+` with str and other cells builds a Rich; str() is the plain form."""

    def __add__(self, other: Text) -> Rich:
        """This text followed by another."""
        return rich(self, other)  # type: ignore[arg-type]

    def __radd__(self, other: Text) -> Rich:
        """Another text followed by this one."""
        return rich(other, self)  # type: ignore[arg-type]

    def __str__(self) -> str:
        """The plain text (logs, exceptions, stored rows)."""
        return plain(self)  # type: ignore[arg-type]


@dataclass(frozen=True)
class User(_Joins):
    """A Slack user (or the terminal's `cli:name`), by ID."""

    id: str
    name: str = ""


@dataclass(frozen=True)
class Channel(_Joins):
    """A Slack channel, by ID."""

    id: str


@dataclass(frozen=True)
class Code(_Joins):
    """Inline code: a command, a name, an identifier."""

    text: str


@dataclass(frozen=True)
class Pre(_Joins):
    """Preformatted lines: log lines, a stack trace, job data."""

    text: str


@dataclass(frozen=True)
class Link(_Joins):
    """A link forge shows under a label."""

    url: str
    label: str = ""


@dataclass(frozen=True)
class Emphasis(_Joins):
    """Text set off lightly (italics in Slack)."""

    text: Text


@dataclass(frozen=True)
class Strong(_Joins):
    """Text set off strongly (bold in Slack)."""

    text: Text


@dataclass(frozen=True)
class Struck(_Joins):
    """Text struck through: a step that is done."""

    text: Text


@dataclass(frozen=True)
class StatusCell(_Joins):
    """A status as its symbol and word."""

    status: Status


@dataclass(frozen=True)
class Time(_Joins):
    """A moment; Slack shows it in the reader's time zone."""

    at: datetime


Cell: TypeAlias = (
    User | Channel | Code | Pre | Link | Emphasis | Strong | Struck | StatusCell | Time
)
CELLS = (User, Channel, Code, Pre, Link, Emphasis, Strong, Struck, StatusCell, Time)
Part: TypeAlias = "str | Cell"


@dataclass(frozen=True)
class Rich(_Joins):
    """Plain strs and cells in reading order."""

    parts: tuple[Part, ...] = ()

    def __bool__(self) -> bool:
        """False for an empty text."""
        return bool(self.parts)

    def __contains__(self, words: str) -> bool:
        """True when the plain text holds the words."""
        return words in plain(self)


Text: TypeAlias = "str | Cell | Rich"


def parts(value: Text) -> tuple[Part, ...]:
    """The strs and cells of a text, in order."""
    if isinstance(value, Rich):
        return value.parts
    if isinstance(value, CELLS):
        return (value,)
    text = value if isinstance(value, str) else str(value)  # numbers in table rows
    return (text,) if text else ()


def rich(*items: Text | None) -> Rich:
    """One Rich from strs, cells and Rich values (None and "" are skipped)."""
    out: list[Part] = []
    for item in items:
        for part in parts(item) if item is not None else ():
            if isinstance(part, str) and out and isinstance(out[-1], str):
                out[-1] += part
            elif part != "":
                out.append(part)
    return Rich(tuple(out))


def join(separator: Text, items: Iterable[Text]) -> Rich:
    """The items with the separator between them, like str.join."""
    out: list[Text] = []
    for i, item in enumerate(items):
        out.extend([separator, item] if i else [item])
    return rich(*out)


def lines(*items: Text | None) -> Rich:
    """The items one per line; None is left out, "" is an empty line."""
    return join("\n", [i for i in items if i is not None])


def shorten(value: Text, limit: int) -> Text:
    """The text cut to `limit` characters of plain text; a cell that does not fit is left out."""
    if len(plain(value)) <= limit:
        return value
    out: list[Part] = []
    for part in parts(value):
        room = limit - len(plain(Rich(tuple(out))))
        if len(plain(part)) > room:
            out.extend([part[:room]] if isinstance(part, str) and room > 0 else [])
            break
        out.append(part)
    return Rich(tuple(out))


def plain(value: Text) -> str:
    """The text without markup: what logs, stored rows, files and exceptions hold."""
    return "".join(p if isinstance(p, str) else _plain_cell(p) for p in parts(value))


def _plain_cell(cell: Cell) -> str:
    """One cell as plain text."""
    match cell:
        case User(id=user_id, name=name):
            return f"@{name or user_id}" if name or SLACK_USER.fullmatch(user_id) else user_id
        case Channel(id=channel_id):
            return f"#{channel_id}"
        case Link(url=url, label=label):
            return f"{label} ({url})" if label and label != url else url
        case StatusCell(status=status):
            return f"{status.symbol} {status.value}"
        case Time(at=at):
            return f"{at:%Y-%m-%d %H:%M UTC}"
        case Emphasis(text=text) | Strong(text=text) | Struck(text=text):
            return plain(text)
        case _:
            return cell.text


def machine(value: Text) -> Any:
    """The value for JSON: a lone cell as its ID, URL, ISO time or code; anything else as plain."""
    found = parts(value)
    if len(found) != 1 or isinstance(found[0], str):
        return plain(value)
    match found[0]:
        case User(id=key) | Channel(id=key):
            return key
        case Link(url=url):
            return url
        case Time(at=at):
            return at.isoformat()
        case StatusCell(status=status):
            return status.value
        case Emphasis(text=text) | Strong(text=text) | Struck(text=text):
            return plain(text)
        case cell:
            return cell.text


def map_text(value: Text, fn: Callable[[str], str]) -> Text:
    """The text with fn applied to every str and to the words inside cells (not to IDs or times)."""
    if isinstance(value, str):
        return fn(value)
    out: list[Part] = []
    for part in parts(value):
        if isinstance(part, str):
            out.append(fn(part))
        elif isinstance(part, Link):
            out.append(Link(fn(part.url), fn(part.label)))
        elif isinstance(part, Code | Pre):
            out.append(replace(part, text=fn(part.text)))
        elif isinstance(part, Emphasis | Strong | Struck):
            out.append(replace(part, text=map_text(part.text, fn)))
        else:
            out.append(part)
    return Rich(tuple(out)) if isinstance(value, Rich) else out[0]


def is_cell(value: object) -> bool:
    """True for a forge-built cell."""
    return isinstance(value, CELLS)

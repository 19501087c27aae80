"""The one shape every command returns; renderers turn it into Block Kit, text or JSON.

Its words are `Text` (bot.text.cells): plain str, or typed cells forge builds, never markup.
"""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.core.paging import Page
from bot.text.cells import Text, plain

if TYPE_CHECKING:
    from bot.core.scope import Scope

CELL_CHARS = 60
EMOJI_STYLE = "\ufe0f"

EXIT_OK, EXIT_FAILED, EXIT_USAGE = (
    0,
    1,
    2,
)  # the console script's: ok, failed or found problems, usage


class Status(enum.Enum):
    """Overall state of a result, worst last."""

    OK = "ok"
    RUNNING = "running"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def symbol(self) -> str:
        """The emoji shown before the status word."""
        return {"ok": "✅", "running": "⏳", "warning": "⚠️", "critical": "🔴"}[self.value]

    @property
    def rank(self) -> int:
        """Severity order for picking the worst of several statuses."""
        return list(Status).index(self)


def worst(statuses: list[Status]) -> Status:
    """The most severe of the statuses, OK when there are none."""
    return max(statuses, key=lambda s: s.rank, default=Status.OK)


@dataclass(frozen=True)
class Table:
    """Rows of cells under a header; the worst rows should come first."""

    columns: Sequence[str]
    rows: Sequence[Sequence[Text]]
    title: Text = ""


def table_text(table: Table) -> str:
    """Aligned monospace rows under a header, each cell as plain text on one line."""
    rows = [table.columns] + [[_cell(c) for c in row] for row in table.rows]
    widths = [
        max(display_width(r[i]) for r in rows if i < len(r)) for i in range(len(table.columns))
    ]
    lines = [
        "  ".join(c + " " * (w - display_width(c)) for c, w in zip(r, widths, strict=False))
        for r in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


def display_width(text: str) -> int:
    """Columns the text takes in a monospace font: emoji and wide characters take two."""
    width = 0
    for i, char in enumerate(text):
        if unicodedata.category(char) in ("Mn", "Me", "Cf"):  # marks, VS16, ZWJ
            continue
        wide = unicodedata.east_asian_width(char) in ("W", "F")
        emoji = text[i + 1 : i + 2] == EMOJI_STYLE  # ⚠️ is ⚠ drawn as a two-column emoji
        width += 2 if wide or emoji else 1
    return width


def _cell(value: Text) -> str:
    text = " ".join(plain(value).split())
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


@dataclass(frozen=True)
class Attachment:
    """A file to upload beside the message (or write, from the terminal)."""

    filename: str
    content: bytes
    title: str = ""


@dataclass(frozen=True)
class Action:
    """A follow-up button that runs another command, checked like the command itself."""

    label: str
    command: str
    style: str | None = None


@dataclass
class Result:
    """What a command returns: a status, key figures, tables, text, files and next steps.

    A destructive command's dry run sets `scope`: what exactly it would act on (bot.core.scope).
    """

    command: str
    status: Status = Status.OK
    summary: Text = ""
    fields: Sequence[tuple[Text, Text]] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    text: Text = ""
    attachments: list[Attachment] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    data: dict[str, object] = field(default_factory=dict)
    fails_at: Status = Status.WARNING
    page: Page | None = None
    scope: Scope | None = None

    @property
    def failed(self) -> bool:
        """True if the status reaches `fails_at`: CLI exit 1 (`verify` fails only on critical)."""
        return self.status.rank >= self.fails_at.rank

    @property
    def ok(self) -> bool:
        """True when the command found nothing wrong."""
        return self.status is Status.OK

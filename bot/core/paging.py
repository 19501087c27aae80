"""Long lists a page at a time: the `--page` argument, the page a result carries, the page's text.

A listing command takes `Paged` arguments and returns `page_of` its rows' page; the dispatcher
notes the command text on the page, and each renderer draws it (Slack: Prev and Next buttons that
run the command again for the clicker, through the dispatcher, and edit the message in place).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from bot.core.registry import Args, option

PAGE_SIZE = 20
MAX_PAGE = 100_000
PAGE_OPTION = re.compile(r"\s+--page(?:=|\s+)\S*")
T = TypeVar("T")


def page_option() -> Any:
    """The `--page N` option; a listing command's arguments end with it."""
    return option(1, ge=1, le=MAX_PAGE, help="which page of the list, from 1")


class Paged(Args):
    """Arguments of a command that lists a page at a time and takes nothing else."""

    page: int = page_option()


@dataclass(frozen=True)
class Page:
    """Which page a result shows, of how many rows, and the command text that lists them."""

    number: int
    size: int
    total: int
    text: str = ""

    @property
    def pages(self) -> int:
        """How many pages the rows fill (at least one)."""
        return max(1, -(-self.total // self.size))

    @property
    def label(self) -> str:
        """`page 2 of 9 · 20 per page`."""
        return f"page {self.number} of {self.pages} · {self.size} per page"

    def command(self, number: int) -> str:
        """The command text that lists page `number`."""
        return f"{PAGE_OPTION.sub('', ' ' + self.text).strip()} --page {number}"


def page_of(rows: Sequence[T], number: int, size: int = PAGE_SIZE) -> tuple[list[T], Page]:
    """The rows of page `number` (the last page when the list has shrunk below it)."""
    page = Page(number, size, len(rows))
    number = min(number, page.pages)
    start = (number - 1) * size
    return list(rows[start : start + size]), Page(number, size, len(rows))

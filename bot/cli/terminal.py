"""An Outcome for the terminal: readable text, or JSON for `forge run --json`.

Cells are drawn as a terminal reads them: a user as `@name` or the ID, a channel as `#C…`, code
as its text, a link as `label (url)`. JSON keeps machine values: a lone cell is its ID or URL.
"""

from __future__ import annotations

import getpass
import json
from typing import TYPE_CHECKING, Any

from bot.core.result import Result, table_text
from bot.text.cells import Text, machine, plain

if TYPE_CHECKING:
    from bot.core.dispatch import Outcome
    from bot.core.paging import Page


def headline(result: Result, environment: str) -> str:
    """`✅ health — ok · production`: the first line of every result."""
    return f"{result.status.symbol} {result.command} — {result.status.value} · {environment}"


def cli_user() -> str:
    """The terminal user's audit identity."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def to_text(outcome: Outcome, environment: str) -> str:
    """Readable terminal output for an outcome."""
    if outcome.result is None:
        return error_text(outcome.message, outcome.usage)
    return result_text(outcome.result, environment)


def error_text(message: Text, usage: str | None = None) -> str:
    """`error: …`, with the command's usage when the text did not parse."""
    return f"error: {plain(message)}" + (f'\nusage: forge run "{usage}"' if usage else "")


def result_text(result: Result, environment: str) -> str:
    """Readable terminal output for a result."""
    parts = [headline(result, environment)]
    if result.summary:
        parts.append(plain(result.summary))
    if result.fields:
        shown = [(plain(k), plain(v)) for k, v in result.fields]
        width = max(len(k) for k, _ in shown)
        parts.append("\n".join(f"  {k.ljust(width)}  {v}" for k, v in shown))
    parts.extend((f"{plain(t.title)}\n" if t.title else "") + table_text(t) for t in result.tables)
    if result.text:
        parts.append(plain(result.text))
    parts.extend(f'next: forge run "{a.command}"  ({a.label})' for a in result.actions)
    if result.page is not None and result.page.pages > 1:
        parts.append(result.page.label)
    return "\n\n".join(parts)


def to_json(outcome: Outcome, environment: str) -> str:
    """Machine-readable output for `forge run --json`."""
    if outcome.result is None:
        doc: dict[str, Any] = {
            "ok": False,
            "error": outcome.kind,
            "message": plain(outcome.message),
        }
        if outcome.usage:
            doc["usage"] = outcome.usage
        if outcome.error_id:
            doc["error_id"] = outcome.error_id
    else:
        doc = _result_doc(outcome.result, environment)
    doc["exit_code"] = outcome.exit_code
    return json.dumps(doc, indent=2, default=str, ensure_ascii=False)


def _result_doc(r: Result, environment: str) -> dict[str, Any]:
    """The JSON document of a result, with its keys as they have always been."""
    return {
        "ok": r.ok,
        "command": r.command,
        "status": r.status.value,
        "environment": environment,
        "summary": plain(r.summary),
        "fields": {plain(k): _value(v) for k, v in r.fields},
        "tables": [
            {
                "title": plain(t.title),
                "columns": t.columns,
                "rows": [[_value(v) for v in row] for row in t.rows],
            }
            for t in r.tables
        ],
        "text": plain(r.text),
        "actions": [{"label": a.label, "command": a.command} for a in r.actions],
        "files": [a.filename for a in r.attachments],
        "data": r.data,
    } | ({"page": _page_doc(r.page)} if r.page else {})


def _page_doc(page: Page) -> dict[str, Any]:
    """Which page of how many, and the command that lists the next one."""
    following = page.command(page.number + 1) if page.number < page.pages else None
    return {"number": page.number, "pages": page.pages, "size": page.size, "next": following}


def _value(value: Text) -> Any:
    """A number as it is; a text as its machine value."""
    return value if isinstance(value, int | float) else machine(value)

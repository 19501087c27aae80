"""The one renderer: an Outcome as Block Kit for Slack, as text for the terminal, or as JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.core.dispatch import Outcome
from bot.core.result import Action, Attachment, Result, Table

MAX_BLOCKS = 50
SECTION_CHARS = 2900
FIELD_CHARS = 1900
FIELDS_PER_SECTION = 10
CELL_CHARS = 60
INLINE_TEXT_CHARS = 8000
BUTTONS_PER_ACTIONS = 5


@dataclass
class Message:
    """A Slack message: plain text, blocks, and files to upload beside it."""

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


def escape(text: str) -> str:
    """Slack mrkdwn escaping for text that came from a user or a backend."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def headline(result: Result, environment: str) -> str:
    """`✅ health — ok · production`: the first line of every result."""
    return f"{result.status.symbol} {result.command} — {result.status.value} · {environment}"


def table_text(table: Table) -> str:
    """Aligned monospace rows under a header."""
    rows = [table.columns] + [[_cell(c) for c in row] for row in table.rows]
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(len(table.columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in rows]
    return "\n".join(lines)


def _cell(value: object) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


# ---- Slack ---------------------------------------------------------------------------------


def to_message(outcome: Outcome, meta: Meta) -> Message:
    """Block Kit for an outcome: a result for the channel, or a one-line error for the caller."""
    if outcome.result is None:
        return _private_message(outcome)
    return _result_message(outcome.result, meta)


def running_message(note: str, meta: Meta) -> Message:
    """The ⏳ placeholder a slow command edits in place."""
    line = f"⏳ {note} · {meta.environment}"
    return Message(line, [section(f"*{line}*"), _context(meta)])


def _private_message(outcome: Outcome) -> Message:
    icon = {"denied": "🚫", "usage": "❓", "unknown": "❓"}.get(outcome.kind, "❌")
    text = f"{icon} {escape(outcome.message)}"
    blocks = [section(text)]
    if outcome.usage:
        blocks.append(section(f"Usage: `{escape(outcome.usage)}`"))
    return Message(text, blocks)


def _result_message(result: Result, meta: Meta) -> Message:
    files = list(result.attachments)
    blocks = [section(f"*{escape(headline(result, meta.environment))}*"), _context(meta)]
    if result.summary:
        blocks.append(section(result.summary[:SECTION_CHARS]))
    blocks.extend(field_sections(result.fields))
    for table in result.tables:
        blocks.extend(_table_blocks(result.command, table, files))
    blocks.extend(_text_blocks(result, files))
    if result.actions:
        blocks.extend(action_blocks(result.actions))
    if len(blocks) > MAX_BLOCKS:
        overflow = blocks[MAX_BLOCKS - 1 :]
        files.append(
            Attachment(f"{_slug(result.command)}-more.txt", _blocks_text(overflow).encode())
        )
        blocks = blocks[: MAX_BLOCKS - 1] + [section("_More in the attached file._")]
    plain = headline(result, meta.environment) + (f": {result.summary}" if result.summary else "")
    return Message(plain[:3000], blocks, files)


def section(text: str) -> dict[str, Any]:
    """A mrkdwn section block."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(meta: Meta) -> dict[str, Any]:
    when = meta.at.strftime("%Y-%m-%d %H:%M:%S UTC")
    return {
        "type": "context",
        "elements": [
            {"type": "mrkdwn", "text": f"<@{meta.user_id}> · {when} · {meta.duration_ms} ms"}
        ],
    }


def field_sections(fields: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Key figures as section fields, at most ten a section."""
    sections = []
    for start in range(0, len(fields), FIELDS_PER_SECTION):
        chunk = fields[start : start + FIELDS_PER_SECTION]
        sections.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{escape(k)}*\n{escape(v)[:FIELD_CHARS]}"}
                    for k, v in chunk
                ],
            }
        )
    return sections


def _table_blocks(command: str, table: Table, files: list[Attachment]) -> list[dict[str, Any]]:
    rendered = table_text(table)
    blocks = [section(f"*{escape(table.title)}*")] if table.title else []
    if len(rendered) + 8 <= SECTION_CHARS:
        return blocks + [section(f"```{escape(rendered)}```")]
    name = f"{_slug(table.title or command)}.txt"
    files.append(Attachment(name, rendered.encode(), table.title or command))
    shown = Table(
        table.columns, table.rows[: max(1, len(table.rows) * SECTION_CHARS // len(rendered) - 2)]
    )
    head = table_text(shown)[: SECTION_CHARS - 60]
    return blocks + [
        section(f"```{escape(head)}```\n_{len(table.rows)} rows; all of them in `{name}`._")
    ]


def _text_blocks(result: Result, files: list[Attachment]) -> list[dict[str, Any]]:
    if not result.text:
        return []
    if len(result.text) > INLINE_TEXT_CHARS:
        name = f"{_slug(result.command)}.txt"
        files.append(Attachment(name, result.text.encode(), result.command))
        return [section(result.text[:1500].rsplit("\n", 1)[0] + f"\n_…the rest is in `{name}`._")]
    chunks, current = [], ""
    for line in result.text.split("\n"):
        if current and len(current) + len(line) + 1 > SECTION_CHARS:
            chunks.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line[:SECTION_CHARS]
    return [section(c) for c in [*chunks, current] if c.strip()]


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


def _blocks_text(blocks: list[dict[str, Any]]) -> str:
    return "\n\n".join(
        b.get("text", {}).get("text", "") for b in blocks if b.get("type") == "section"
    )


def _slug(text: str) -> str:
    return "-".join(text.lower().split())[:40] or "forge"


# ---- terminal -----------------------------------------------------------------------------


def to_text(outcome: Outcome, environment: str) -> str:
    """Readable terminal output for an outcome."""
    if outcome.result is None:
        usage = f'\nusage: forge run "{outcome.usage}"' if outcome.usage else ""
        return f"error: {outcome.message}{usage}"
    result = outcome.result
    parts = [headline(result, environment)]
    if result.summary:
        parts.append(_plain(result.summary))
    if result.fields:
        width = max(len(k) for k, _ in result.fields)
        parts.append("\n".join(f"  {k.ljust(width)}  {v}" for k, v in result.fields))
    parts.extend((f"{t.title}\n" if t.title else "") + table_text(t) for t in result.tables)
    if result.text:
        parts.append(_plain(result.text))
    parts.extend(f'next: forge run "{a.command}"  ({a.label})' for a in result.actions)
    return "\n\n".join(parts)


def _plain(mrkdwn: str) -> str:
    return mrkdwn.replace("*", "").replace("`", "")


def to_json(outcome: Outcome, environment: str) -> str:
    """Machine-readable output for `forge run --json`."""
    if outcome.result is None:
        doc: dict[str, Any] = {"ok": False, "error": outcome.kind, "message": outcome.message}
        if outcome.usage:
            doc["usage"] = outcome.usage
        if outcome.error_id:
            doc["error_id"] = outcome.error_id
    else:
        r = outcome.result
        doc = {
            "ok": r.ok,
            "command": r.command,
            "status": r.status.value,
            "environment": environment,
            "summary": r.summary,
            "fields": dict(r.fields),
            "tables": [{"title": t.title, "columns": t.columns, "rows": t.rows} for t in r.tables],
            "text": r.text,
            "actions": [{"label": a.label, "command": a.command} for a in r.actions],
            "files": [a.filename for a in r.attachments],
            "data": r.data,
        }
    doc["exit_code"] = outcome.exit_code
    return json.dumps(doc, indent=2, default=str, ensure_ascii=False)


# ---- approvals ----------------------------------------------------------------------------

APPROVAL_STATES = {
    "pending": "⏳ Waiting for an approver",
    "executing": "⏳ Approved by {by} · running",
    "succeeded": "✅ Approved by {by} · done",
    "failed": "🔴 Approved by {by} · failed",
    "outcome_unknown": "⚠️ Approved by {by} · outcome unknown",
    "denied": "🚫 Denied by {by}",
    "cancelled": "🚫 Cancelled by {by}",
    "expired": "⌛ Expired without approval",
}


def approval_card(approval: Any, environment: str) -> Message:
    """The card an approver acts on: exactly what will run, the dry run, who asked, until when."""
    state = APPROVAL_STATES[approval.status].format(
        by=f"<@{approval.decided_by}>" if approval.decided_by else ""
    )
    expires = int(approval.expires_at.timestamp())
    head = f"⚠️ Approval needed: `{escape(approval.text)}` · {environment}"
    blocks = [
        section(f"*{head}*"),
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Requested by*\n<@{approval.requester_id}>"},
                {
                    "type": "mrkdwn",
                    "text": (
                        f"*Expires*\n<!date^{expires}^{{time}} ({{date_short_pretty}})|{expires}>"
                    ),
                },
                {"type": "mrkdwn", "text": f"*Request*\n`{approval.short_id}`"},
                {"type": "mrkdwn", "text": f"*Arguments*\n`{escape(_arguments(approval.params))}`"},
            ],
        },
        section(f"*Dry run*\n{escape(approval.preview)}"[:SECTION_CHARS]),
        {"type": "context", "elements": [{"type": "mrkdwn", "text": state}]},
    ]
    if approval.outcome and approval.status not in ("pending", "executing"):
        blocks.append(section(f"*Outcome*\n{escape(approval.outcome)}"[:SECTION_CHARS]))
    if approval.status == "pending":
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "forge_approve",
                        "value": str(approval.id),
                        "style": "primary",
                        "text": {"type": "plain_text", "text": "Approve"},
                    },
                    {
                        "type": "button",
                        "action_id": "forge_deny",
                        "value": str(approval.id),
                        "style": "danger",
                        "text": {"type": "plain_text", "text": "Deny"},
                    },
                ],
            }
        )
    text = f"{head}: {state.replace('{by}', '')}"
    return Message(text[:3000], blocks)


def _arguments(params: dict[str, Any]) -> str:
    shown = {k: v for k, v in params.items() if v not in (None, False)}
    return ", ".join(f"{k}={v}" for k, v in shown.items()) or "none"


def confirm_modal(
    command: str, metadata: str, preview: Result | None = None, expected: str = "", error: str = ""
) -> dict[str, Any]:
    """The typed-confirmation dialog: loading, then the dry run and a field to type the target."""
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": "forge_confirm",
        "private_metadata": metadata,
        "title": {"type": "plain_text", "text": "Confirm destructive step"},
        "close": {"type": "plain_text", "text": "Cancel"},
    }
    intro = (
        f"`{escape(command)}` is destructive. After you confirm, a second person must approve it."
    )
    if error:
        view["blocks"] = [section(intro), section(f"❌ {escape(error)}")]
        return view
    if preview is None:
        view["blocks"] = [section(intro), section("⏳ Computing the dry run…")]
        return view
    blocks = [section(intro), section(f"*Dry run*\n{preview.summary}"[:SECTION_CHARS])]
    blocks.extend(field_sections(preview.fields)[:2])
    blocks.append(
        {
            "type": "input",
            "block_id": "confirm",
            "label": {"type": "plain_text", "text": f"Type {expected} to confirm"[:2000]},
            "element": {
                "type": "plain_text_input",
                "action_id": "typed",
                "placeholder": {"type": "plain_text", "text": expected[:150]},
            },
        }
    )
    view["blocks"] = blocks
    view["submit"] = {"type": "plain_text", "text": "Request approval"}
    return view

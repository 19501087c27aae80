"""The Home tab as Block Kit: every text a cell or an escaped str, drawn by bot.slack.render."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.home.dashboard import Dashboard, Part
from bot.slack.render import context, section
from bot.text.cells import (
    Channel,
    Code,
    Emphasis,
    Link,
    Strong,
    Text,
    Time,
    User,
    join,
    plain,
    rich,
)

HOME_APPROVE = "forge_home_approve"
HOME_DENY = "forge_home_deny"
HOME_REFRESH = "forge_home_refresh"
HOME_RUN = "forge_home_run"
LIST_MAX = 8
QUEUES_MAX = 6


def home_view(board: Dashboard, environment: str, workspace: str = "") -> dict[str, Any]:
    """The Home tab for board.user, every part the issue lists, in reading order."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"forge · {environment}"}},
        section(_me(board.part("me"))),
    ]
    for title, drawn in (
        ("Waiting for your approval", _to_approve(board)),
        ("Your pending requests", _own_requests(board)),
        ("Open incidents", _incidents(board.part("incidents"), workspace)),
        ("Queues, worst first", _queues(board.part("queues"))),
        ("Backups", _backups(board)),
        ("Firing alerts", _alerts(board.part("alerts"))),
    ):
        blocks += [{"type": "divider"}, section(Strong(title)), *drawn]
    blocks.append(
        _actions(
            [
                _button("Run a command", HOME_RUN, "run", "primary"),
                _button("Refresh", HOME_REFRESH, "refresh"),
            ]
        )
    )
    return {"type": "home", "callback_id": "forge_home", "blocks": blocks[:100]}


def _me(part: Part) -> Text:
    if part.problem:
        return rich("⚠️ Your role is unknown: ", part.problem)
    role, approver = str(part.data.get("role") or "none"), bool(part.data.get("approver"))
    may = (
        "you may approve other people's destructive requests."
        if approver
        else "you may not approve destructive requests."
    )
    return rich(
        "You are ", User(str(part.data.get("user_id") or "")), ": ", Strong(role), "; ", may
    )


def _problem(part: Part) -> list[dict[str, Any]]:
    return [section(rich("⚠️ Unavailable: ", part.problem))]


def _pending(board: Dashboard) -> list[dict[str, Any]]:
    pending = board.part("approvals").data.get("pending")
    return pending if isinstance(pending, list) else []


def _request_line(request: dict[str, Any]) -> Text:
    expires = request.get("expires_at")
    when = Time(datetime.fromisoformat(expires)) if isinstance(expires, str) else "?"
    return rich(
        Code(str(request.get("command") or "")),
        " · asked by ",
        User(str(request.get("requester") or "")),
        " in ",
        Channel(str(request.get("channel") or "")),
        " · expires ",
        when,
    )


def _to_approve(board: Dashboard) -> list[dict[str, Any]]:
    part = board.part("approvals")
    if part.problem:
        return _problem(part)
    if not board.part("me").data.get("approver"):
        return [context(Emphasis("You are not an approver."))]
    theirs = [r for r in _pending(board) if r.get("requester") != board.user]
    blocks: list[dict[str, Any]] = []
    for request in theirs[:LIST_MAX]:
        value = str(request.get("id") or "")
        blocks.append(section(_request_line(request)))
        blocks.append(
            _actions(
                [
                    _button("Approve", HOME_APPROVE, value, "primary"),
                    _button("Deny", HOME_DENY, value, "danger"),
                ]
            )
        )
    return blocks or [context(Emphasis("Nothing is waiting for you."))]


def _own_requests(board: Dashboard) -> list[dict[str, Any]]:
    part = board.part("approvals")
    if part.problem:
        return _problem(part)
    mine = [r for r in _pending(board) if r.get("requester") == board.user][:LIST_MAX]
    blocks: list[dict[str, Any]] = []
    for request in mine:
        blocks.append(section(_request_line(request)))
        blocks.append(_actions([_button("Cancel", HOME_DENY, str(request.get("id") or ""))]))
    return blocks or [context(Emphasis("You have no pending request."))]


def _incidents(part: Part, workspace: str) -> list[dict[str, Any]]:
    if part.problem:
        return _problem(part)
    where = part.data.get("open")
    found = where if isinstance(where, list) else []
    lines = []
    for row, incident in list(zip(part.rows, found, strict=False))[:LIST_MAX]:
        name, severity, title, done, commander, age = row[:6]
        lines.append(
            rich(
                _thread(incident, plain(name), workspace),
                f" · {plain(severity)} · ",
                title,
                f" · {plain(done)} steps done · commander ",
                commander,
                f" · open {plain(age)}",
            )
        )
    if not lines:
        return [context(Emphasis("No open incident."))]
    return [section(join("\n", lines))]


def _thread(incident: dict[str, Any], name: str, workspace: str) -> Text:
    """A link to the incident's thread, or its channel when the card is not posted yet."""
    channel, ts = str(incident.get("channel") or ""), str(incident.get("card_ts") or "")
    if workspace and channel and ts:
        return Link(f"{workspace}archives/{channel}/p{ts.replace('.', '')}", name)
    return rich(Strong(name), " in ", Channel(channel)) if channel else Strong(name)


def _queues(part: Part) -> list[dict[str, Any]]:
    if part.problem:
        return _problem(part)
    queues = part.data.get("queues")
    found = queues if isinstance(queues, list) else []
    lines = [
        rich(
            f"{_symbol(str(q.get('status')))} ",
            Code(str(q.get("name") or "?")),
            f" · {int(q.get('waiting') or 0):,} waiting · {int(q.get('dlq') or 0):,} in DLQ · ",
            f"lag {_lag(q.get('lag_s'))}",
        )
        for q in found[:QUEUES_MAX]
    ]
    more = f"\n…and {len(found) - QUEUES_MAX} more." if len(found) > QUEUES_MAX else ""
    return [section(rich(join("\n", lines), more))] if lines else [context("No queue found.")]


def _backups(board: Dashboard) -> list[dict[str, Any]]:
    part = board.part("backups")
    if part.problem:
        newest: Text = rich("⚠️ Unavailable: ", part.problem)
    else:
        listed = part.data.get("backups")
        found = listed if isinstance(listed, list) and listed else None
        newest = (
            rich("Newest backup ", Code(str(found[0].get("file"))), f", {found[0].get('age')} old")
            if found
            else "⚠️ No backup in the catalog yet."
        )
    return [section(join("\n", [newest, _drill(board.drill)]))]


def _drill(drill: dict[str, Any] | None) -> Text:
    if drill is None:
        return "⚠️ The last drill is unknown: the audit trail is unavailable."
    if not drill:
        return rich("No drill yet: ", Code("backup drill"), " runs one.")
    outcome = str(drill.get("outcome") or "?")
    return rich(f"Last drill {_symbol(outcome)} {outcome}, ", Time(drill["at"]))


def _alerts(part: Part) -> list[dict[str, Any]]:
    if part.problem:
        return _problem(part)
    lines = [
        rich("🔥 ", Strong(plain(row[0])), f" · {plain(row[1])} · ", row[2], f" · {plain(row[3])}")
        for row in part.rows[:LIST_MAX]
        if len(row) >= 4
    ]
    return [section(join("\n", lines))] if lines else [context(Emphasis("Nothing is firing."))]


def _symbol(status: str) -> str:
    return {"ok": "✅", "warning": "⚠️", "critical": "🔴", "running": "⏳"}.get(status, "❔")


def _lag(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "—"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _button(label: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    button = {
        "type": "button",
        "action_id": action_id,
        "value": value[:2000],
        "text": {"type": "plain_text", "text": label},
    }
    return button | ({"style": style} if style else {})


def _actions(elements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "actions", "elements": elements}

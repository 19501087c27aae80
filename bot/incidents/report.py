"""Incident report: timeline, time to ack/mitigate/resolve, participants, commands, approvals."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from bot.backends.clients import call
from bot.state.store import StateStore
from bot.text.cells import User, plain
from bot.text.units import between

FIRST_RESPONSE = ("item_done", "update", "assigned", "run")


def _who(user_id: str) -> str:
    """A person as a file shows them: `@U0OPS` (a file is plain text, never Slack mrkdwn)."""
    return plain(User(user_id))


def event_detail(event: Any) -> dict[str, Any]:
    value = event["detail"]
    return json.loads(value) if isinstance(value, str) else dict(value or {})


def _first(events: list[Any], wanted: Any) -> datetime | None:
    return next((e["at"] for e in events if wanted(e)), None)


def milestones(incident: Any, events: list[Any]) -> dict[str, datetime | None]:
    """Times acknowledged (step, else first response), mitigated (step, else resolved), resolved."""
    marked = {
        m: _first(
            events, lambda e, m=m: e["kind"] == "item_done" and event_detail(e).get("marks") == m
        )
        for m in ("acknowledge", "mitigate")
    }
    first_response = _first(events, lambda e: e["kind"] in FIRST_RESPONSE)
    return {
        "acknowledge": marked["acknowledge"] or first_response,
        "mitigate": marked["mitigate"] or incident["resolved_at"],
        "resolve": incident["resolved_at"],
    }


def durations(incident: Any, events: list[Any]) -> dict[str, str | None]:
    """Time from declaration to each milestone, as `4 min`; None when it has not happened."""
    return {
        k: between(incident["declared_at"], at) if at else None
        for k, at in milestones(incident, events).items()
    }


async def _approvals(store: StateStore, events: list[Any]) -> list[Any]:
    ids = [
        uuid.UUID(event_detail(e)["approval"])
        for e in events
        if e["kind"] == "approval_requested" and event_detail(e).get("approval")
    ]
    if not ids:
        return []
    pool = await store.pool()
    return await call(
        "state store",
        pool.fetch(
            "SELECT id, text, requester_id, status, decided_by, outcome FROM forge.approvals "
            "WHERE id = ANY($1::uuid[]) ORDER BY created_at",
            ids,
        ),
        5.0,
    )


def _participants(incident: Any, items: list[Any], events: list[Any]) -> list[str]:
    people = [
        incident["commander"],
        *(e["actor"] for e in events),
        *(i["assignee"] for i in items if i["assignee"]),
    ]
    return [p for p in dict.fromkeys(people) if p and p != "forge"]


def _timeline(incident: Any, events: list[Any]) -> list[str]:
    start = incident["declared_at"]
    return [
        f"| {e['at']:%Y-%m-%d %H:%M:%S} | +{between(start, e['at'])} | "
        f"{e['kind'].replace('_', ' ')} | {_who(e['actor'])} | {e['text'].replace('|', '/')} |"
        for e in events
    ]


async def report_markdown(
    store: StateStore,
    incident: Any,
    items: list[Any],
    events: list[Any],
    now: datetime,
    picture: str | None = None,
) -> str:
    """The whole report in Markdown; `picture` names the timeline PNG uploaded beside it."""
    times = durations(incident, events)
    approvals = await _approvals(store, events)
    commands = [e for e in events if e["kind"] == "run"]
    severity = [e for e in events if e["kind"] == "severity"]
    lines = [
        f"# INC-{incident['id']}: {incident['title']}",
        "",
        f"- Severity: {incident['severity']}"
        + (f" (changed: {'; '.join(e['text'] for e in severity)})" if severity else ""),
        f"- Status: {incident['status']}",
        f"- Commander: {_who(incident['commander'])}",
        f"- Declared: {incident['declared_at']:%Y-%m-%d %H:%M:%S UTC}",
        f"- Resolved: {incident['resolved_at']:%Y-%m-%d %H:%M:%S UTC}"
        if incident["resolved_at"]
        else f"- Open for: {between(incident['declared_at'], now)}",
        *(f"- Time to {k}: {v or 'not yet'}" for k, v in times.items()),
        f"- Participants: {', '.join(_who(p) for p in _participants(incident, items, events))}",
    ]
    if incident["component"]:
        lines.append(f"- Component: {incident['component']}")
    if incident["summary"]:
        lines += ["", "## Summary", "", incident["summary"]]
    if incident["forced_reason"]:
        lines += ["", f"Resolved with steps still open: {incident['forced_reason']}"]
    lines += ["", "## Checklist", ""]
    lines += [
        f"- [{'x' if i['done_at'] else ' '}] {i['position']}. {i['title']}"
        + (f" (done by {_who(i['done_by'])} at {i['done_at']:%H:%M:%S})" if i["done_at"] else "")
        + (f", owner {_who(i['assignee'])}" if i["assignee"] else "")
        for i in items
    ]
    lines += ["", "## Commands run", ""] + (
        [f"- {e['at']:%H:%M:%S} {_who(e['actor'])}: {e['text']}" for e in commands] or ["- none"]
    )
    lines += ["", "## Approvals", ""] + (
        [
            f"- `{a['text']}` requested by {_who(a['requester_id'])}: {a['status']}"
            + (f" by {_who(a['decided_by'])}" if a["decided_by"] else "")
            + (f" ({a['outcome']})" if a["outcome"] else "")
            for a in approvals
        ]
        or ["- none"]
    )
    lines += [
        "",
        "## Timeline",
        "",
        *([f"![INC-{incident['id']} timeline]({picture})", ""] if picture else []),
        "| time (UTC) | since declared | what | who | detail |",
        "|---|---|---|---|---|",
        *_timeline(incident, events),
    ]
    return "\n".join(lines) + "\n"

"""Incident messages: the card, a message per checklist step with buttons, and timeline posts."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from bot.alerts.runbook import known
from bot.core.registry import Registry
from bot.incidents.checklists import SEVERITIES
from bot.slack.render import Message, context, message, section
from bot.text.cells import Channel, Strong, Struck, Text, Time, User, join, rich
from bot.text.units import between

SYMBOL = {"P0": "🔴", "P1": "🟠", "P2": "🟡", "P3": "🔵"}
EVENT_ICON = {"update": "📣", "severity": "⚖️", "resolved": "✅"}


def incident_card(
    incident: Any, items: list[Any], last_update: Any | None, environment: str, now: datetime
) -> Message:
    """The card: severity, title, commander, progress, last update; resolved shows time taken."""
    name = f"INC-{incident['id']}"
    done = sum(1 for i in items if i["done_at"])
    if incident["status"] == "resolved":
        head = (
            f"✅ {name} resolved after "
            f"{between(incident['declared_at'], incident['resolved_at'])}: "
            f"{incident['title']} · {environment}"
        )
    else:
        head = (
            f"{SYMBOL[incident['severity']]} {name} · {incident['severity']} · "
            f"{incident['title']} · {environment}"
        )
    facts = [
        rich(Strong("Commander"), " ", User(incident["commander"])),
        rich(Strong("Declared"), " ", _time(incident["declared_at"])),
        rich(Strong("Progress"), f" {done}/{len(items)} steps"),
        rich(Strong("Open for"), f" {between(incident['declared_at'], now)}")
        if incident["status"] == "open"
        else rich(Strong("Severity"), f" {incident['severity']}"),
    ]
    if incident["component"]:
        facts.append(rich(Strong("Component"), " ", incident["component"]))
    blocks = [section(Strong(head)), section(join(" · ", facts))]
    if incident["description"]:
        blocks.append(section(incident["description"]))
    if incident["status"] == "resolved" and incident["summary"]:
        blocks.append(section(rich(Strong("Resolution:"), " ", incident["summary"])))
    elif last_update is not None:
        when = rich(" (", _time(last_update["at"]), ", ", User(last_update["actor"]), "): ")
        blocks.append(section(rich(Strong("Last update"), when, last_update["text"])))
    definition = f"{incident['severity']}: {SEVERITIES[incident['severity']]} "
    blocks.append(context(definition + "The checklist is in the thread."))
    return message(head, blocks)


def _time(moment: datetime | None) -> Text:
    return Time(moment) if moment is not None else "—"


def _commands(item: Any, registry: Registry) -> list[str]:
    listed = item["commands"]
    listed = json.loads(listed) if isinstance(listed, str) else list(listed or [])
    return [c for c in listed if known(c, registry)]


def item_message(incident: Any, item: Any, registry: Registry) -> Message:
    """One step: state, owner, and Done/Undo, Assign and Run controls while the incident is open."""
    name, position = f"INC-{incident['id']}", item["position"]
    title = f"{position}. {item['title']}"
    if item["done_at"]:
        line = rich(
            "✅ ",
            Struck(title),
            " done by ",
            User(item["done_by"]),
            f" at {item['done_at']:%H:%M} UTC",
        )
    else:
        line = rich("⬜ ", Strong(title), f" — {item['detail']}" if item["detail"] else "")
    blocks: list[dict[str, Any]] = [section(line)]
    if item["assignee"]:
        blocks.append(context(rich("Owner: ", User(item["assignee"]))))
    if incident["status"] == "open":
        blocks.append(
            {
                "type": "actions",
                "block_id": f"incident:{incident['id']}:{position}",
                "elements": _controls(name, item, registry),
            }
        )
    return message(f"{name} step {title}: {'done' if item['done_at'] else 'open'}", blocks)


def _controls(name: str, item: Any, registry: Registry) -> list[dict[str, Any]]:
    position = item["position"]
    check = (
        (f"incident check {position} --undo --id {name}", "Undo", None)
        if item["done_at"]
        else (f"incident check {position} --id {name}", "Done", "primary")
    )
    elements: list[dict[str, Any]] = [_button(0, check[0], check[1], check[2])]
    picker: dict[str, Any] = {
        "type": "users_select",
        "action_id": "forge_incident_assign",
        "placeholder": {"type": "plain_text", "text": "Assign…"},
    }
    if item["assignee"]:
        picker["initial_user"] = item["assignee"]
    elements.append(picker)
    for n, text in enumerate(_commands(item, registry)[:3], 1):
        elements.append(_button(n, text, f"Run {text}"[:75], None))
    return elements


def _button(index: int, command: str, label: str, style: str | None) -> dict[str, Any]:
    button = {
        "type": "button",
        "action_id": f"forge_run:{index}",
        "value": command[:2000],
        "text": {"type": "plain_text", "text": label},
    }
    if style:
        button["style"] = style
    return button


def event_message(incident: Any, event: Any) -> Message:
    """A timeline entry posted in the thread: an update, a severity change, the resolution."""
    icon = EVENT_ICON.get(event["kind"], "•")
    label = {"update": "Update", "severity": "Severity", "resolved": "Resolved"}.get(
        event["kind"], event["kind"]
    )
    text = rich(
        f"{icon} ",
        Strong(label),
        f" · INC-{incident['id']} · ",
        User(event["actor"]),
        ": ",
        event["text"],
    )
    return message(f"INC-{incident['id']} {label.lower()}: {event['text']}", [section(text)])


def announcement(incident: Any, channel: str) -> Message:
    """Where a dedicated incident channel is announced."""
    text = rich(
        f"{SYMBOL[incident['severity']]} INC-{incident['id']} ({incident['severity']}) declared "
        "by ",
        User(incident["commander"]),
        f": {incident['title']}. Follow it in ",
        Channel(channel),
        ".",
    )
    return message(text, [section(text)])

"""Incident messages: the card, a message per checklist step with buttons, and timeline posts."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from bot.alerts.blocks import when
from bot.alerts.runbook import known
from bot.core.registry import Registry
from bot.core.units import between
from bot.incidents.checklists import SEVERITIES
from bot.slack.render import Message, escape, section

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
        f"*Commander* <@{incident['commander']}>",
        f"*Declared* {when(incident['declared_at'])}",
        f"*Progress* {done}/{len(items)} steps",
        f"*Open for* {between(incident['declared_at'], now)}"
        if incident["status"] == "open"
        else f"*Severity* {incident['severity']}",
    ]
    if incident["component"]:
        facts.append(f"*Component* {escape(incident['component'])}")
    blocks = [section(f"*{escape(head)}*"), section(" · ".join(facts))]
    if incident["description"]:
        blocks.append(section(escape(incident["description"])[:2900]))
    if incident["status"] == "resolved" and incident["summary"]:
        blocks.append(section(f"*Resolution:* {escape(incident['summary'])[:2800]}"))
    elif last_update is not None:
        blocks.append(
            section(
                f"*Last update* ({when(last_update['at'])}, <@{last_update['actor']}>): "
                f"{escape(last_update['text'])[:2700]}"
            )
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"{incident['severity']}: {SEVERITIES[incident['severity']]} "
                    "The checklist is in the thread.",
                }
            ],
        }
    )
    return Message(head, blocks)


def _commands(item: Any, registry: Registry) -> list[str]:
    listed = item["commands"]
    listed = json.loads(listed) if isinstance(listed, str) else list(listed or [])
    return [c for c in listed if known(c, registry)]


def item_message(incident: Any, item: Any, registry: Registry) -> Message:
    """One step: state, owner, and Done/Undo, Assign and Run controls while the incident is open."""
    name, position = f"INC-{incident['id']}", item["position"]
    title = f"{position}. {item['title']}"
    if item["done_at"]:
        line = f"✅ ~{escape(title)}~ done by <@{item['done_by']}> at {item['done_at']:%H:%M} UTC"
    else:
        line = f"⬜ *{escape(title)}*" + (f" — {escape(item['detail'])}" if item["detail"] else "")
    blocks: list[dict[str, Any]] = [section(line)]
    if item["assignee"]:
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"Owner: <@{item['assignee']}>"}],
            }
        )
    if incident["status"] == "open":
        blocks.append(
            {
                "type": "actions",
                "block_id": f"incident:{incident['id']}:{position}",
                "elements": _controls(name, item, registry),
            }
        )
    return Message(f"{name} step {title}: {'done' if item['done_at'] else 'open'}", blocks)


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
    text = f"{icon} *{label}* · INC-{incident['id']} · <@{event['actor']}>: {escape(event['text'])}"
    return Message(
        f"INC-{incident['id']} {label.lower()}: {event['text']}"[:3000], [section(text[:2900])]
    )


def announcement(incident: Any, channel: str) -> Message:
    """Where a dedicated incident channel is announced."""
    text = (
        f"{SYMBOL[incident['severity']]} INC-{incident['id']} ({incident['severity']}) declared by "
        f"<@{incident['commander']}>: {escape(incident['title'])}. Follow it in <#{channel}>."
    )
    return Message(text, [section(text)])

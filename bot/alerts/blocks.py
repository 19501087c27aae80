"""Alert cards: one Alertmanager group as Block Kit, with runbook steps and diagnostic buttons."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from bot.alerts import runbook
from bot.alerts.intake import NOTE as CLEANED
from bot.config.settings import Config
from bot.core.registry import Registry, Risk
from bot.core.result import Action, Attachment
from bot.slack.render import Message, action_blocks, field_sections, image_block, message, section
from bot.text.cells import Code, Emphasis, Link, Strong, Text, Time, join, lines, rich
from bot.text.units import between

SEVERITY = {"critical": "🔴", "warning": "⚠️", "info": "ℹ️"}
SHOWN_LABELS = ("queue", "table", "index", "instance", "job", "service", "component", "severity")
MAX_BUTTONS = 5


@dataclass(frozen=True)
class CardView:
    """What a card shows: the group's labels and links, its alerts, where it is."""

    card_id: int
    common_labels: Mapping[str, str]
    external_url: str
    alerts: Sequence[Mapping[str, Any]]


def _labels(alert: Mapping[str, Any]) -> dict[str, str]:
    value = alert["labels"]
    return json.loads(value) if isinstance(value, str) else dict(value)


def _annotations(alert: Mapping[str, Any]) -> dict[str, str]:
    value = alert["annotations"]
    return json.loads(value) if isinstance(value, str) else dict(value)


def when(moment: datetime | None) -> Text:
    """A timestamp Slack shows in the reader's time zone, "—" when there is none."""
    return Time(moment) if moment is not None else "—"


def _headline(view: CardView, environment: str) -> Text:
    firing = [a for a in view.alerts if a["status"] == "firing"]
    names = sorted({a["alertname"] for a in view.alerts})
    listed = ", ".join(names[:3]) + ("…" if len(names) > 3 else "")
    title = names[0] if len(names) == 1 else f"{len(names)} alerts ({listed})"
    queue = view.common_labels.get("queue")
    scope = rich(" on ", Code(queue)) if queue else ""
    if not firing:
        start = min(a["starts_at"] for a in view.alerts)
        end = max((a["ends_at"] for a in view.alerts if a["ends_at"]), default=None)
        return rich(f"✅ RESOLVED: {title}", scope, f" after {between(start, end)} · {environment}")
    severity = _worst_severity(firing)
    count = f" ({len(firing)} firing)" if len(view.alerts) > 1 else ""
    return rich(
        f"{SEVERITY.get(severity, '🔔')} FIRING: {title}",
        scope,
        f" — {severity or 'no severity'}{count} · {environment}",
    )


def _worst_severity(alerts: Sequence[Mapping[str, Any]]) -> str:
    order = ["critical", "warning", "info"]
    found = [a["severity"] for a in alerts if a["severity"]]
    return min(found, key=lambda s: order.index(s) if s in order else len(order), default="")


def _links(alert: Mapping[str, Any], external_url: str) -> Text:
    notes, links = _annotations(alert), list[tuple[str, str]]()
    for label, name in (
        ("Runbook", "runbook_url"),
        ("Runbook", "runbook"),
        ("Dashboard", "dashboard"),
    ):
        target = notes.get(name, "")
        if target.startswith(("http://", "https://")) and label not in [n for n, _ in links]:
            links.append((label, target))
    if str(alert["generator_url"]).startswith(("http://", "https://")):
        links.append(("Source", str(alert["generator_url"])))
    if external_url.startswith(("http://", "https://")):
        matchers = ",".join(f'{k}="{v}"' for k, v in sorted(_labels(alert).items()))
        links.append(
            (
                "Silence",
                f"{external_url.rstrip('/')}/#/silences/new?filter={quote('{' + matchers + '}')}",
            )
        )
    return join(" · ", [Link(url, label) for label, url in links])


def _one(alert: Mapping[str, Any], external_url: str) -> list[dict[str, Any]]:
    notes, labels = _annotations(alert), _labels(alert)
    blocks = []
    text = lines(
        *(
            Strong(notes[k]) if k == "summary" else notes[k]
            for k in ("summary", "description")
            if notes.get(k)
        )
    )
    if text:
        blocks.append(section(text))
    if notes.get(CLEANED):
        blocks.append(section(rich("⚠️ forge cleaned this alert: ", notes[CLEANED][:600])))
    fields = [(k.title(), labels[k]) for k in SHOWN_LABELS if labels.get(k)]
    fields.append(("Started", alert["starts_at"].strftime("%Y-%m-%d %H:%M:%S UTC")))
    if alert["status"] == "resolved":
        fields.append(("Resolved after", between(alert["starts_at"], alert["ends_at"])))
    blocks.extend(field_sections(fields))
    links = _links(alert, external_url)
    return blocks + ([section(links)] if links else [])


def _listing(view: CardView, limit: int) -> list[dict[str, Any]]:
    rows: list[Text] = []
    for alert in view.alerts[:limit]:
        labels = _labels(alert)
        icon = "✅" if alert["status"] == "resolved" else SEVERITY.get(alert["severity"], "🔔")
        where = " ".join(f"{k}={labels[k]}" for k in SHOWN_LABELS[:5] if labels.get(k))
        summary = _annotations(alert).get("summary", "")
        cleaned = " ⚠️ cleaned by forge" if _annotations(alert).get(CLEANED) else ""
        rows.append(
            rich(
                f"{icon} ",
                Strong(alert["alertname"]),
                f" {where} — {summary[:140]} (since ",
                when(alert["starts_at"]),
                ")",
                cleaned,
            )
        )
    more = len(view.alerts) - limit
    if more > 0:
        rows.append(
            Emphasis(f"…and {more} more: every alert is in the file in this card's thread.")
        )
    return [section(lines(*rows))]


def _remedy(
    view: CardView, config: Config, registry: Registry
) -> tuple[list[dict[str, Any]], list[Action]]:
    names = {a["alertname"] for a in view.alerts}
    labels = _labels(view.alerts[0]) if len(view.alerts) == 1 else dict(view.common_labels)
    item = runbook.entry(config, names.pop()) if len(names) == 1 else None
    if item is None:
        return [], []
    text = lines(
        rich(Strong("Runbook:"), " ", item.summary) if item.summary else Strong("Runbook"),
        *(rich(f"{i}. ", step) for i, step in enumerate(runbook.steps(item, labels), 1)),
    )
    actions = [
        Action(command[:75], command, "danger" if _destructive(command, registry) else None)
        for command in runbook.commands(item, labels, registry)
    ][:MAX_BUTTONS]
    return [section(text)], actions


def _destructive(text: str, registry: Registry) -> bool:
    spec, _ = registry.resolve(shlex.split(text))
    return spec.risk is Risk.DESTRUCTIVE


def alert_card(
    view: CardView,
    *,
    environment: str,
    config: Config,
    registry: Registry,
    picture: tuple[str, str] | None = None,
) -> Message:
    """The card: headline, the alert (or the group's list), its graph (a file ID and title),
    runbook steps, label-filled buttons."""
    head = _headline(view, environment)
    blocks = [section(Strong(head))]
    if len(view.alerts) == 1:
        blocks.extend(_one(view.alerts[0], view.external_url))
    else:
        shown = [(k.title(), v) for k, v in view.common_labels.items() if k in SHOWN_LABELS]
        blocks.extend(field_sections(shown) if shown else [])
        blocks.extend(_listing(view, config.alerts.listed_on_card))
    if picture is not None:
        blocks.append(image_block(*picture))
    steps, actions = _remedy(view, config, registry)
    blocks.extend(steps)
    if actions and any(a["status"] == "firing" for a in view.alerts):
        blocks.extend(action_blocks(actions))
    return message(head, blocks[:50])


def alert_list(view: CardView) -> Attachment:
    """Every alert of a card, one line each, for the thread when the card cannot list them all."""
    lines = []
    for alert in view.alerts:
        labels = ",".join(f"{k}={v}" for k, v in sorted(_labels(alert).items()))
        ended = alert["ends_at"].isoformat() if alert["ends_at"] else "-"
        lines.append(
            f"{alert['status']}\t{alert['alertname']}\t{alert['starts_at'].isoformat()}\t{ended}\t{labels}\t"
            f"{_annotations(alert).get('summary', '')}"
        )
    body = "status\talertname\tstarts_at\tends_at\tlabels\tsummary\n" + "\n".join(lines) + "\n"
    return Attachment(
        f"alerts-{view.card_id}.tsv", body.encode(), f"All {len(view.alerts)} alerts of this card"
    )

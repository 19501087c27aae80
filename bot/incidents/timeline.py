"""The incident report's picture: declared, acknowledged, mitigated, resolved, severity changes,
commands run, approvals and the alerts that fired, on one UTC time axis."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bot.backends.clients import call
from bot.core.errors import BackendError
from bot.core.result import Attachment
from bot.graphs.pool import GraphError, render
from bot.graphs.spec import Figure, Mark
from bot.incidents.report import event_detail, milestones
from bot.log import get_logger
from bot.state.store import StateStore
from bot.text.redact import redact

log = get_logger(__name__)
MOST_MARKS, LABEL_CHARS = 40, 70
EVENTS = {  # timeline event kind -> how its mark reads, and its level
    "severity": ("{text}", "warning"),
    "run": ("ran {text}", "info"),
    "approval_requested": ("{text}", "warning"),
}
ALERTS_DURING = """
SELECT alertname, severity, labels->>'queue' AS queue, min(starts_at) AS at
FROM forge.alerts
WHERE starts_at BETWEEN $1 AND $2
GROUP BY alertname, severity, labels->>'queue'
ORDER BY at LIMIT 20"""


def marks(incident: Any, events: list[Any], alerts: list[Any]) -> list[Mark]:
    """Every moment of the incident worth a dot, oldest first."""
    found = [
        Mark(incident["declared_at"].timestamp(), f"declared {_first_severity(incident, events)}")
    ]
    times = milestones(incident, events)
    for key, word in (("acknowledge", "acknowledged"), ("mitigate", "mitigated")):
        at = times[key]
        if at is not None and at != incident["resolved_at"]:
            found.append(Mark(at.timestamp(), word, "ok"))
    for event in events:
        if event["kind"] in EVENTS:
            label, level = EVENTS[event["kind"]]
            found.append(Mark(event["at"].timestamp(), label.format(text=event["text"]), level))
    for alert in alerts:
        where = f" on {alert['queue']}" if alert["queue"] else ""
        level = "critical" if alert["severity"] == "critical" else "warning"
        found.append(Mark(alert["at"].timestamp(), f"{alert['alertname']}{where} firing", level))
    if incident["resolved_at"] is not None:
        found.append(Mark(incident["resolved_at"].timestamp(), "resolved", "ok"))
    ordered = sorted(found, key=lambda m: m.at)[:MOST_MARKS]
    return [Mark(m.at, _label(m.label), m.level) for m in ordered]


def _first_severity(incident: Any, events: list[Any]) -> str:
    """The severity it was declared with (severity changes are marks of their own)."""
    declared = next((e for e in events if e["kind"] == "declared"), None)
    return (
        str(event_detail(declared).get("severity") or incident["severity"])
        if declared
        else incident["severity"]
    )


def _label(text: str) -> str:
    one_line = " ".join(redact(text).split())
    return one_line if len(one_line) <= LABEL_CHARS else one_line[: LABEL_CHARS - 1] + "…"


def figure(incident: Any, found: list[Mark], now: datetime) -> Figure:
    """The marks on a time axis from declaration (or an earlier alert) to resolution (or now)."""
    start = min([incident["declared_at"].timestamp(), *(m.at for m in found)])
    end = max([(incident["resolved_at"] or now).timestamp(), *(m.at for m in found)])
    pad = max(30.0, (end - start) * 0.04)
    title = f"INC-{incident['id']}: {incident['title']}"[:90]
    return Figure("timeline", title, start - pad, end + pad, (), tuple(found))


async def alerts_during(store: StateStore, incident: Any, now: datetime) -> list[Any]:
    """Alerts that started firing from 30 minutes before the declaration to its end."""
    pool = await store.pool()
    since = incident["declared_at"] - timedelta(minutes=30)
    return await call(
        "state store", pool.fetch(ALERTS_DURING, since, incident["resolved_at"] or now), 5.0
    )


async def picture(
    store: StateStore, incident: Any, events: list[Any], now: datetime
) -> Attachment | None:
    """The timeline as a PNG named after the incident; None (logged) when it cannot be drawn."""
    try:
        found = marks(incident, events, await alerts_during(store, incident, now))
        png = await render(figure(incident, found, now))
    except (BackendError, GraphError) as exc:
        log.warning("incident_timeline_not_drawn", incident=incident["id"], reason=str(exc))
        return None
    return Attachment(f"INC-{incident['id']}-timeline.png", png, f"INC-{incident['id']} timeline")

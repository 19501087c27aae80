"""The runbook's incident severities and checklists, each severity's replaceable in the config."""

from __future__ import annotations

import re

from bot.config.settings import ChecklistItem, Config

SEVERITIES = {
    "P0": (
        "Critical: the service is down or data is being lost for all or most customers. "
        "Respond now, all hands."
    ),
    "P1": (
        "High: a major feature is broken or badly degraded for many customers. "
        "Respond within 15 minutes."
    ),
    "P2": (
        "Medium: a feature is degraded for some customers, with a workaround. Respond within hours."
    ),
    "P3": "Low: a minor or cosmetic problem. Fix in normal working hours.",
}
DEFAULTS: dict[str, list[ChecklistItem]] = {
    "P0": [
        ChecklistItem(
            title="Acknowledge",
            detail="Take command, say so here, and update the status page.",
            marks="acknowledge",
        ),
        ChecklistItem(
            title="Assess",
            detail="Find what is broken and for whom: deployment, queues, dependencies.",
            commands=["verify", "queue health", "health"],
        ),
        ChecklistItem(
            title="Mitigate",
            detail="Stop the bleeding: roll back, fail over, pause, scale.",
            marks="mitigate",
        ),
        ChecklistItem(
            title="Communicate",
            detail="Post an update for customers and the company every 30 minutes.",
        ),
        ChecklistItem(
            title="Monitor",
            detail="Watch that the mitigation holds: error rate, queues, latency.",
            commands=["queue health", "health"],
        ),
        ChecklistItem(
            title="Document", detail="Keep the timeline here; the report is written on resolve."
        ),
    ],
    "P1": [
        ChecklistItem(
            title="Investigate",
            detail="Read the errors and find the cause.",
            commands=["logs backend --grep ERROR --tail 200"],
            marks="acknowledge",
        ),
        ChecklistItem(title="Isolate", detail="Contain it to the failing component."),
        ChecklistItem(title="Fix", detail="Prepare the fix or the rollback.", marks="mitigate"),
        ChecklistItem(title="Test", detail="Prove the fix in staging."),
        ChecklistItem(title="Deploy", detail="Ship it."),
        ChecklistItem(
            title="Verify", detail="Check the deployment end to end.", commands=["verify"]
        ),
    ],
    "P2": [
        ChecklistItem(
            title="Triage",
            detail="Confirm the impact and who owns it.",
            commands=["health"],
            marks="acknowledge",
        ),
        ChecklistItem(
            title="Fix",
            detail="Fix or schedule the fix; note the workaround here.",
            marks="mitigate",
        ),
        ChecklistItem(title="Verify", detail="Check that it works again.", commands=["health"]),
    ],
    "P3": [
        ChecklistItem(
            title="Triage", detail="Confirm the impact and who owns it.", marks="acknowledge"
        ),
        ChecklistItem(title="Fix", detail="Fix it in normal working hours.", marks="mitigate"),
    ],
}


def checklist(config: Config, severity: str) -> list[ChecklistItem]:
    """The steps for a severity: the config file's, else the runbook's."""
    return list(config.incidents.checklists.get(severity) or DEFAULTS[severity])  # type: ignore[call-overload]


def key(item: ChecklistItem) -> str:
    """A stable key for a step, so a severity change adds only the steps that are missing."""
    return re.sub(r"[^a-z0-9]+", "-", item.title.lower()).strip("-") or "step"

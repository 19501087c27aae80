"""The demo's Alertmanager: QueueDLQJobsPresent for email, sent to forge's real webhook."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import aiohttp

from bot.demo.places import OWN_PREFIX

STATE = OWN_PREFIX + "alert"  # absent: armed; else "firing|resolved", startsAt, the count fired
LABELS = {
    "alertname": "QueueDLQJobsPresent",
    "severity": "warning",
    "component": "queue",
    "team": "backend",
    "queue": "email",
    "job": "clientforge-backend",
}
GROUP_KEY = '{}:{alertname="QueueDLQJobsPresent", job="clientforge-backend"}'
TIMEOUT = aiohttp.ClientTimeout(total=10)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def notification(count: int, started: str, *, resolved: bool) -> dict[str, Any]:
    """A version 4 webhook payload as Alertmanager sends it for queue-alerts.yml's rule."""
    alert = {
        "status": "resolved" if resolved else "firing",
        "labels": LABELS,
        "annotations": {
            "summary": f"{count} jobs in the DLQ of email",
            "description": (
                "Jobs of email failed every attempt. List them, fix the cause, retry or clear."
            ),
            "runbook": "/forge dlq list email",
        },
        "startsAt": started,
        "endsAt": _stamp(datetime.now(UTC)) if resolved else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=crm_queue_jobs_dlq_total+%3E+0",
        "fingerprint": hashlib.sha256(repr(sorted(LABELS.items())).encode()).hexdigest()[:16],
    }
    return {
        "version": "4",
        "groupKey": GROUP_KEY,
        "truncatedAlerts": 0,
        "status": alert["status"],
        "receiver": "forge",
        "groupLabels": {"alertname": LABELS["alertname"], "job": LABELS["job"]},
        "commonLabels": LABELS,
        "commonAnnotations": alert["annotations"],
        "externalURL": "http://alertmanager:9093",
        "alerts": [alert],
    }


def resolved(held: list[dict[str, Any]], group_by: tuple[str, ...]) -> list[dict[str, Any]]:
    """Alerts Alertmanager holds (its API's shape), as the resolved notifications of their groups.

    forge matches alerts by fingerprint and start, so each one's card turns resolved.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for one in held:
        labels = one.get("labels") or {}
        key = "{}:{" + ", ".join(f'{k}="{labels.get(k, "")}"' for k in group_by) + "}"
        groups.setdefault(key, []).append(
            {
                "status": "resolved",
                "labels": labels,
                "annotations": one.get("annotations") or {},
                "startsAt": one.get("startsAt", ""),
                "endsAt": _stamp(datetime.now(UTC)),
                "generatorURL": one.get("generatorURL", ""),
                "fingerprint": one.get("fingerprint", ""),
            }
        )
    return [
        {
            "version": "4",
            "groupKey": key,
            "status": "resolved",
            "receiver": "forge",
            "groupLabels": {k: alerts[0]["labels"].get(k, "") for k in group_by},
            "commonLabels": {},
            "externalURL": "",
            "alerts": alerts,
        }
        for key, alerts in groups.items()
    ]


async def send(url: str, token: str, payload: dict[str, Any]) -> bool:
    """POST it as Alertmanager does, bearer token and all; whether forge took it (2xx)."""
    try:
        async with (
            aiohttp.ClientSession(timeout=TIMEOUT) as session,
            session.post(url, json=payload, headers={"Authorization": f"Bearer {token}"}) as reply,
        ):
            return 200 <= reply.status < 300
    except (aiohttp.ClientError, TimeoutError):
        return False


def now_stamp() -> str:
    """Now, as Alertmanager writes startsAt."""
    return _stamp(datetime.now(UTC))


def read_state(raw: bytes | str | None) -> tuple[str, str, int]:
    """The alert's state as kept in Redis: kind ("" when armed), startsAt, the count it fired at."""
    text = raw.decode() if isinstance(raw, bytes) else raw or ""
    kind, _, rest = text.partition("|")
    started, _, count = rest.partition("|")
    return kind, started, int(count or 0)


def write_state(kind: str, started: str, count: int) -> str:
    """The value read_state reads."""
    return f"{kind}|{started}|{count}"

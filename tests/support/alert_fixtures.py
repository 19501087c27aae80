"""Alertmanager payloads and a forge that receives them over HTTP, with the Slack double."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from bot.config.settings import Config
from tests.conftest import Harness, make_settings, running_forge

TOKEN = "am-test-token-4f9c2a"
CONFIG = {
    "roles": {"viewer": ["*"], "operator": ["U0OPS"], "admin": ["U0ADMIN"]},
    "approvers": ["U0LEAD"],
    "channels": {"alerts": "C0ALERTS", "destructive": ["C0ALERTS", "C0OPS"]},
    "queues": ["email", "data-sync", "notifications"],
    "alerts": {
        "messages_per_second": 10,
        "routes": [{"match": {"severity": "critical"}, "channel": "C0PAGE"}],
    },
}
T0 = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


def alert(
    name: str = "QueueDLQJobsPresent",
    *,
    queue: str | None = "email",
    status: str = "firing",
    start: datetime = T0,
    end: datetime | None = None,
    severity: str = "warning",
    **annotations: str,
) -> dict:
    """One alert as Alertmanager's webhook sends it."""
    labels = {"alertname": name, "severity": severity, **({"queue": queue} if queue else {})}
    fingerprint = hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": f"{name} on {queue}", "description": "details", **annotations},
        "startsAt": start.isoformat().replace("+00:00", "Z"),
        "endsAt": (end.isoformat().replace("+00:00", "Z") if end else "0001-01-01T00:00:00Z"),
        "generatorURL": "http://prometheus:9090/graph?g0.expr=crm_queue_jobs_dlq_total",
        "fingerprint": fingerprint,
    }


def notification(
    alerts: list[dict], group: str = '{}:{alertname="QueueDLQJobsPresent", queue="email"}'
) -> dict:
    """A version 4 webhook payload of these alerts."""
    common = dict(alerts[0]["labels"]) if alerts else {}
    for a in alerts[1:]:
        common = {k: v for k, v in common.items() if a["labels"].get(k) == v}
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {
        "version": "4",
        "groupKey": group,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "forge",
        "groupLabels": {},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
    }


async def send(bot: Harness, payload: Any, token: str | None = TOKEN) -> tuple[int, dict]:
    """POST a payload to /alerts/alertmanager; its status and JSON answer."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            bot.url + "/alerts/alertmanager",
            data=data,
            headers={**headers, "Content-Type": "application/json"},
        ) as r,
    ):
        return r.status, await r.json()


def later(minutes: float) -> datetime:
    """T0 plus some minutes."""
    return T0 + timedelta(minutes=minutes)


def settings_for(state_dsn: str, slack_url: str, **overrides: Any):  # type: ignore[no-untyped-def]
    """forge's settings with the alerts channel, a critical route and the webhook token."""
    config = {**CONFIG, **overrides.pop("config", {})}
    return make_settings(
        Config.model_validate(config),
        forge_state_database_url=state_dsn,
        slack_api_url=slack_url,
        forge_alertmanager_token=TOKEN,
        **overrides,
    )


@pytest.fixture
async def bot(state_dsn, slack) -> AsyncIterator[Harness]:
    """forge over HTTP receiving Alertmanager's webhook."""
    async with running_forge(settings_for(state_dsn, slack.url), slack) as harness:
        yield harness

"""ClientForge's queues as the demo runs them: job shapes, options, and how each worker fails."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from bot.demo.places import OWN_PREFIX

OUTAGE = OWN_PREFIX + "outage"  # while it exists, the SMTP relay is failing some mail
REASONS = (
    "421 4.7.0 smtp.clientforge.example: Service not available, closing transmission channel",
    "552 5.2.2 Mailbox full: the recipient's mailbox is over quota",
    "Template error: variable 'firstName' is undefined in template 'deal-won-v2'",
)
FAILING_SHARE = 35  # percent of mail that fails every attempt during the outage


@dataclass(frozen=True)
class QueueSpec:
    """One of ClientForge's queues: options from bullmq.config.ts, and the demo's pace."""

    name: str
    attempts: int
    backoff: str
    delay_ms: int
    concurrency: int
    work_seconds: float
    share: float  # of the demo's job rate


SPECS = {
    spec.name: spec
    for spec in (
        QueueSpec("email", 5, "exponential", 2000, 5, 0.05, 2.0),
        QueueSpec("data-sync", 3, "fixed", 5000, 1, 1.6, 0.8),  # slower than it is fed: it lags
        QueueSpec("embeddings", 3, "exponential", 1000, 5, 0.2, 0.3),
        QueueSpec("file-processing", 2, "fixed", 3000, 3, 0.3, 0.2),
        QueueSpec("notifications", 3, "exponential", 1000, 20, 0.02, 0.8),
    )
}


def options(spec: QueueSpec, backoff_scale: float) -> dict[str, Any]:
    """ClientForge's job options for this queue, its backoff scaled for the demo's pace."""
    return {
        "attempts": spec.attempts,
        "backoff": {"type": spec.backoff, "delay": max(1, int(spec.delay_ms * backoff_scale))},
        "removeOnComplete": {"count": 100, "age": 3600},
        "removeOnFail": False,
    }


def job(queue: str, n: int) -> tuple[str, dict[str, Any]]:
    """The n-th job of a queue: its name and data, shaped like ClientForge's producers'."""
    tenant = ("6f1c2a9e-0000-4000-8000-000000000001", "6f1c2a9e-0000-4000-8000-000000000002")[n % 2]
    if queue == "email":
        return "send-email", {
            "to": f"contact{n}@example.com",
            "subject": "Your deal moved to proposal",
            "template": "deal-stage-changed",
            "tenantId": tenant,
        }
    if queue == "data-sync":
        name = "generate-report" if n % 4 == 0 else "sync-search-index"
        return name, {"entity": "contact", "entityId": str(1 + n % 5000), "tenantId": tenant}
    if queue == "embeddings":
        return "embed-note", {"noteId": str(n), "tenantId": tenant}
    if queue == "file-processing":
        return "process-upload", {"fileId": f"f{n}", "steps": ["virus-scan", "thumbnail"]}
    return "send-notification", {"userId": str(n % 50), "type": "deal-updated", "tenantId": tenant}


def failure(queue: str, name: str, data: dict[str, Any], outage: bool) -> str | None:
    """Why this job fails on every attempt, or None when it succeeds."""
    if name == "test-failure" or data.get("shouldFail"):
        return str(data.get("message") or "This job is designed to fail for DLQ testing")
    if queue != "email" or not outage:
        return None
    digest = zlib.crc32(str(data.get("to", "")).encode())
    return REASONS[digest % len(REASONS)] if digest % 100 < FAILING_SHARE else None

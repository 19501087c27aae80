"""Alertmanager's alerts taken in one at a time: cleaned where the state store would choke on them,
refused (and named) where they cannot be read, so one poisoned alert never costs the others.

Cleaned: a NUL character or a lone surrogate in any text (PostgreSQL's text and jsonb hold
neither) becomes U+FFFD; a timestamp that exists only east or west of UTC (0001-01-01T00:00+01:00)
becomes the first or last instant PostgreSQL is given. The alert keeps what was done in its
`forge.cleaned` annotation, which its card shows; Alertmanager cannot send an annotation named so.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from bot.alerts.store import Incoming

NOTE = "forge.cleaned"
# asyncpg stores datetime.min and datetime.max as -infinity and infinity and reads them back
# without a time zone, so the instants kept are one second inside them
FIRST = datetime(1, 1, 1, 0, 0, 1, tzinfo=UTC)
LAST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


class AlertIn(BaseModel):
    """One alert of the payload, as Alertmanager's webhook sends it."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""


@dataclass
class Taken:
    """The alerts of one notification as forge records them, and what it did to the others."""

    alerts: list[Incoming] = field(default_factory=list)
    cleaned: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)


def storable(text: str) -> str:
    """The text with what PostgreSQL cannot store (NUL, lone surrogates) as U+FFFD."""
    return UNSTORABLE.sub("\ufffd", text)


def storable_map(values: dict[str, str], where: str, notes: list[str]) -> dict[str, str]:
    """A label or annotation map with every name and value storable; `notes` says what changed."""
    clean: dict[str, str] = {}
    for name, value in values.items():
        key, text = storable(name), storable(value)
        if (key, text) != (name, value):
            notes.append(f"{where}.{key[:40]}: unstorable characters replaced")
        clean[key] = text
    return clean


def moment(value: datetime, where: str, notes: list[str]) -> datetime:
    """The instant in UTC; one that only exists in another zone is clamped, and noted."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        instant: datetime | None = value.astimezone(UTC)
    except OverflowError:  # 0001-01-01 east of UTC, 9999-12-31 west of it
        instant = None
    if instant is not None and FIRST <= instant <= LAST:
        return instant
    clamped = FIRST if value.year < 5000 else LAST
    notes.append(f"{where} {value.isoformat()} is out of range: shown as {clamped:%Y-%m-%d}")
    return clamped


def take(raw_alerts: list[Any]) -> Taken:
    """Each alert read on its own: cleaned and kept, or refused with its index and the reason."""
    taken = Taken()
    for index, raw in enumerate(raw_alerts):
        try:
            alert = AlertIn.model_validate(raw)
        except ValidationError as exc:
            taken.refused.append(_refusal(index, raw, exc))
            continue
        incoming, notes = _incoming(alert)
        taken.alerts.append(incoming)
        if notes:
            taken.cleaned.append({"index": index, "alertname": incoming.alertname, "notes": notes})
    # the last of any repeated alert
    taken.alerts = list({(a.fingerprint, a.starts_at): a for a in taken.alerts}.values())
    return taken


def _incoming(alert: AlertIn) -> tuple[Incoming, list[str]]:
    notes: list[str] = []
    labels = storable_map(alert.labels, "labels", notes)
    annotations = storable_map(alert.annotations, "annotations", notes)
    generator = storable(alert.generatorURL)
    if generator != alert.generatorURL:
        notes.append("generatorURL: unstorable characters replaced")
    starts = moment(alert.startsAt, "startsAt", notes)
    ends = alert.endsAt if alert.status == "resolved" and alert.endsAt else None
    ends = moment(ends, "endsAt", notes) if ends and ends.year > 1 else None
    annotations.pop(NOTE, None)
    if notes:
        annotations[NOTE] = "; ".join(notes)
    fingerprint = storable(alert.fingerprint)[:64] or _fingerprint(labels)
    return Incoming(
        fingerprint,
        starts,
        labels.get("alertname", "unnamed"),
        alert.status,
        labels.get("severity", ""),
        labels,
        annotations,
        generator,
        ends,
    ), notes


def _fingerprint(labels: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]


def _refusal(index: int, raw: Any, exc: ValidationError) -> dict[str, Any]:
    """Which alert was refused and why, named as far as it can be."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "alert"
    labels = raw.get("labels") if isinstance(raw, dict) else None
    name = labels.get("alertname") if isinstance(labels, dict) else None
    fingerprint = raw.get("fingerprint") if isinstance(raw, dict) else None
    return {
        "index": index,
        "alertname": storable(name)[:100] if isinstance(name, str) else None,
        "fingerprint": storable(fingerprint)[:64] if isinstance(fingerprint, str) else None,
        "reason": storable(f"{where}: {first['msg']}")[:200],
    }

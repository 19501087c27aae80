"""`POST /alerts/alertmanager`: Alertmanager's v4 webhook, bearer-authenticated, recorded, shown."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Literal

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.alerts.publisher import AlertPublisher
from bot.alerts.store import Group, Incoming
from bot.config.settings import Config
from bot.core.errors import BackendError
from bot.core.forge import Forge

log = structlog.get_logger(__name__)


class AlertIn(BaseModel):
    """One alert of the payload."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""


class Notification(BaseModel):
    """Alertmanager's webhook payload, version 4."""

    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    groupKey: str = Field(min_length=1, max_length=4000)
    receiver: str = ""
    status: str = ""
    groupLabels: dict[str, str] = {}
    commonLabels: dict[str, str] = {}
    externalURL: str = ""
    alerts: list[AlertIn] = Field(max_length=10_000)


def authorized(header: str, token: str | None) -> bool:
    """Bearer token check in constant time; no token configured refuses everything."""
    if not token:
        return False
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


def channel_for(labels: dict[str, str], config: Config) -> str:
    """The first route whose labels all match, else `channels.alerts`; empty when neither is set."""
    for route in config.alerts.routes:
        if all(labels.get(k) == v for k, v in route.match.items()):
            return route.channel
    return config.channels.alerts or ""


def _fingerprint(alert: AlertIn) -> str:
    if alert.fingerprint:
        return alert.fingerprint[:64]
    return hashlib.sha256(json.dumps(alert.labels, sort_keys=True).encode()).hexdigest()[:16]


def to_group(payload: Notification, config: Config) -> Group:
    """The payload as forge records it."""
    alerts = [
        Incoming(
            _fingerprint(a),
            a.startsAt,
            a.labels.get("alertname", "unnamed"),
            a.status,
            a.labels.get("severity", ""),
            a.labels,
            a.annotations,
            a.generatorURL,
            a.endsAt if a.status == "resolved" and a.endsAt and a.endsAt.year > 1 else None,
        )
        for a in payload.alerts
    ]
    unique = list(
        {(a.fingerprint, a.starts_at): a for a in alerts}.values()
    )  # the last of any repeated alert
    return Group(
        payload.groupKey,
        channel_for(payload.commonLabels, config),
        payload.receiver,
        payload.externalURL,
        payload.commonLabels,
        unique,
    )


async def receive(
    request: web.Request, forge: Forge, publisher: AlertPublisher | None
) -> web.Response:
    """Authenticate, validate, record in one transaction, wake the publisher; 503 lets it retry."""
    settings = forge.settings
    token = settings.env.forge_alertmanager_token
    if not authorized(
        request.headers.get("Authorization", ""), token.get_secret_value() if token else None
    ):
        log.info("authn_fail", route="alertmanager")
        return web.json_response({"error": "unauthorized"}, status=401)
    try:
        payload = Notification.model_validate_json(await request.read())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        return web.json_response(
            {"error": f"not an Alertmanager v4 payload: {where}: {first['msg']}"}, status=400
        )
    try:
        changed = await forge.alerts.receive(to_group(payload, settings.config))
    except BackendError as exc:
        log.warning("alerts_not_recorded", error=str(exc), group=payload.groupKey[:80])
        return web.json_response({"error": "state store unavailable; retry"}, status=503)
    if changed and publisher is not None:
        publisher.wake()
    log.info(
        "alerts_received", alerts=len(payload.alerts), changed=changed, group=payload.groupKey[:80]
    )
    return web.json_response({"status": "accepted", "alerts": len(payload.alerts)})

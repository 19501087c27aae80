"""`POST /alerts/alertmanager`: Alertmanager's v4 webhook, bearer-authenticated, recorded, shown.

Alertmanager retries a notification answered 5xx and drops one answered 4xx (notify/webhook:
only 5xx is retryable, and its webhook adds no retryable 4xx such as 429). So forge answers 503
only when the state store itself is down; a notification that can never be recorded gets 4xx;
and a poisoned alert is cleaned or refused alone (bot/alerts/intake.py) while the others are
recorded and the answer is 200.
"""

from __future__ import annotations

import hmac
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.alerts import intake
from bot.alerts.publisher import AlertPublisher
from bot.alerts.store import Group, is_data_error
from bot.config.settings import Config
from bot.core.errors import BackendError
from bot.core.forge import Forge
from bot.http import metrics
from bot.log import get_logger

log = get_logger(__name__)

# The largest notification Alertmanager sends under deploy/ (the arithmetic the cap rests on).
# Go's JSON encoder writes a byte of a label value or annotation as at most 6 (\u00XX); label
# names ([a-zA-Z_][a-zA-Z0-9_]*) are never escaped. tests/unit/test_alert_intake.py checks the
# premises against deploy/.
ESCAPED = 6
SCRAPE_LABELS, LABEL_NAME, LABEL_VALUE = 16, 64, 128  # prometheus.yml's scrape label limits
RULE_LABELS = 4  # alertname plus the rules' severity, component and team
LABELS = SCRAPE_LABELS - 1 + RULE_LABELS  # __name__ is not an alert label: 19
LABEL = LABEL_NAME + LABEL_VALUE * ESCAPED + 6  # quotes, colon, comma: 838 B
# queue-alerts.yml: at most 4 annotations, each at most 120 B of text, one label and $value
ANNOTATION = 16 + (120 + LABEL_VALUE + 32) * ESCAPED + 6  # 1,702 B
GENERATOR_URL = 1024  # external URL (512 B) + /graph?g0.expr= + the longest expression, escaped
FIXED = 256  # status, startsAt, endsAt, fingerprint and the keys
ALERT = LABELS * LABEL + 4 * ANNOTATION + GENERATOR_URL + FIXED  # 24,010 B
ENVELOPE = 2 * LABELS * LABEL + 4 * ANNOTATION + 16 * 1024  # common/group labels, groupKey…
MAX_ALERTS = 1000  # alertmanager.yml's max_alerts
NOTIFICATION_CAP = MAX_ALERTS * ALERT + ENVELOPE  # 24,065,036 B, about 23 MiB
READ_CHUNK = 256 * 1024


class Notification(BaseModel):
    """Alertmanager's webhook payload, version 4; its alerts are read one by one (intake)."""

    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    groupKey: str = Field(min_length=1, max_length=4000)
    receiver: str = ""
    status: str = ""
    groupLabels: dict[str, str] = {}
    commonLabels: dict[str, str] = {}
    externalURL: str = ""
    alerts: list[Any] = Field(max_length=10 * MAX_ALERTS)


def authorized(header: str, token: str | None) -> bool:
    """Bearer token check in constant time; no token configured refuses everything."""
    if not token:
        return False
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("utf-8", "replace"), token.encode()
    )


def channel_for(labels: dict[str, str], config: Config) -> str:
    """The first route whose labels all match, else `channels.alerts`; empty when neither is set."""
    for route in config.alerts.routes:
        if all(labels.get(k) == v for k, v in route.match.items()):
            return route.channel
    return config.channels.alerts or ""


def to_group(payload: Notification, taken: intake.Taken, config: Config) -> Group:
    """The payload as forge records it: the alerts intake took, the rest of it storable."""
    common = intake.storable_map(payload.commonLabels, "commonLabels", [])
    return Group(
        intake.storable(payload.groupKey),
        channel_for(common, config),
        intake.storable(payload.receiver),
        intake.storable(payload.externalURL),
        common,
        taken.alerts,
    )


async def read_capped(request: web.Request, cap: int) -> bytes | None:
    """The body, or None past `cap` bytes (what is left unread, aiohttp reads and discards)."""
    if request.content_length is not None and request.content_length > cap:
        return None
    body = bytearray()
    async for chunk in request.content.iter_chunked(READ_CHUNK):
        body += chunk
        if len(body) > cap:
            return None
    return bytes(body)


def _answer(error: str, status: int) -> web.Response:
    metrics.ALERT_NOTIFICATIONS.labels(outcome=str(status)).inc()
    return web.json_response({"error": error}, status=status)


async def receive(
    request: web.Request, forge: Forge, publisher: AlertPublisher | None
) -> web.Response:
    """Authenticate, read within the cap, take each alert, record; 503 only for a store that is
    down, so Alertmanager retries exactly what can succeed later."""
    settings = forge.settings
    token = settings.env.forge_alertmanager_token
    if not authorized(
        request.headers.get("Authorization", ""), token.get_secret_value() if token else None
    ):
        log.info("authn_fail", route="alertmanager")
        return _answer("unauthorized", 401)
    cap = settings.config.alerts.max_notification_bytes or NOTIFICATION_CAP
    raw = await read_capped(request, cap)
    if raw is None:
        log.warning("alerts_notification_too_large", cap=cap, length=request.content_length)
        return _answer(f"notification larger than {cap} bytes; not recorded", 413)
    try:
        payload = Notification.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        return _answer(f"not an Alertmanager v4 payload: {where}: {first['msg']}"[:300], 400)
    taken = intake.take(payload.alerts)
    return await _record(forge, publisher, to_group(payload, taken, settings.config), taken)


async def _record(
    forge: Forge, publisher: AlertPublisher | None, group: Group, taken: intake.Taken
) -> web.Response:
    """Record the group; a store that refuses its data records the alerts it takes, alone."""
    poisoned: list = []
    try:
        changed = await forge.alerts.receive(group) if group.alerts else False
    except BackendError as exc:
        if not is_data_error(exc.__cause__):
            log.warning("alerts_not_recorded", error=str(exc), group=group.key[:80])
            return _answer("state store unavailable; retry", 503)
        try:
            changed, poisoned = await forge.alerts.receive_sifted(group)
        except BackendError as again:
            log.warning("alerts_not_recorded", error=str(again), group=group.key[:80])
            return _answer("state store unavailable; retry", 503)
        taken.refused.extend(
            {"alertname": a.alertname, "fingerprint": a.fingerprint, "reason": why[:200]}
            for a, why in poisoned
        )
    if changed and publisher is not None:
        publisher.wake()
    return _accepted(group, taken, changed, len(group.alerts) - len(poisoned))


def _accepted(group: Group, taken: intake.Taken, changed: bool, recorded: int) -> web.Response:
    if taken.cleaned or taken.refused:
        log.warning(
            "alerts_poisoned",
            group=group.key[:80],
            cleaned=taken.cleaned[:10],
            refused=taken.refused[:10],
        )
    log.info("alerts_received", alerts=recorded, changed=changed, group=group.key[:80])
    metrics.ALERT_NOTIFICATIONS.labels(outcome="200").inc()
    answer: dict[str, Any] = {"status": "accepted", "alerts": recorded}
    if taken.cleaned:
        answer["cleaned"] = taken.cleaned
    if taken.refused:
        answer["refused"] = taken.refused
    return web.json_response(answer)

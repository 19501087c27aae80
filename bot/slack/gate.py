"""The one way in from Slack: verified, well-formed, first delivery, or refused with a reason.

HTTP requests pass `door` (signature, body) and every request, HTTP or Socket Mode, passes
`screen`, Bolt's first middleware after its own signature check: the body's shape (ingress) and
the delivery's key. Whether a delivery was handled before (a replay, or Slack's retry on any
route) is decided by that key, once: before a modal's listener runs, or (`once`) before the work
any other listener leaves for after its ack. `on_error` is Bolt's error handler: an unknown
button, callback or event, or a listener that failed, is answered 2xx or 4xx, never 500. Every
refusal is logged, counted and audited.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog
from slack_bolt.error import BoltUnhandledRequestError
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.signature import SignatureVerifier

from bot.core.audit import AuditEntry
from bot.core.errors import BackendError
from bot.core.forge import Forge
from bot.http import metrics
from bot.slack import ingress
from bot.slack.ingress import Body, Refusal

log = structlog.get_logger(__name__)
FIRST_DELIVERY_BUDGET = 1.0
DELIVERY = "forge_delivery_key"
# handled by the listener before the ack leaves, so checked before it runs; the rest after the ack
INLINE = {"view_submission", "view_closed", "block_suggestion"}
Spawn = Callable[[Awaitable[Any]], None]
Respond = Callable[[str, str], Awaitable[Any]]


class Deliveries:
    """Slack deliveries already handled, in the state store (shared by replicas), else in memory."""

    def __init__(self, forge: Forge, capacity: int = 10_000) -> None:
        self._forge = forge
        self._memory: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    async def first(self, key: str, budget: float = FIRST_DELIVERY_BUDGET) -> bool:
        """True the first time a key is seen; a store slower than `budget` leaves it to memory."""
        seen_here = key in self._memory
        self._memory[key] = None
        while len(self._memory) > self._capacity:
            self._memory.popitem(last=False)
        try:
            return await asyncio.wait_for(self._forge.store.first_delivery(key), budget)
        except (BackendError, TimeoutError):
            return not seen_here


class Gate:
    """Verifies, screens and refuses Slack's requests; owned by the Slack surface."""

    def __init__(
        self, forge: Forge, signing_secret: str, spawn: Spawn, respond: Respond | None = None
    ) -> None:
        self.forge = forge
        self.deliveries = Deliveries(forge)
        self._verifier = SignatureVerifier(signing_secret)
        self._spawn = spawn
        self._respond = respond

    def verified(self, raw: bytes, headers: Mapping[str, str]) -> bool:
        """Slack's v0 signature over the raw body, within Bolt's five minutes."""
        try:
            return self._verifier.is_valid(
                raw,
                headers.get("X-Slack-Request-Timestamp", ""),
                headers.get("X-Slack-Signature", ""),
            )
        except (ValueError, TypeError, UnicodeError):
            return False

    def door(self, raw: bytes, content_type: str) -> Body | BoltResponse:
        """A verified HTTP body as Bolt may read it, or the refusal's answer."""
        body = ingress.read(raw, content_type)
        refusal = body if isinstance(body, Refusal) else ingress.problem(body)
        return self.refuse(refusal) if refusal else body  # type: ignore[return-value]

    async def screen(self, req: AsyncBoltRequest, next: Callable[[], Awaitable[Any]]) -> Any:
        """Bolt middleware: a body of the wrong shape is refused; the delivery's key is noted, and
        a modal's (answered before the ack leaves) checked now: one seen before is acked only."""
        refusal = ingress.problem(req.body) if isinstance(req.body, dict) else Refusal("no body")
        if refusal is not None:
            return self.refuse(refusal)
        key = ingress.delivery_key(req.body, req.raw_body)
        req.context[DELIVERY] = key
        if key is not None and ingress.kind_of(req.body) in INLINE:
            if not await self.deliveries.first(key):
                return self._duplicate(req, key)
        return await next()

    async def once(self, req: AsyncBoltRequest, work: Callable[[], Awaitable[Any]]) -> None:
        """Run what a listener left for after its ack, unless this delivery was handled before:
        checked after the ack, so the state store's round trip never delays one."""
        key = req.context.get(DELIVERY)
        if key is not None and not await self.deliveries.first(key):
            self._duplicate(req, key)
            return
        await work()

    def _duplicate(self, req: AsyncBoltRequest, key: str) -> BoltResponse:
        retry = next(iter(req.headers.get("x-slack-retry-num") or []), None)
        metrics.SLACK_REQUESTS.labels(kind="duplicate", outcome="ignored").inc()
        log.info("replay_rejected", key=key.split(":")[0], retry=retry)
        refusal = Refusal(
            f"delivered before ({'retry ' + retry if retry else 'replay'})",
            ingress.kind_of(req.body),
            ingress.actor_of(req.body),
            ingress.channel_of(req.body),
        )
        self._audit(refusal, "replay_refused")
        return BoltResponse(status=200, body="")

    async def on_error(self, error: Exception, body: Any, request: Any) -> BoltResponse:
        """Bolt's error handler: nothing it raises or leaves unhandled becomes a 500."""
        body = body if isinstance(body, dict) else {}
        if isinstance(error, BoltUnhandledRequestError):
            return self._unhandled(body)
        error_id = secrets.token_hex(4)
        log.error(
            "slack_listener_failed", error_id=error_id, error=type(error).__name__, exc_info=error
        )
        refusal = Refusal(
            f"forge failed to handle this (error id {error_id})",
            ingress.kind_of(body),
            ingress.actor_of(body),
            ingress.channel_of(body),
        )
        return self.refuse(refusal, event="request_failed")

    def _unhandled(self, body: Body) -> BoltResponse:
        kind = ingress.kind_of(body)
        what = {
            "slash": f"the command {str(body.get('command'))[:40]}",
            "block_actions": "this button",
            "event_callback": "this event",
        }.get(kind, "this request")
        refusal = Refusal(
            f"forge does not handle {what}", kind, ingress.actor_of(body), ingress.channel_of(body)
        )
        url = body.get("response_url")
        if kind == "block_actions" and isinstance(url, str) and self._respond is not None:
            self._spawn(self._respond(url, f"❌ {refusal.reason}; run the command again."))
            self._record(refusal, "request_refused")
            return BoltResponse(status=200, body="")
        return self.refuse(refusal)

    def refuse(self, refusal: Refusal, event: str = "request_refused") -> BoltResponse:
        """Log, count and audit a refusal; the answer for its kind of request."""
        self._record(refusal, event)
        if refusal.kind == "slash":
            reply = {"response_type": "ephemeral", "text": f"❌ {refusal.reason}"}
            return BoltResponse(status=200, body=json.dumps(reply), headers=_JSON)
        if refusal.kind in ("event_callback", "ssl_check", "url_verification"):
            return BoltResponse(status=200, body="", headers={"X-Slack-No-Retry": "1"})
        return BoltResponse(status=400, body=json.dumps({"error": refusal.reason}), headers=_JSON)

    def _record(self, refusal: Refusal, event: str) -> None:
        metrics.SLACK_REQUESTS.labels(kind=refusal.kind[:30], outcome="refused").inc()
        log.info(event, reason=refusal.reason, kind=refusal.kind, actor=refusal.actor)
        self._audit(refusal, event)

    def _audit(self, refusal: Refusal, event: str) -> None:
        entry = AuditEntry(
            event=event,
            actor_id=refusal.actor or "unknown",
            text=refusal.reason,
            outcome="refused",
            channel_id=refusal.channel,
            request_id=str(structlog.contextvars.get_contextvars().get("request_id", "")),
            detail={"kind": refusal.kind},
        )
        self._spawn(self.forge.audit.try_record(entry))


_JSON: dict[str, str | Sequence[str]] = {"Content-Type": "application/json"}

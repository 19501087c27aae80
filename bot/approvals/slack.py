"""Slack's side of the approval engine: the confirmation dialog, the approval card, its buttons."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot.approvals.blocks import approval_card, confirm_modal
from bot.approvals.engine import ApprovalEngine, Decision, preview_text
from bot.approvals.store import Approval
from bot.core.context import Clock
from bot.core.dispatch import Checked, Invocation, Outcome
from bot.core.scope import Scope
from bot.log import get_logger
from bot.slack.outbox import Outbox
from bot.slack.render import Meta, message, running_message, section, to_message
from bot.text.cells import Text, plain, rich

log = get_logger(__name__)
Requested = Callable[[str, str | None, str, str, str], Awaitable[None]]
# Sealed JSON spells <, > and & as \u escapes: hostile text it carries never looks like markup.
_MARKUP_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})
METADATA_LIMIT = 3000  # Slack's cap on a view's private_metadata, in characters
SEALED = {"text", "channel", "user", "command", "params"}


class Sealer:
    """Signs the dialog's private_metadata so a tampered one is refused."""

    def __init__(self, key: str) -> None:
        self._key = key.encode()

    def seal(self, payload: dict[str, Any], shorten: str | None = None) -> str:
        """JSON plus its HMAC, within Slack's limit: the `shorten` text is cut (with …) to fit."""
        sealed = self._seal(payload)
        if shorten is None or len(sealed) <= METADATA_LIMIT:
            return sealed
        text, keep, cut = payload[shorten], 0, len(payload[shorten])
        while keep < cut:  # the longest prefix that still fits
            middle = (keep + cut + 1) // 2
            if len(self._seal({**payload, shorten: text[:middle] + "…"})) <= METADATA_LIMIT:
                keep = middle
            else:
                cut = middle - 1
        return self._seal({**payload, shorten: text[:keep] + "…"})

    def _seal(self, payload: dict[str, Any]) -> str:
        body = json.dumps(payload, sort_keys=True).translate(_MARKUP_SAFE)
        return json.dumps(
            {"p": body, "s": hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()}
        )

    def open(self, sealed: str) -> dict[str, Any] | None:
        """The payload, or None when the seal does not match."""
        try:
            outer = json.loads(sealed)
            expected = hmac.new(self._key, outer["p"].encode(), hashlib.sha256).hexdigest()
            return json.loads(outer["p"]) if hmac.compare_digest(expected, outer["s"]) else None
        except (ValueError, KeyError, TypeError):
            return None


@dataclass
class ThreadReply:
    """Progress of an approved command: one ⏳ reply under the card, edited, then the result."""

    outbox: Outbox
    channel: str
    user: str
    environment: str
    card_ts: str | None
    clock: Clock
    ts: str | None = None

    async def progress(self, note: Text) -> None:
        """Post the ⏳ reply, or edit it with news."""
        message = running_message(note, Meta(self.user, self.clock.now(), 0, self.environment))
        if self.ts:
            await self.outbox.update(self.channel, self.ts, message)
        else:
            self.ts, _ = await self.outbox.post(self.channel, message, self.card_ts)


class ApprovalUI:
    """Opens dialogs, posts and updates cards, and answers Approve and Deny."""

    def __init__(
        self, engine: ApprovalEngine, outbox: Outbox, sealer: Sealer, environment: str
    ) -> None:
        self.engine = engine
        self.outbox = outbox
        self.sealer = sealer
        self.environment = environment
        self.on_requested: Requested | None = None

    async def open_dialog(
        self, trigger_id: str | None, inv: Invocation, outcome: Outcome, meta: Meta
    ) -> None:
        """Open the dialog at once, then fill in the dry run: run once, sealed for the request."""
        checked = outcome.checked
        assert checked is not None  # an "approval" outcome always carries its check
        asked = {
            "text": inv.text,
            "channel": inv.channel_id or "",
            "user": inv.actor_id,
            "thread": inv.thread_ts or "",
        }
        sealed = self.sealer.seal(asked)
        name = checked.parsed.text
        view_id = (
            await self.outbox.open_view(trigger_id, confirm_modal(name, sealed))
            if trigger_id
            else None
        )
        if view_id is None:
            await self.outbox.ephemeral(
                inv.channel_id or "",
                inv.actor_id,
                message("❌ Couldn't open the confirmation dialog; run the command again.", []),
            )
            return
        preview = await self.engine.preview(checked)
        spec, args = checked.spec, checked.parsed.args
        found = (
            {"preview": preview_text(preview.result)}
            if preview.result
            else {"failed": plain(preview.message)}
        )
        frozen = preview.result.scope if preview.result else None
        sealed = self.sealer.seal(
            asked
            | {"command": spec.name, "params": args.model_dump(mode="json")}
            | ({"scope": frozen.to_json()} if frozen else {})
            | found,
            shorten=next(iter(found)),
        )
        expected = spec.confirm(args) if spec.confirm else name
        view = (
            confirm_modal(name, sealed, preview.result, expected)
            if preview.result
            else confirm_modal(name, sealed, error=preview.message)
        )
        await self.outbox.update_view(view_id, view)

    async def on_submit(self, ack: Any, body: dict, view: dict) -> asyncio.Task | None:
        """Refuse a wrong confirmation in the dialog; else close it and post the approval card."""
        payload = self.sealer.open(view.get("private_metadata", ""))
        user = body["user"]["id"]
        if payload is None or payload.get("user") != user or not _filled(payload):
            await ack(
                response_action="errors",
                errors={"confirm": "This dialog is not valid; run the command again."},
            )
            return None
        typed = (
            (((view.get("state") or {}).get("values") or {}).get("confirm") or {})
            .get("typed", {})
            .get("value")
        )
        inv = Invocation(
            payload["text"],
            user,
            payload["channel"] or None,
            event="confirm",
            thread_ts=payload.get("thread") or None,
        )
        checked = await self.engine.confirmation(
            inv, typed or "", payload["command"], payload["params"]
        )
        if isinstance(checked, str):
            await ack(response_action="errors", errors={"confirm": checked})
            await self.engine.refuse_confirmation(inv, checked)
            return None
        await ack()
        if "failed" in payload:  # a forged submit of a dialog whose dry run failed
            said = rich("The dry run failed, so nothing was requested: ", payload["failed"])
            return asyncio.create_task(self._tell(inv.channel_id or "", user, said))
        scope = Scope.from_json(payload.get("scope"))
        return asyncio.create_task(self._request(checked, payload["preview"], scope))

    async def _request(self, checked: Checked, preview: str, scope: Scope | None) -> None:
        inv = checked.inv
        decision = await self.engine.request(checked, preview, scope)
        if decision.approval is None:
            await self._tell(inv.channel_id or "", inv.actor_id, decision.message)
            return
        card = approval_card(decision.approval, self.environment)
        ts, _ = await self.outbox.post(decision.approval.channel_id, card)
        if ts:
            await self.engine.approvals.set_message(decision.approval.id, ts)
        if self.on_requested is not None:
            await self.on_requested(
                decision.approval.channel_id,
                inv.thread_ts,
                inv.actor_id,
                decision.approval.text,
                str(decision.approval.id),
            )

    async def on_approve(self, body: dict, value: str) -> None:
        """Approve: claim, mark the card running, execute once, show the outcome."""
        user, approval_id = body["user"]["id"], _uuid(value)
        if approval_id is None:
            await self._tell(_channel(body), user, "No such approval request.")
            return
        reply = ThreadReply(
            self.outbox,
            _channel(body),
            user,
            self.environment,
            (body.get("container") or {}).get("message_ts"),
            self.engine.dispatcher.clock,
        )
        decision = await self.engine.approve(approval_id, user, self._refresh, reply.progress)
        await self._after(decision, body, user, reply)

    async def on_deny(self, body: dict, value: str) -> None:
        """Deny (an approver) or cancel (the requester)."""
        user, approval_id = body["user"]["id"], _uuid(value)
        if approval_id is None:
            await self._tell(_channel(body), user, "No such approval request.")
            return
        await self._after(await self.engine.deny(approval_id, user), body, user)

    async def _after(
        self, decision: Decision, body: dict, user: str, reply: ThreadReply | None = None
    ) -> None:
        if decision.kind == "refused":
            await self._tell(_channel(body), user, decision.message)
            return
        if decision.approval is not None:
            await self._refresh(decision.approval)
        if decision.kind == "revoked":
            await self._tell(_channel(body), user, decision.message)
        if decision.outcome is not None and decision.approval is not None:
            await self._post_outcome(decision, reply.ts if reply else None)

    async def _post_outcome(self, decision: Decision, progress_ts: str | None = None) -> None:
        approval, outcome = decision.approval, decision.outcome
        assert approval is not None and outcome is not None
        meta = Meta(
            approval.requester_id, approval.decided_at or approval.created_at, 0, self.environment
        )
        message = to_message(outcome, meta)
        if progress_ts and await self.outbox.update(approval.channel_id, progress_ts, message):
            ts: str | None = progress_ts
        else:
            ts, _ = await self.outbox.post(approval.channel_id, message, approval.message_ts)
        for attachment in message.attachments:
            await self.outbox.upload(approval.channel_id, attachment, approval.message_ts or ts)

    async def _refresh(self, approval: Approval) -> None:
        """Re-render the card in place from the stored row."""
        if approval.message_ts:
            await self.outbox.update(
                approval.channel_id, approval.message_ts, approval_card(approval, self.environment)
            )

    async def _tell(self, channel: str, user: str, text: Text) -> None:
        """A private one-liner to the person who acted."""
        line = rich("🚫 ", text)
        await self.outbox.ephemeral(channel, user, message(line, [section(line)]))

    async def sweep(self) -> None:
        """Expire overdue requests, turn lapsed executions outcome_unknown; update their cards."""
        for approval in await self.engine.sweep():
            await self._refresh(approval)


def _filled(payload: dict[str, Any]) -> bool:
    """The sealed metadata of a dialog whose dry run is in (shown, or failed)."""
    return SEALED <= payload.keys() and ("preview" in payload or "failed" in payload)


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError):
        return None


def _channel(body: dict) -> str:
    return (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
        "channel_id", ""
    )

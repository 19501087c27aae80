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

import structlog

from bot.approvals.blocks import approval_card, confirm_modal
from bot.approvals.engine import ApprovalEngine, Decision
from bot.approvals.store import Approval
from bot.core.cells import Text, rich
from bot.core.context import Clock
from bot.core.dispatch import Invocation, Outcome
from bot.slack.outbox import Outbox
from bot.slack.render import Meta, message, running_message, section, to_message

log = structlog.get_logger(__name__)
Requested = Callable[[str, str | None, str, str, str], Awaitable[None]]


class Sealer:
    """Signs the dialog's private_metadata so a tampered one is refused."""

    def __init__(self, key: str) -> None:
        self._key = key.encode()

    def seal(self, payload: dict[str, str]) -> str:
        """JSON plus its HMAC."""
        body = json.dumps(payload, sort_keys=True)
        return json.dumps(
            {"p": body, "s": hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()}
        )

    def open(self, sealed: str) -> dict[str, str] | None:
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
        """Open the confirmation dialog at once, then fill in the dry run."""
        sealed = self.sealer.seal(
            {
                "text": inv.text,
                "channel": inv.channel_id or "",
                "user": inv.actor_id,
                "thread": inv.thread_ts or "",
            }
        )
        name = outcome.parsed.text if outcome.parsed else inv.text
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
        preview = await self.engine.preview(outcome.parsed, inv)  # type: ignore[arg-type]
        if preview.result is None:
            await self.outbox.update_view(
                view_id, confirm_modal(name, sealed, error=preview.message)
            )
            return
        expected = (
            outcome.spec.confirm(outcome.parsed.args)
            if outcome.spec and outcome.spec.confirm
            else name
        )
        await self.outbox.update_view(
            view_id, confirm_modal(name, sealed, preview.result, expected)
        )

    async def on_submit(self, ack: Any, body: dict, view: dict) -> asyncio.Task | None:
        """Refuse a wrong confirmation in the dialog; else close it and post the approval card."""
        payload = self.sealer.open(view.get("private_metadata", ""))
        user = body["user"]["id"]
        if payload is None or payload["user"] != user:
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
        problem = await self.engine.confirmation_error(inv, typed or "")
        if problem:
            await ack(response_action="errors", errors={"confirm": problem})
            await self.engine.refuse_confirmation(inv, problem)
            return None
        await ack()
        return asyncio.create_task(self._request(inv, typed or ""))

    async def _request(self, inv: Invocation, typed: str) -> None:
        decision = await self.engine.request(inv, typed)
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


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError):
        return None


def _channel(body: dict) -> str:
    return (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
        "channel_id", ""
    )

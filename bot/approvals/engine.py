"""The destructive-action engine: typed confirmation, a second approver, exactly-once execution."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Literal

from bot.approvals.lease import renewing, unknown_advice
from bot.approvals.store import Approval, ApprovalStore
from bot.core.context import Actor, no_progress
from bot.core.dispatch import STOPPED, Checked, Dispatcher, Invocation, Outcome
from bot.core.errors import ForgeError, PermissionDenied
from bot.core.parser import Parsed
from bot.core.result import Result
from bot.core.scope import Scope
from bot.log import get_logger
from bot.text.cells import Text, User, plain, rich

log = get_logger(__name__)
Kind = Literal["requested", "refused", "revoked", "executed", "denied", "cancelled"]
Claimed = Callable[[Approval], Awaitable[None]]
Progress = Callable[[Text], Awaitable[None]]


@dataclass(frozen=True)
class Decision:
    """What a confirmation, approval or denial did; `message` is for the person who acted."""

    kind: Kind
    message: Text = ""
    approval: Approval | None = None
    outcome: Outcome | None = None


class ApprovalEngine:
    """Request, approve, deny and expire destructive commands; transport-agnostic."""

    def __init__(self, dispatcher: Dispatcher, approvals: ApprovalStore) -> None:
        self.dispatcher = dispatcher
        self.approvals = approvals
        self.ttl = timedelta(minutes=dispatcher.settings.config.approval_ttl_minutes)
        leases = dispatcher.settings.config.approvals
        self.lease, self.renew_every = timedelta(seconds=leases.lease_seconds), leases.renew_seconds

    async def preview(self, checked: Checked) -> Outcome:
        """The command's dry run, as the requester and the approver will see it."""
        return await self.dispatcher.preview(checked)

    async def confirmation(
        self, inv: Invocation, typed: str, command: str, params: dict[str, Any]
    ) -> Checked | str:
        """The one check of a submitted dialog: the request, checked, or why it is refused."""
        try:
            parsed = self.dispatcher.restore(command, params, inv.text)
            checked = await self.dispatcher.check(inv, parsed=parsed)
        except ForgeError as exc:
            return str(exc)
        expected = _expected(checked.parsed)
        return checked if typed.strip() == expected else f"Type `{expected}` exactly to confirm."

    async def refuse_confirmation(self, inv: Invocation, reason: str) -> None:
        """Audit a confirmation the dialog refused."""
        await self._audit(inv, "confirm_mismatch", "refused", None)
        log.info("confirm_refused", reason=reason)

    async def request(self, checked: Checked, preview: str, scope: Scope | None = None) -> Decision:
        """Store a pending request for a checked, confirmed command, with the dry run it showed."""
        inv, parsed = checked.inv, checked.parsed
        approval = await self.approvals.create(
            command=parsed.spec.name,
            text=parsed.text,
            params=parsed.args.model_dump(mode="json"),
            requester_id=inv.actor_id,
            channel_id=inv.channel_id or "",
            preview=preview,
            ttl=self.ttl,
            environment=self.dispatcher.settings.environment,
            scope=scope.to_json() if scope else None,
        )
        await self._audit(inv, "approval_requested", "pending", parsed.spec.name, approval)
        return Decision("requested", approval=approval)

    async def approve(
        self,
        approval_id: uuid.UUID,
        clicker_id: str,
        on_claimed: Claimed,
        progress: Progress = no_progress,
    ) -> Decision:
        """Claim the request atomically for this approver, then execute it exactly once."""
        approval = await self.approvals.get(approval_id)
        if approval is None:
            return Decision("refused", "No such approval request.")
        inv = Invocation(approval.text, clicker_id, approval.channel_id, event="approve")
        approver = await self._approver(approval, clicker_id)
        refusal = _approver_refusal(approval, approver)
        if refusal:
            await self._audit(inv, "authz_fail", "denied", approval.command, approval)
            return Decision("refused", refusal, approval)
        claimed = await self.approvals.claim(approval.id, clicker_id, self.lease)
        if claimed is None:
            return Decision("refused", await self._why_not(approval.id), approval)
        async with renewing(self.approvals, claimed.id, self.lease, self.renew_every):
            await self._audit(inv, "approved", "executing", approval.command, claimed)
            await on_claimed(claimed)
            return await self._execute(claimed, approver, progress)

    async def deny(self, approval_id: uuid.UUID, clicker_id: str) -> Decision:
        """An approver denies; the requester cancels; anyone else is refused."""
        approval = await self.approvals.get(approval_id)
        if approval is None:
            return Decision("refused", "No such approval request.")
        inv = Invocation(approval.text, clicker_id, approval.channel_id, event="deny")
        own = clicker_id == approval.requester_id
        if not own and not (await self.dispatcher.actor(clicker_id, "slack")).approver:
            await self._audit(inv, "authz_fail", "denied", approval.command, approval)
            return Decision(
                "refused", "Only an approver (or the requester, to cancel) may deny this.", approval
            )
        declined = await self.approvals.decline(
            approval.id, clicker_id, "cancelled" if own else "denied"
        )
        if declined is None:
            return Decision("refused", await self._why_not(approval.id), approval)
        await self._audit(inv, declined.status, declined.status, approval.command, declined)
        return Decision(declined.status, approval=declined)  # type: ignore[arg-type]

    async def sweep(self) -> list[Approval]:
        """Expire overdue requests and abandoned executions; the changed rows, for their cards."""
        changed = []
        for approval in await self.approvals.expire_due():
            if approval.status == "outcome_unknown":
                spec = self.dispatcher.registry.get(approval.command)
                approval = (
                    await self.approvals.set_outcome(approval.id, unknown_advice(spec)) or approval
                )
            inv = Invocation(approval.text, "forge", approval.channel_id, event="expire")
            await self._audit(inv, approval.status, approval.status, approval.command, approval)
            changed.append(approval)
        return changed

    async def _approver(self, approval: Approval, clicker_id: str) -> Actor | None:
        """The clicker's rights as Slack says now; the requester's own click needs no lookup."""
        if clicker_id == approval.requester_id:
            return None
        return await self.dispatcher.actor(clicker_id, "slack", fresh=True)

    async def _why_not(self, approval_id: uuid.UUID) -> Text:
        current = await self.approvals.get(approval_id)
        if current is None:
            return "No such approval request."
        if current.status in ("pending", "expired"):
            return "This request has expired; run the command again to ask anew."
        words = {
            "executing": "already approved",
            "succeeded": "already approved and done",
            "failed": "already approved (it failed)",
            "stale": "already approved, and found stale",
            "outcome_unknown": "already approved",
            "denied": "already denied",
            "cancelled": "cancelled by the requester",
        }
        who = (
            rich(" by ", User(current.decided_by))
            if current.decided_by and current.status != "cancelled"
            else ""
        )
        return rich(f"This request was {words.get(current.status, current.status)}", who, ".")

    async def _execute(
        self, approval: Approval, approver: Actor | None, progress: Progress = no_progress
    ) -> Decision:
        """Re-authorize, then run through the dispatcher's own execute; record how it settled."""
        inv = Invocation(approval.text, approval.requester_id, approval.channel_id, event="outcome")
        if not approval.intact:
            finished = await self.approvals.finish(
                approval.id, "failed", "arguments changed after the request"
            )
            return Decision("executed", "Not executed: the stored request was altered.", finished)
        started = self.dispatcher.clock.monotonic()
        try:
            checked = await self._reauthorize(approval, approver, inv)
        except ForgeError as exc:
            return await self._refuse(approval, inv, exc, started)
        checked = replace(checked, scope=Scope.from_json(approval.scope))
        detail = {"approval_id": str(approval.id)}
        try:
            outcome = await self.dispatcher.execute(
                checked, progress, started, approved=True, detail=detail
            )
        except asyncio.CancelledError:  # stopped mid-run: the outcome is unknown, never retried
            log.exception("approved_command_cancelled", approval_id=str(approval.id))
            outcome = Outcome("error", spec=checked.spec, message=STOPPED, unknown=True)
        summary = outcome.result.summary if outcome.result else outcome.message
        finished = await self.approvals.finish(approval.id, outcome.settled, plain(summary))
        return Decision("executed", approval=finished or approval, outcome=outcome)

    async def _reauthorize(
        self, approval: Approval, approver: Actor | None, inv: Invocation
    ) -> Checked:
        """Every rule that allowed it, again: approver, environment, requester's role, channel."""
        refusal = _approver_refusal(approval, approver)
        if refusal:
            raise PermissionDenied(refusal)
        here = self.dispatcher.settings.environment
        if approval.environment != here:
            made = approval.environment or "an unrecorded environment"
            raise PermissionDenied(f"it was requested in {made}, and forge now runs in {here}.")
        parsed = self.dispatcher.restore(approval.command, approval.params, approval.text)
        # groups asked of Slack now: a cached membership could be five minutes out of date
        requester = await self.dispatcher.actor(approval.requester_id, "slack", fresh=True)
        if not requester.may(parsed.spec.role):
            held = requester.role.label if requester.role else "no role"
            raise PermissionDenied(
                requester.doubt
                or rich(
                    User(requester.user_id),
                    f" no longer holds the {parsed.spec.role.label} role (now {held}).",
                )
            )
        return await self.dispatcher.check(inv, requester, parsed)

    async def _refuse(
        self, approval: Approval, inv: Invocation, exc: ForgeError, started: float
    ) -> Decision:
        """Nothing runs: the card and the audit trail say why."""
        reason = rich("Not run: refused when it was to run: ", exc.text)
        finished = await self.approvals.finish(approval.id, "failed", plain(reason))
        detail = {"approval_id": str(approval.id), "reason": plain(exc.text)}
        await self.dispatcher.refused(inv, exc, started, detail)
        return Decision("revoked", reason, finished or approval)

    async def _audit(
        self,
        inv: Invocation,
        event: str,
        outcome: str,
        command: str | None,
        approval: Approval | None = None,
        started: float | None = None,
    ) -> None:
        spec = self.dispatcher.registry.get(command) if command else None
        started = self.dispatcher.clock.monotonic() if started is None else started
        entry = self.dispatcher.entry(inv, event, outcome, spec, started, inv.text)
        if approval is not None:
            entry.detail["approval_id"] = str(approval.id)
        await self.dispatcher.audit.try_record(entry)


def _approver_refusal(approval: Approval, approver: Actor | None) -> str | None:
    """Why this person may not approve this request, or None."""
    if approver is None or approver.user_id == approval.requester_id:
        return "You can't approve your own request; another approver must."
    if not approver.approver:
        return approver.doubt or "Only approvers may approve destructive requests."
    return None


def _expected(parsed: Parsed) -> str:
    """What the requester must type to confirm."""
    return parsed.spec.confirm(parsed.args) if parsed.spec.confirm else parsed.spec.name


def preview_text(result: Result) -> str:
    """The dry run as the stored request and its card hold it: plain text, bounded."""
    lines = [plain(result.summary)] + [f"{plain(k)}: {plain(v)}" for k, v in result.fields]
    return "\n".join(line for line in lines if line)[:2900]

"""The destructive-action engine: typed confirmation, a second approver, exactly-once execution."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import structlog

from bot.approvals.store import Approval, ApprovalStore
from bot.core.cells import Text, User, map_text, plain, rich
from bot.core.context import no_progress
from bot.core.dispatch import Dispatcher, Invocation, Outcome
from bot.core.errors import BackendError, BackendTimeout, ForgeError
from bot.core.parser import Parsed
from bot.core.result import Result
from bot.core.scope import Scope, StaleScope

log = structlog.get_logger(__name__)
LEASE_MARGIN = timedelta(seconds=60)
Kind = Literal["requested", "mismatch", "refused", "executed", "denied", "cancelled"]
Claimed = Callable[[Approval], Awaitable[None]]
Progress = Callable[[Text], Awaitable[None]]


@dataclass(frozen=True)
class Decision:
    """What a confirmation, approval or denial did; `message` is for the person who acted."""

    kind: Kind
    message: Text = ""
    approval: Approval | None = None
    outcome: Outcome | None = None
    preview: Result | None = None


class ApprovalEngine:
    """Request, approve, deny and expire destructive commands; transport-agnostic."""

    def __init__(self, dispatcher: Dispatcher, approvals: ApprovalStore) -> None:
        self.dispatcher = dispatcher
        self.approvals = approvals
        self.ttl = timedelta(minutes=dispatcher.settings.config.approval_ttl_minutes)

    async def preview(self, parsed: Parsed, inv: Invocation) -> Outcome:
        """The command's dry run, as the requester and the approver will see it."""
        actor = await self.dispatcher.actor(inv.actor_id, inv.source)
        return await self.dispatcher.call(
            parsed.spec, self.dispatcher.context(actor, inv), parsed, dry_run=True
        )

    async def confirmation_error(self, inv: Invocation, typed: str) -> str | None:
        """A quick check before the dialog closes: the reason the typed text is refused, or None."""
        actor = await self.dispatcher.actor(inv.actor_id, inv.source)
        try:
            parsed = self.dispatcher.parse(inv, actor)
            self.dispatcher.authorize(parsed, actor, inv)
        except ForgeError as exc:
            return str(exc)
        expected = parsed.spec.confirm(parsed.args) if parsed.spec.confirm else parsed.spec.name
        return None if typed.strip() == expected else f"Type `{expected}` exactly to confirm."

    async def refuse_confirmation(self, inv: Invocation, reason: str) -> None:
        """Audit a confirmation the dialog refused."""
        await self._audit(inv, "confirm_mismatch", "refused", None)
        log.info("confirm_refused", reason=reason)

    async def request(self, inv: Invocation, typed: str) -> Decision:
        """Check the confirmation, re-authorize, store a pending request with a fresh preview."""
        actor = await self.dispatcher.actor(inv.actor_id, inv.source)
        try:
            parsed = self.dispatcher.parse(inv, actor)
            self.dispatcher.authorize(parsed, actor, inv)
        except ForgeError as exc:
            outcome = await self.dispatcher.refused(inv, exc, self.dispatcher.clock.monotonic())
            return Decision("refused", outcome.message)
        expected = parsed.spec.confirm(parsed.args) if parsed.spec.confirm else parsed.spec.name
        if typed.strip() != expected:
            await self._audit(inv, "confirm_mismatch", "refused", parsed.spec.name)
            return Decision("mismatch", f"Type `{expected}` exactly to confirm.")
        preview = await self.preview(parsed, inv)
        if preview.result is None:
            return Decision(
                "refused", rich("The dry run failed, so nothing was requested: ", preview.message)
            )
        approval = await self.approvals.create(
            command=parsed.spec.name,
            text=parsed.text,
            params=parsed.args.model_dump(mode="json"),
            requester_id=inv.actor_id,
            channel_id=inv.channel_id or "",
            preview=_preview_text(preview.result),
            ttl=self.ttl,
            scope=preview.result.scope.to_json() if preview.result.scope else None,
        )
        await self._audit(inv, "approval_requested", "pending", parsed.spec.name, approval)
        return Decision("requested", approval=approval, preview=preview.result)

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
        refusal = await self._may_approve(approval, clicker_id)
        if refusal:
            await self._audit(inv, "authz_fail", "denied", approval.command, approval)
            return Decision("refused", refusal, approval)
        spec = self.dispatcher.registry.get(approval.command)
        lease = timedelta(seconds=spec.timeout if spec else 60) + LEASE_MARGIN
        claimed = await self.approvals.claim(approval.id, clicker_id, lease)
        if claimed is None:
            return Decision("refused", await self._why_not(approval.id), approval)
        await self._audit(inv, "approved", "executing", approval.command, claimed)
        await on_claimed(claimed)
        return await self._execute(claimed, progress)

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
        changed = await self.approvals.expire_due()
        for approval in changed:
            inv = Invocation(approval.text, "forge", approval.channel_id, event="expire")
            await self._audit(inv, approval.status, approval.status, approval.command, approval)
        return changed

    async def _may_approve(self, approval: Approval, clicker_id: str) -> str | None:
        if clicker_id == approval.requester_id:
            return "You can't approve your own request; another approver must."
        actor = await self.dispatcher.actor(clicker_id, "slack")
        if not actor.approver:
            return actor.doubt or "Only approvers may approve destructive requests."
        return None

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

    async def _execute(self, approval: Approval, progress: Progress = no_progress) -> Decision:
        spec = self.dispatcher.registry.get(approval.command)
        inv = Invocation(approval.text, approval.requester_id, approval.channel_id, event="execute")
        if spec is None or not approval.intact:
            finished = await self.approvals.finish(
                approval.id, "failed", "arguments changed after the request"
            )
            return Decision("executed", "Not executed: the stored request was altered.", finished)
        try:
            await self.dispatcher.audit.record(
                self.dispatcher.entry(
                    inv, "intent", "started", spec, self.dispatcher.clock.monotonic(), approval.text
                )
            )
        except BackendError:
            finished = await self.approvals.finish(
                approval.id, "failed", "audit trail unavailable; not executed"
            )
            return Decision(
                "executed", "Not executed: the audit trail could not record it.", finished
            )
        started = self.dispatcher.clock.monotonic()
        status, outcome = await self._run_handler(spec, approval, inv, progress)
        finished = await self.approvals.finish(
            approval.id,
            status,
            plain(outcome.result.summary if outcome.result else outcome.message),
        )
        await self._audit(
            inv,
            "outcome",
            status,
            spec.name,
            finished or approval,
            started,
            _verdict(approval, status),
        )
        return Decision("executed", approval=finished or approval, outcome=outcome)

    async def _run_handler(
        self, spec, approval: Approval, inv: Invocation, progress: Progress = no_progress
    ) -> tuple[str, Outcome]:
        requester = await self.dispatcher.actor(approval.requester_id, "slack")
        ctx = self.dispatcher.context(requester, inv, progress)
        ctx.scope = Scope.from_json(approval.scope)
        args = spec.args.model_validate(approval.params)
        try:
            result = await asyncio.wait_for(spec.handler(ctx, args), spec.timeout)
        except StaleScope as exc:
            return "stale", Outcome(
                "failed", spec=spec, message=map_text(exc.text, self.dispatcher.redactor)
            )
        except BackendTimeout as exc:
            return "outcome_unknown", Outcome(
                "failed",
                spec=spec,
                message=f"Outcome unknown: {exc}. Check before "
                "running it again; forge never retries it.",
            )
        except ForgeError as exc:
            return "failed", Outcome(
                "failed", spec=spec, message=map_text(exc.text, self.dispatcher.redactor)
            )
        except (Exception, asyncio.CancelledError):  # the outcome is unknown, never retried
            log.exception("approved_command_crashed", approval_id=str(approval.id))
            return "outcome_unknown", Outcome(
                "error",
                spec=spec,
                message="Outcome unknown: the command stopped "
                "unexpectedly. Check the target before running it again.",
            )
        return "succeeded", Outcome("result", result=result, spec=spec)

    async def _audit(
        self,
        inv: Invocation,
        event: str,
        outcome: str,
        command: str | None,
        approval: Approval | None = None,
        started: float | None = None,
        scope: str | None = None,
    ) -> None:
        spec = self.dispatcher.registry.get(command) if command else None
        started = self.dispatcher.clock.monotonic() if started is None else started
        entry = self.dispatcher.entry(inv, event, outcome, spec, started, inv.text)
        if approval is not None:
            entry.detail["approval_id"] = str(approval.id)
        if scope is not None:
            entry.detail["scope"] = scope
        await self.dispatcher.audit.try_record(entry)


def _verdict(approval: Approval, status: str) -> str | None:
    """For the audit row: whether the run kept to the frozen scope or found it stale."""
    if approval.scope is None:
        return None
    return "stale" if status == "stale" else "approved"


def _preview_text(result: Result) -> str:
    lines = [plain(result.summary)] + [f"{plain(k)}: {plain(v)}" for k, v in result.fields]
    return "\n".join(line for line in lines if line)[:2900]

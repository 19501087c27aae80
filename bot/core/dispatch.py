"""From (actor, channel, text) to an outcome: parse, authorize, audit, run, time out, never leak."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import structlog

from bot.backends.clients import Backends
from bot.config.settings import Settings
from bot.core.audit import AuditEntry, AuditLog
from bot.core.context import Actor, Clock, Context, SystemClock, no_progress
from bot.core.errors import (
    BackendError,
    BackendTimeout,
    ForgeError,
    PermissionDenied,
    UnknownCommand,
    UsageError,
)
from bot.core.parser import Parsed, parse
from bot.core.permissions import Permissions
from bot.core.registry import CommandSpec, Registry, Risk
from bot.core.result import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Result
from bot.core.scope import Scope, StaleScope
from bot.http import metrics
from bot.state.archive import Archive
from bot.state.store import StateStore
from bot.text.cells import Channel, Code, Text, join, map_text, rich
from bot.text.redact import Redactor

log = structlog.get_logger(__name__)
SLOW_NOTICE = 0.8
CHECK_FIRST = " Check the target before running it again; forge never retries it."
STOPPED = (
    "Outcome unknown: the command stopped unexpectedly. Check the target before running it again."
)
Kind = Literal["result", "usage", "unknown", "denied", "failed", "error", "approval"]


@dataclass(frozen=True)
class Invocation:
    """One request to run a command."""

    text: str
    actor_id: str
    channel_id: str | None = None
    source: str = "slack"
    event: str = "command"
    request_id: str = field(default_factory=lambda: secrets.token_hex(6))
    thread_ts: str | None = None
    incident_id: int | None = None


@dataclass(frozen=True)
class Outcome:
    """What happened: a result, or a one-line message for the caller only."""

    kind: Kind
    result: Result | None = None
    message: Text = ""
    usage: str | None = None
    spec: CommandSpec | None = None
    error_id: str | None = None
    parsed: Parsed | None = None
    checked: Checked | None = None
    unknown: bool = False
    stale: bool = False

    @property
    def exit_code(self) -> int:
        """0 ok, 1 failed or found problems, 2 usage error (the CLI's contract)."""
        if self.kind in ("usage", "unknown"):
            return EXIT_USAGE
        return (
            EXIT_OK
            if self.kind == "result" and self.result and not self.result.failed
            else EXIT_FAILED
        )

    @property
    def private(self) -> bool:
        """Denials, usage errors and failures go only to the caller."""
        return self.kind not in ("result", "approval")

    @property
    def settled(self) -> str:
        """How an approved run ended: succeeded, failed, stale or outcome_unknown (never re-run)."""
        if self.kind == "result":
            return "succeeded"
        if self.stale:
            return "stale"
        return "outcome_unknown" if self.unknown else "failed"


@dataclass(frozen=True)
class Checked:
    """A request that passed the one check: who asks, for what, allowed here and now."""

    inv: Invocation
    actor: Actor
    parsed: Parsed
    scope: Scope | None = None  # approved: what its dry run showed, the only thing it may act on

    @property
    def spec(self) -> CommandSpec:
        """The command asked for."""
        return self.parsed.spec

    @property
    def risk(self) -> Risk:
        """The command's risk with these arguments."""
        return self.spec.risk_for(self.parsed.args)

    @property
    def needs_approval(self) -> bool:
        """Destructive and not a dry run: it goes to the approval engine."""
        return self.risk is Risk.DESTRUCTIVE and not getattr(self.parsed.args, "dry_run", False)


@dataclass
class Dispatcher:
    """The one path every command takes, from Slack, a button or the terminal."""

    settings: Settings
    registry: Registry
    backends: Backends
    store: StateStore
    audit: AuditLog
    permissions: Permissions
    redactor: Redactor
    clock: Clock = field(default_factory=SystemClock)
    archive: Archive | None = None

    async def actor(self, user_id: str, source: str, *, fresh: bool = False) -> Actor:
        """The user's role and approver flag, resolved now (`fresh`: group lookups uncached)."""
        metrics.REQUEST_STEPS.labels(step="role").inc()
        grant = await self.permissions.resolve(user_id, fresh=fresh)
        return Actor(user_id, grant.role, grant.approver, source, grant.doubt)

    async def run(
        self, inv: Invocation, progress: Any = no_progress, actor: Actor | None = None
    ) -> Outcome:
        """Run one command text for one actor; every path ends audited."""
        structlog.contextvars.bind_contextvars(request_id=inv.request_id, user_id=inv.actor_id)
        started = self.clock.monotonic()
        try:
            checked = await self.check(inv, actor)
        except ForgeError as exc:
            return await self.refused(inv, exc, started)
        if checked.needs_approval:
            return Outcome("approval", spec=checked.spec, parsed=checked.parsed, checked=checked)
        return await self.execute(checked, progress, started)

    async def check(
        self, inv: Invocation, actor: Actor | None = None, parsed: Parsed | None = None
    ) -> Checked:
        """The one check of run, confirmation and execution: actor, parse, authorize, or raise."""
        actor = actor or await self.actor(inv.actor_id, inv.source)
        if parsed is None:
            metrics.REQUEST_STEPS.labels(step="parse").inc()  # here, so `run help` loads no metrics
            parsed = self.parse(inv, actor)
        self.authorize(parsed, actor, inv)
        return Checked(inv, actor, parsed)

    def restore(self, command: str, params: dict[str, Any], text: str) -> Parsed:
        """A command forge parsed before, from the arguments it stored; no text is re-parsed."""
        spec = self.registry.get(command)
        if spec is None:
            raise UsageError(rich(Code(command), " is no longer a command; run it again."))
        try:
            return Parsed(spec, spec.args.model_validate(params), text)
        except ValueError:
            raise UsageError(
                rich("The stored arguments of ", Code(command), " are not valid; run it again.")
            ) from None

    def parse(self, inv: Invocation, actor: Actor) -> Parsed:
        """The invocation's text as command and arguments; suggests only what the actor may run."""
        try:
            return parse(inv.text, self.registry)
        except UnknownCommand as exc:
            allowed = [
                s
                for s in exc.suggestions
                if (spec := self.registry.get(s)) and actor.may(spec.role)
            ]
            raise UnknownCommand(exc.words, allowed) from None

    def authorize(self, parsed: Parsed, actor: Actor, inv: Invocation) -> None:
        """Raise PermissionDenied unless the actor may run the command with these arguments here."""
        spec = parsed.spec
        if not actor.may(spec.role) and actor.doubt:
            raise PermissionDenied(actor.doubt)
        if not actor.may(spec.role):
            held = actor.role.label if actor.role else "no role"
            raise PermissionDenied(
                rich(Code(spec.name), f" needs the {spec.role.label} role; you have {held}.")
            )
        allowed = self.settings.config.channels.destructive
        if (
            spec.risk_for(parsed.args) is Risk.DESTRUCTIVE
            and allowed
            and inv.channel_id not in allowed
        ):
            where = join(", ", [Channel(c) for c in allowed])
            raise PermissionDenied(
                rich(Code(spec.name), " is destructive and may only be run in ", where, ".")
            )

    async def refused(
        self, inv: Invocation, exc: ForgeError, started: float, detail: dict[str, Any] | None = None
    ) -> Outcome:
        """Audit and describe a refusal."""
        kind, event = _REFUSALS.get(type(exc), ("denied", "authz_fail"))
        metrics.COMMANDS.labels(command="-", outcome=kind).inc()
        log.info(event, reason=str(exc))
        entry = self.entry(inv, event, kind, None, started, self.redactor(inv.text))
        entry.detail.update(detail or {})
        await self.audit.try_record(entry)
        usage = getattr(exc, "usage", None)
        return Outcome(kind, message=exc.text, usage=usage)  # type: ignore[arg-type]

    async def preview(self, checked: Checked) -> Outcome:
        """The dry run of a checked destructive request, as requester and approver will see it."""
        ctx = self.context(checked.actor, checked.inv)
        return await self.call(checked.spec, ctx, checked.parsed, dry_run=True)

    async def execute(
        self,
        checked: Checked,
        progress: Any = no_progress,
        started: float | None = None,
        *,
        approved: bool = False,
        detail: dict[str, Any] | None = None,
    ) -> Outcome:
        """Run a checked request (a dry run unless `approved`); intent first for writes; audited."""
        inv, spec = checked.inv, checked.spec
        started = self.clock.monotonic() if started is None else started
        if checked.risk is Risk.WRITE or approved:
            intent = self.entry(inv, "intent", "started", spec, started, checked.parsed.text)
            intent.detail.update(detail or {})
            if not await self._intent(intent):
                return self._no_audit_trail(spec)
        finished = asyncio.Event()
        notice = asyncio.create_task(_announce(spec, progress, finished)) if spec.slow else None
        ctx = replace(self.context(checked.actor, inv, progress), scope=checked.scope)
        dry_run = checked.risk is Risk.DESTRUCTIVE and not approved
        outcome = await self.call(spec, ctx, checked.parsed, dry_run=dry_run, approved=approved)
        if outcome.result is not None and outcome.result.page is not None:
            outcome.result.page = replace(outcome.result.page, text=checked.parsed.text)
        finished.set()
        if notice is not None:
            await notice
        label = outcome.result.status.value if outcome.result else outcome.kind
        label = outcome.settled if approved else label
        text = checked.parsed.text
        entry = self.entry(inv, inv.event, label, spec, started, text, outcome.error_id)
        entry.detail.update(detail or {})
        if approved and checked.scope is not None:
            entry.detail["scope"] = "stale" if outcome.stale else "approved"
        await self.audit.try_record(entry)
        metrics.COMMANDS.labels(command=spec.name, outcome=label).inc()
        metrics.DURATION.labels(command=spec.name).observe(self.clock.monotonic() - started)
        return outcome

    async def _intent(self, entry: AuditEntry) -> bool:
        """Record the intent before acting; False when the audit trail cannot."""
        try:
            await self.audit.record(entry)
        except BackendError:
            return False
        return True

    def _no_audit_trail(self, spec: CommandSpec) -> Outcome:
        why = f" ({self.store.reason})" if self.store.reason else ""
        return Outcome(
            "failed",
            spec=spec,
            message=f"The state store is down{why}, so the audit trail "
            "cannot record this; write commands are refused until it is back.",
        )

    def context(self, actor: Actor, inv: Invocation, progress: Any = no_progress) -> Context:
        """The handler's view of forge for one invocation."""
        return Context(
            self.settings,
            self.backends,
            self.registry,
            actor,
            self.store,
            self.audit,
            inv.channel_id,
            inv.request_id,
            self.clock,
            progress,
            self.archive,
            inv.incident_id,
        )

    async def call(
        self,
        spec: CommandSpec,
        ctx: Context,
        parsed: Parsed,
        *,
        dry_run: bool = False,
        approved: bool = False,
    ) -> Outcome:
        """Run the handler (or its dry run) within its timeout; every failure becomes an Outcome."""
        handler = spec.preview if dry_run and spec.preview else spec.handler
        if dry_run:
            metrics.REQUEST_STEPS.labels(step="dry_run").inc()
        try:
            result = await asyncio.wait_for(handler(ctx, parsed.args), spec.timeout)
        except TimeoutError:
            took = rich(Code(spec.name), f" took longer than {spec.timeout:g} s and was stopped.")
            if approved:  # a real run stopped midway may have done part of its work
                return _unknown(spec, rich("Outcome unknown: ", took, CHECK_FIRST))
            return Outcome("failed", spec=spec, message=took)
        except BackendTimeout as exc:
            if approved:
                return _unknown(spec, rich(f"Outcome unknown: {exc}.", CHECK_FIRST))
            return Outcome("failed", spec=spec, message=map_text(exc.text, self.redactor))
        except ForgeError as exc:  # a StaleScope: the approved scope moved, so nothing was done
            said = map_text(exc.text, self.redactor)
            return Outcome("failed", spec=spec, message=said, stale=isinstance(exc, StaleScope))
        except Exception:
            return self._crashed(spec, approved)
        return Outcome("result", result=result, spec=spec)

    def _crashed(self, spec: CommandSpec, approved: bool) -> Outcome:
        error_id = "E-" + secrets.token_hex(4)
        log.exception("command_crashed", command=spec.name, error_id=error_id)
        if approved:
            return _unknown(spec, STOPPED, error_id)
        return Outcome(
            "error",
            spec=spec,
            error_id=error_id,
            message=rich(
                "Something went wrong running ",
                Code(spec.name),
                " — error id ",
                Code(error_id),
                ".",
            ),
        )

    def entry(
        self,
        inv: Invocation,
        event: str,
        outcome: str,
        spec: CommandSpec | None,
        started: float,
        text: str,
        error_id: str | None = None,
    ) -> AuditEntry:
        """An audit entry for this invocation."""
        duration = int((self.clock.monotonic() - started) * 1000)
        detail = {"error_id": error_id} if error_id else {}
        return AuditEntry(
            event,
            inv.actor_id,
            text,
            outcome,
            inv.source,
            inv.channel_id,
            spec.name if spec else None,
            duration,
            inv.request_id,
            detail,
        )


def _unknown(spec: CommandSpec, message: Text, error_id: str | None = None) -> Outcome:
    """An approved run that stopped where forge cannot tell what it did."""
    return Outcome("error", spec=spec, message=message, error_id=error_id, unknown=True)


async def _announce(spec: CommandSpec, progress: Any, finished: asyncio.Event) -> None:
    """Post the ⏳ notice only if a slow command is still running after SLOW_NOTICE seconds."""
    try:
        await asyncio.wait_for(finished.wait(), SLOW_NOTICE)
    except TimeoutError:
        await progress(rich("Running ", Code(spec.name), "…"))


_REFUSALS: dict[type, tuple[str, str]] = {
    UsageError: ("usage", "input_validation_fail"),
    UnknownCommand: ("unknown", "input_validation_fail"),
    PermissionDenied: ("denied", "authz_fail"),
}

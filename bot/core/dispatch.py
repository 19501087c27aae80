"""From (actor, channel, text) to an outcome: parse, authorize, audit, run, time out, never leak."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import structlog

from bot.backends.clients import Backends
from bot.config.settings import Settings
from bot.core import metrics
from bot.core.audit import AuditEntry, AuditLog
from bot.core.cells import Channel, Code, Text, join, map_text, rich
from bot.core.context import Actor, Clock, Context, SystemClock, no_progress
from bot.core.errors import BackendError, ForgeError, PermissionDenied, UnknownCommand, UsageError
from bot.core.parser import Parsed, parse
from bot.core.permissions import Permissions
from bot.core.redact import Redactor
from bot.core.registry import CommandSpec, Registry, Risk
from bot.core.result import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Result
from bot.state.archive import Archive
from bot.state.store import StateStore

log = structlog.get_logger(__name__)
SLOW_NOTICE = 0.8
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

    async def actor(self, user_id: str, source: str) -> Actor:
        """The user's role and approver flag, resolved now."""
        grant = await self.permissions.resolve(user_id)
        return Actor(user_id, grant.role, grant.approver, source, grant.doubt)

    async def run(
        self, inv: Invocation, progress: Any = no_progress, actor: Actor | None = None
    ) -> Outcome:
        """Run one command text for one actor; every path ends audited."""
        structlog.contextvars.bind_contextvars(request_id=inv.request_id, user_id=inv.actor_id)
        started = self.clock.monotonic()
        try:
            actor = actor or await self.actor(inv.actor_id, inv.source)
            parsed = self.parse(inv, actor)
            self.authorize(parsed, actor, inv)
        except ForgeError as exc:
            return await self.refused(inv, exc, started)
        if parsed.spec.risk_for(parsed.args) is Risk.DESTRUCTIVE and not getattr(
            parsed.args, "dry_run", False
        ):
            return Outcome("approval", spec=parsed.spec, parsed=parsed)
        return await self._execute(inv, parsed, actor, progress, started)

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

    async def refused(self, inv: Invocation, exc: ForgeError, started: float) -> Outcome:
        """Audit and describe a refusal."""
        kind, event = _REFUSALS.get(type(exc), ("denied", "authz_fail"))
        metrics.COMMANDS.labels(command="-", outcome=kind).inc()
        log.info(event, reason=str(exc))
        await self.audit.try_record(
            self.entry(inv, event, kind, None, started, self.redactor(inv.text))
        )
        usage = getattr(exc, "usage", None)
        return Outcome(kind, message=exc.text, usage=usage)  # type: ignore[arg-type]

    async def _execute(
        self, inv: Invocation, parsed: Parsed, actor: Actor, progress: Any, started: float
    ) -> Outcome:
        spec = parsed.spec
        risk = spec.risk_for(parsed.args)
        writes = risk is Risk.WRITE
        if writes:
            try:
                await self.audit.record(
                    self.entry(inv, "intent", "started", spec, started, parsed.text)
                )
            except BackendError:
                why = f" ({self.store.reason})" if self.store.reason else ""
                return Outcome(
                    "failed",
                    spec=spec,
                    message=f"The state store is down{why}, so the audit trail "
                    "cannot record this; write commands are refused until it is back.",
                )
        finished = asyncio.Event()
        notice = asyncio.create_task(_announce(spec, progress, finished)) if spec.slow else None
        ctx = self.context(actor, inv, progress)
        outcome = await self.call(spec, ctx, parsed, dry_run=risk is Risk.DESTRUCTIVE)
        if outcome.result is not None and outcome.result.page is not None:
            outcome.result.page = replace(outcome.result.page, text=parsed.text)
        finished.set()
        if notice is not None:
            await notice
        label = outcome.result.status.value if outcome.result else outcome.kind
        entry = self.entry(inv, inv.event, label, spec, started, parsed.text, outcome.error_id)
        await self.audit.try_record(entry)
        metrics.COMMANDS.labels(command=spec.name, outcome=label).inc()
        metrics.DURATION.labels(command=spec.name).observe(self.clock.monotonic() - started)
        return outcome

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
        self, spec: CommandSpec, ctx: Context, parsed: Parsed, *, dry_run: bool = False
    ) -> Outcome:
        """Run the handler (or its dry run) within its timeout; every failure becomes an Outcome."""
        handler = spec.preview if dry_run and spec.preview else spec.handler
        try:
            result = await asyncio.wait_for(handler(ctx, parsed.args), spec.timeout)
        except TimeoutError:
            return Outcome(
                "failed",
                spec=spec,
                message=rich(
                    Code(spec.name), f" took longer than {spec.timeout:g} s and was stopped."
                ),
            )
        except ForgeError as exc:
            return Outcome("failed", spec=spec, message=map_text(exc.text, self.redactor))
        except Exception:
            error_id = "E-" + secrets.token_hex(4)
            log.exception("command_crashed", command=spec.name, error_id=error_id)
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
        return Outcome("result", result=result, spec=spec)

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

"""`forge run --break-glass --reason "<why>" "<destructive command>"`: for when Slack is down.

Only the Unix users in `break_glass.users` may; it shows the dry run, asks for the typed target
(unless --yes), runs the command without a second approver, writes `break_glass` audit rows with
the reason and the Unix user, and queues a notice to the destructive and incident channels.
"""

from __future__ import annotations

import argparse
import os
import pwd
import socket
import sys
from dataclasses import replace

from bot.approvals.break_glass import Notice, NoticeQueue, deliver
from bot.cli.terminal import to_json, to_text
from bot.config.settings import Settings
from bot.core.audit import AuditEntry
from bot.core.context import Actor
from bot.core.dispatch import Invocation, Outcome
from bot.core.errors import BackendError, ForgeError
from bot.core.forge import Forge
from bot.core.parser import Parsed
from bot.core.registry import Risk, Role
from bot.core.result import EXIT_FAILED, EXIT_USAGE
from bot.text.cells import Text, plain
from bot.text.redact import redact


def unix_user() -> str:
    """The effective Unix user, from the process's uid (not $USER, which anyone can set)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid-{os.geteuid()}"


def refusal(settings: Settings, user: str) -> str | None:
    """Why this Unix user may not break the glass, or None."""
    listed = settings.config.break_glass.users
    if not listed:
        return "break-glass is off: the config lists no break_glass.users; nothing was run."
    if user not in listed:
        return (
            f"break-glass refused: Unix user {user!r} is not listed in break_glass.users; "
            "nothing was run."
        )
    return None


def _say(line: str) -> None:
    print(redact(line), file=sys.stderr, flush=True)


async def break_glass_verb(settings: Settings, args: argparse.Namespace) -> int:
    """Check the reason and the Unix user, then run the command through `BreakGlass`."""
    reason = " ".join((args.reason or "").split())
    if not reason:
        _say('forge: --break-glass needs --reason "<why>"; nothing was run.')
        return EXIT_USAGE
    user = unix_user()
    forge = Forge(settings)
    try:
        store_up = await forge.start()
        glass = BreakGlass(forge, user, reason, args)
        refused = refusal(settings, user)
        if refused:
            await glass.audit("refused", None)
            _say(f"forge: {refused}")
            return EXIT_USAGE
        if not store_up:
            _say(
                "forge: the state store is down, so break-glass can be neither audited nor "
                "announced; nothing was run."
            )
            return EXIT_FAILED
        return await glass.run()
    finally:
        await forge.aclose()


class BreakGlass:
    """One break-glass run: parse, preview, confirm, audit, execute, announce."""

    def __init__(self, forge: Forge, user: str, reason: str, args: argparse.Namespace) -> None:
        self.forge, self.user, self.reason, self.args = forge, user, reason, args
        self.dispatcher = forge.dispatcher
        self.host = socket.gethostname()
        self.actor = Actor(f"cli:{user}", Role.ADMIN, approver=False, source="cli")
        self.inv = Invocation(" ".join(args.text), self.actor.user_id, None, "cli", "break_glass")

    async def run(self) -> int:
        """Preview, confirm, run; the CLI's exit code."""
        try:
            parsed = self.dispatcher.parse(self.inv, self.actor)
        except ForgeError as exc:
            _say(f"forge: {plain(exc.text)}")
            return EXIT_USAGE
        spec = parsed.spec
        if spec.risk_for(parsed.args) is not Risk.DESTRUCTIVE or getattr(
            parsed.args, "dry_run", False
        ):
            _say(f"forge: `{parsed.text}` needs no approval; run it without --break-glass.")
            return EXIT_USAGE
        ctx = self.dispatcher.context(self.actor, self.inv, self._progress)
        preview = await self.dispatcher.call(spec, ctx, parsed, dry_run=True)
        self._show(preview)
        if preview.result is None:
            _say("forge: the dry run failed, so nothing was run.")
            return EXIT_FAILED
        if not self._confirmed(parsed):
            await self.audit("confirm_mismatch", parsed)
            _say("forge: the typed text did not match; nothing was run.")
            return EXIT_FAILED
        try:
            await self.dispatcher.audit.record(self._entry("started", parsed))
        except BackendError:
            _say("forge: the audit trail could not record this break-glass run; nothing was run.")
            return EXIT_FAILED
        # the scope its own dry run showed: what was confirmed is what runs, or it is stale
        outcome = await self.dispatcher.call(spec, replace(ctx, scope=preview.result.scope), parsed)
        succeeded = outcome.kind == "result"
        await self.audit(outcome.settled, parsed)  # succeeded, failed or stale
        self._show(outcome)
        await self.announce(parsed, outcome, succeeded)
        return outcome.exit_code

    def _confirmed(self, parsed: Parsed) -> bool:
        if self.args.yes:
            return True
        spec = parsed.spec
        expected = spec.confirm(parsed.args) if spec.confirm else spec.name
        print(f"Type {expected} to confirm: ", end="", file=sys.stderr, flush=True)
        return sys.stdin.readline().strip() == expected

    async def _progress(self, note: Text) -> None:
        _say(f"… {plain(note)}")

    def _show(self, outcome: Outcome) -> None:
        environment = self.forge.settings.environment
        shown = to_json(outcome, environment) if self.args.json else to_text(outcome, environment)
        print(redact(shown), flush=True)

    def _entry(self, outcome: str, parsed: Parsed | None) -> AuditEntry:
        spec = parsed.spec if parsed else None
        text = parsed.text if parsed else self.inv.text
        started = self.dispatcher.clock.monotonic()
        entry = self.dispatcher.entry(self.inv, "break_glass", outcome, spec, started, text)
        entry.detail.update(reason=self.reason, unix_user=self.user, host=self.host)
        return entry

    async def audit(self, outcome: str, parsed: Parsed | None) -> None:
        """A `break_glass` audit row (best effort: a refusal must not wait on the store)."""
        event = self._entry(outcome, parsed)
        await self.dispatcher.audit.try_record(event)

    async def announce(self, parsed: Parsed, outcome: Outcome, succeeded: bool) -> None:
        """Queue the notice for each channel, then send it at once if Slack answers."""
        config = self.forge.settings.config.channels
        channels = list(dict.fromkeys([*config.destructive, *filter(None, [config.incidents])]))
        if not channels:
            _say("forge: no channels.destructive or channels.incidents set: no notice was posted.")
            return
        queue = NoticeQueue(self.forge.store, self.forge.settings.config.timeouts.backend)
        try:
            queued = await queue.enqueue(self._notice(parsed, outcome, succeeded), channels)
        except BackendError as exc:
            _say(f"forge: the notice could not be queued ({exc}); tell the channels yourself.")
            return
        sent = await self._send(queue, queued)
        if sent < len(queued):
            _say(
                f"forge: Slack did not take the notice for {len(queued) - sent} channel(s); it is "
                "queued, and a running forge serve posts it when Slack answers."
            )

    def _notice(self, parsed: Parsed, outcome: Outcome, succeeded: bool) -> Notice:
        redactor = self.dispatcher.redactor
        said = outcome.result.summary if outcome.result else outcome.message
        return Notice(
            command=redactor(parsed.text),
            unix_user=self.user,
            host=self.host,
            reason=redactor(self.reason)[:1000],
            outcome=redactor(plain(said))[:1000],
            succeeded=succeeded,
            at=self.dispatcher.clock.now(),
        )

    async def _send(self, queue: NoticeQueue, queued: list) -> int:
        from bot.slack.outbox import Outbox, close_client, make_client

        settings = self.forge.settings
        if settings.env.slack_bot_token is None:
            for item in queued:
                await queue.finish(item, None)
            return 0
        client = make_client(settings)
        try:
            return await deliver(queue, Outbox(client, settings.config.timeouts.slack), queued)
        finally:
            await close_client(client)

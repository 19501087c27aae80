"""The Slack side: Bolt listeners that ack at once, then run the command and answer by message."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient

from bot.approvals.slack import ApprovalUI, Sealer
from bot.background.tasks import observe
from bot.core.dispatch import Invocation
from bot.core.forge import Forge
from bot.core.registry import Risk
from bot.home.blocks import HOME_APPROVE, HOME_DENY, HOME_REFRESH, HOME_RUN
from bot.home.slack import HomeTabs
from bot.http import metrics
from bot.incidents.shortcuts import ADD_MODAL, ADD_SHORTCUT, DECLARE_SHORTCUT, Shortcuts
from bot.incidents.slack import ASSIGN, DECLARE, IncidentUI
from bot.log import get_logger
from bot.slack.gate import Gate
from bot.slack.outbox import Outbox
from bot.slack.pickers import PICK, Pickers
from bot.slack.render import PAGE_ACTION, Message, Meta
from bot.slack.reply import Reply
from bot.slack.run_modal import RUN_ARGS, RUN_PICK, RunModal
from bot.slack.tracker import JOURNAL_TIMEOUT, Tracker
from bot.state.inflight import Acked, Inflight
from bot.text.cells import Text

log = get_logger(__name__)
MENTION = re.compile(r"<@[UW][A-Z0-9]+>")
MAX_RUNNING_COMMANDS = 16
ACK_QUIET = 0.005
ACK_FIRST_MAX = 0.25


class SlackSurface:
    """Bolt's AsyncApp with forge's listeners; no backend is touched here."""

    def __init__(self, forge: Forge, client: AsyncWebClient, signing_secret: str) -> None:
        self.forge = forge
        self.outbox = Outbox(client, forge.settings.config.timeouts.slack)
        self.gate = Gate(forge, signing_secret, self._spawn, self._respond)
        self.approval_ui = ApprovalUI(
            forge.approvals, self.outbox, Sealer(signing_secret), forge.settings.environment
        )
        self.tracker = Tracker(Inflight(forge.store, forge.replica_id, JOURNAL_TIMEOUT))
        self.tasks = self.tracker.tasks
        self._running = asyncio.Semaphore(MAX_RUNNING_COMMANDS)
        self._last_request = 0.0
        self.app = AsyncApp(
            client=client,
            signing_secret=signing_secret,
            process_before_response=True,
            request_verification_enabled=True,
            before_authorize=self.gate.screen,
            raise_error_for_unhandled_request=True,
            url_verification_enabled=True,
            ssl_check_enabled=True,
        )
        self.app.error(self.gate.on_error)
        self.app.command("/forge")(self._on_command)
        self.app.action(re.compile(r"^forge_run:\d+$"))(self._on_run_button)
        self.app.action(re.compile(rf"^{PAGE_ACTION}:(prev|next)$"))(self._on_page)
        self.app.event("app_mention")(self._on_mention)
        self.app.view("forge_confirm")(self._on_confirm)
        self.app.action("forge_approve")(self._on_approve)
        self.app.action("forge_deny")(self._on_deny)
        self.incidents = IncidentUI(forge.incidents, self.outbox, self._run_in)
        self.home = HomeTabs(forge, self.outbox, self.approval_ui)
        self.approval_ui.on_requested = self._approval_requested
        self.app.event("app_home_opened")(self._on_home_opened)
        self.app.action(HOME_APPROVE)(self._on_home_click)
        self.app.action(HOME_DENY)(self._on_home_click)
        self.app.action(HOME_REFRESH)(self._on_home_click)
        self.app.action(HOME_RUN)(self._on_home_click)
        self.run_modal = RunModal(forge, self.outbox, Sealer(signing_secret))
        self.app.view(RUN_PICK)(self.run_modal.on_pick)
        self.app.view(RUN_ARGS)(self._on_run_args)
        self.app.view(DECLARE)(self._on_declare)
        self.app.action(ASSIGN)(self._on_assign)
        self.shortcuts = Shortcuts(forge, self.outbox, Sealer(signing_secret), self._run_in)
        self.app.shortcut(DECLARE_SHORTCUT)(self._on_shortcut)
        self.app.shortcut(ADD_SHORTCUT)(self._on_shortcut)
        self.app.view(ADD_MODAL)(self._on_add_submit)
        self.pickers = Pickers(forge)
        self.app.options(PICK)(self._on_pick)

    async def dispatch(self, request: AsyncBoltRequest) -> Any:
        """Hand one HTTP request to Bolt, noting when requests arrive so work can yield to acks."""
        self._last_request = time.monotonic()
        return await self.app.async_dispatch(request)

    async def _after_acks(self) -> None:
        """While a request burst is acknowledged, wait (at most ACK_FIRST_MAX) before working."""
        deadline = time.monotonic() + ACK_FIRST_MAX
        # a debounce on request arrival times, not a wait for an event: each sleep is computed
        while (now := time.monotonic()) < deadline and (  # noqa: ASYNC110
            quiet_in := self._last_request + ACK_QUIET - now
        ) > 0:
            await asyncio.sleep(min(quiet_in, deadline - now))

    async def _on_command(self, ack: Any, body: dict, request: AsyncBoltRequest) -> None:
        await ack()
        if IncidentUI.wants_modal(body.get("text", "")):
            trigger, channel, user = body.get("trigger_id"), body["channel_id"], body["user_id"]
            self._after_ack(request, lambda: self.incidents.open_modal(trigger, channel, user))
            return
        reply = Reply(
            self.outbox,
            body["channel_id"],
            body["user_id"],
            body.get("response_url"),
            trigger_id=body.get("trigger_id"),
        )
        await self.spawn(
            Invocation(body.get("text", ""), body["user_id"], body["channel_id"]),
            reply,
            request,
            "command",
        )

    async def _on_run_button(
        self, ack: Any, body: dict, action: dict, request: AsyncBoltRequest
    ) -> None:
        await ack()
        channel = (body.get("channel") or {}).get("id") or body["container"]["channel_id"]
        container = body.get("container") or {}
        thread_ts = container.get("thread_ts") or (body.get("message") or {}).get("thread_ts")
        user = body["user"]["id"]
        reply = Reply(
            self.outbox,
            channel,
            user,
            body.get("response_url"),
            thread_ts=thread_ts or container.get("message_ts"),
            trigger_id=body.get("trigger_id"),
        )
        await self.spawn(
            Invocation(action.get("value", ""), user, channel, event="click", thread_ts=thread_ts),
            reply,
            request,
            "click",
        )

    async def _on_page(self, ack: Any, body: dict, action: dict, request: AsyncBoltRequest) -> None:
        """Prev/Next: the command runs again for the clicker and its message shows the new page."""
        await ack()
        container = body.get("container") or {}
        channel = (body.get("channel") or {}).get("id") or container["channel_id"]
        user, thread_ts = body["user"]["id"], container.get("thread_ts")
        ephemeral = bool(container.get("is_ephemeral"))
        reply = Reply(
            self.outbox,
            channel,
            user,
            body.get("response_url"),
            thread_ts=thread_ts,
            ts=None if ephemeral else container.get("message_ts"),
            in_place=True,
        )
        invocation = Invocation(
            action.get("value", ""), user, channel, event="page", thread_ts=thread_ts
        )
        await self.spawn(invocation, reply, request, "page")

    async def _on_confirm(self, ack: Any, body: dict, view: dict) -> None:
        task = await self.approval_ui.on_submit(ack, body, view)
        if task is not None:
            self._track(task)

    async def _on_declare(self, ack: Any, body: dict, view: dict) -> None:
        await self.incidents.on_declare(ack, body, view)

    async def _on_shortcut(self, ack: Any, body: dict, request: AsyncBoltRequest) -> None:
        await ack()
        answer = (
            self.shortcuts.on_declare
            if body.get("callback_id") == DECLARE_SHORTCUT
            else self.shortcuts.on_add
        )
        self._after_ack(request, lambda: answer(body))

    async def _on_add_submit(self, ack: Any, body: dict, view: dict) -> None:
        await self.shortcuts.on_submit(ack, view, body["user"]["id"])

    async def _on_pick(self, ack: Any, body: dict) -> None:
        await ack(options=await self.pickers.options(body))

    async def _on_assign(
        self, ack: Any, body: dict, action: dict, request: AsyncBoltRequest
    ) -> None:
        await ack()
        self._after_ack(request, lambda: self.incidents.on_assign(body, action))

    async def _run_in(self, invocation: Invocation, thread_ts: str | None) -> None:
        """Run an invocation from a modal or a picker, answering in the channel (or the thread)."""
        reply = Reply(
            self.outbox, invocation.channel_id or "", invocation.actor_id, thread_ts=thread_ts
        )
        await self._run(invocation, reply)

    async def _approval_requested(self, *request: Any) -> None:
        await self.incidents.approval_requested(*request)
        self.home.changed()

    async def _on_home_opened(self, event: dict, request: AsyncBoltRequest) -> None:
        if event.get("tab") == "home":
            self._after_ack(request, lambda: self.home.opened(event["user"]))

    async def _on_home_click(
        self, ack: Any, body: dict, action: dict, request: AsyncBoltRequest
    ) -> None:
        await ack()
        value, user = str(action.get("value") or ""), body["user"]["id"]
        trigger = str(body.get("trigger_id") or "")
        answer = {
            HOME_APPROVE: lambda: self.home.approve(body, value),
            HOME_DENY: lambda: self.home.deny(body, value),
            HOME_RUN: lambda: self.run_modal.open(trigger),
        }.get(action["action_id"], lambda: self.home.refresh(user))
        self._after_ack(request, answer)

    async def _on_run_args(self, ack: Any, body: dict, view: dict) -> None:
        invocation = await self.run_modal.on_args(ack, body, view)
        if invocation is not None:
            reply = Reply(
                self.outbox,
                invocation.channel_id or "",
                invocation.actor_id,
                trigger_id=body.get("trigger_id"),
            )
            self._track(asyncio.create_task(self._run(invocation, reply)))

    async def _on_approve(
        self, ack: Any, body: dict, action: dict, request: AsyncBoltRequest
    ) -> None:
        await ack()
        value = action.get("value", "")
        self._after_ack(request, lambda: self._then_home(self.approval_ui.on_approve(body, value)))

    async def _on_deny(self, ack: Any, body: dict, action: dict, request: AsyncBoltRequest) -> None:
        await ack()
        value = action.get("value", "")
        self._after_ack(request, lambda: self._then_home(self.approval_ui.on_deny(body, value)))

    async def _then_home(self, work: Awaitable[None]) -> None:
        """Work that may change what Home tabs show, then their refresh."""
        await work
        self.home.changed()

    def _track(self, task: asyncio.Task[None]) -> None:
        self.tracker.track(observe(task))

    def _after_ack(self, request: AsyncBoltRequest, work: Callable[[], Awaitable[None]]) -> None:
        """Work a listener leaves for after its ack: run once per delivery (the gate decides)."""
        self._track(asyncio.create_task(self.gate.once(request, work)))

    def _spawn(self, work: Any) -> None:
        """Start work (an audit row, a reply) that the answer does not wait for."""
        self._track(asyncio.create_task(work))

    async def _respond(self, url: str, text: str) -> None:
        """A short private answer through a response_url."""
        await self.outbox.respond(url, Message(text, []))

    async def _on_mention(self, event: dict, request: AsyncBoltRequest) -> None:
        if event.get("bot_id") or not event.get("user"):
            return
        text = MENTION.sub("", event.get("text", "")).strip()
        reply = Reply(
            self.outbox,
            event["channel"],
            event["user"],
            thread_ts=event.get("thread_ts") or event["ts"],
        )
        await self.spawn(
            Invocation(
                text,
                event["user"],
                event["channel"],
                event="mention",
                thread_ts=event.get("thread_ts"),
            ),
            reply,
            request,
            "mention",
        )

    async def spawn(
        self, invocation: Invocation, reply: Reply, request: AsyncBoltRequest, kind: str
    ) -> None:
        """Journal the work before the ack leaves, then run it with a handle shutdown waits for."""
        metrics.SLACK_REQUESTS.labels(kind=kind, outcome="acked").inc()
        await self.tracker.acked(_acked(invocation, reply, kind))
        task = observe(asyncio.create_task(self._run_once(invocation, reply, request)))
        self.tracker.track(task, invocation.request_id)

    async def _run_once(
        self, invocation: Invocation, reply: Reply, request: AsyncBoltRequest | None
    ) -> None:
        """Run after the acks, and only for the delivery's first time (the gate decides)."""
        await self._after_acks()
        async with (
            self._running
        ):  # bounded work keeps acks fast under a burst and spares the backends
            self.tracker.started(invocation.request_id)
            try:
                if request is None:  # handed back by another replica, which acked it once
                    await self._run(invocation, reply)
                else:
                    await self.gate.once(request, lambda: self._run(invocation, reply))
            finally:
                await self.tracker.finished(invocation.request_id)

    async def resume(self, work: Acked) -> None:
        """Run work another replica acked and handed back unstarted, answering where it asked."""
        event = {"click": "click", "mention": "mention", "page": "page"}.get(work.kind, "command")
        invocation = Invocation(
            work.text,
            work.actor_id,
            work.channel_id,
            event=event,
            request_id=work.request_id,
            thread_ts=work.thread_ts if event != "command" else None,
        )
        reply = Reply(
            self.outbox, work.channel_id, work.actor_id, work.response_url, work.thread_ts
        )
        task = observe(asyncio.create_task(self._run_once(invocation, reply, None)))
        self.tracker.track(task, invocation.request_id)
        await asyncio.shield(task)

    async def _run(self, invocation: Invocation, reply: Reply) -> None:
        clock = self.forge.clock
        started_at, started = clock.now(), clock.monotonic()
        env = self.forge.settings.environment

        def meta() -> Meta:
            return Meta(
                invocation.actor_id, started_at, int((clock.monotonic() - started) * 1000), env
            )

        async def progress(note: Text) -> None:
            await reply.progress(note, meta())

        try:
            invocation = await self.incidents.locate(invocation)
            outcome = await self.forge.dispatcher.run(invocation, progress)
            await self.incidents.after(invocation, outcome)
            if outcome.spec and outcome.spec.risk is not Risk.READ:
                self.home.changed()
            if outcome.kind == "approval":
                await self.approval_ui.open_dialog(reply.trigger_id, invocation, outcome, meta())
                return
            await reply.deliver(outcome, meta())
        except Exception:
            log.exception("slack_reply_failed", request_id=invocation.request_id)

    async def drain(self, timeout: float = 10.0) -> list[str]:
        """Wait for acked work to answer; at the deadline hand back what never started."""
        await self.home.close()
        return await self.tracker.drain(timeout)


def _acked(invocation: Invocation, reply: Reply, kind: str) -> Acked:
    return Acked(
        invocation.request_id,
        kind,
        invocation.actor_id,
        invocation.channel_id or "",
        invocation.text,
        reply.response_url,
        reply.thread_ts,
    )

"""Incidents in Slack: the declare modal, the Assign picker, and thread commands on the timeline."""

from __future__ import annotations

import re
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from bot.core.dispatch import Invocation, Outcome
from bot.core.errors import BackendError, UsageError
from bot.core.parser import normalise
from bot.incidents.checklists import SEVERITIES
from bot.incidents.store import IncidentStore
from bot.log import get_logger
from bot.slack.pickers import picker
from bot.slack.render import message, section
from bot.text.cells import Code, plain, rich

log = get_logger(__name__)
DECLARE = "forge_incident_declare"
ASSIGN = "forge_incident_assign"
BARE_DECLARE = re.compile(r"^\s*incident\s+declare\s*$", re.IGNORECASE)
Run = Callable[[Invocation, str | None], Awaitable[None]]


def declare_modal(channel: str) -> dict[str, Any]:
    """Severity (with the runbook's definitions), title, description and component."""
    options = [
        {
            "text": {"type": "plain_text", "text": f"{s}: {d.split(':')[0]}"},
            "description": {"type": "plain_text", "text": d.split(": ", 1)[1][:75]},
            "value": s,
        }
        for s, d in SEVERITIES.items()
    ]
    return {
        "type": "modal",
        "callback_id": DECLARE,
        "private_metadata": channel,
        "title": {"type": "plain_text", "text": "Declare an incident"},
        "submit": {"type": "plain_text", "text": "Declare"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": "severity",
                "label": {"type": "plain_text", "text": "Severity"},
                "element": {
                    "type": "static_select",
                    "action_id": "value",
                    "options": options,
                    "initial_option": options[1],
                },
            },
            {
                "type": "input",
                "block_id": "title",
                "label": {"type": "plain_text", "text": "Title"},
                "element": {"type": "plain_text_input", "action_id": "value", "max_length": 150},
            },
            {
                "type": "input",
                "block_id": "description",
                "optional": True,
                "label": {"type": "plain_text", "text": "What is happening"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": "value",
                    "multiline": True,
                    "max_length": 2000,
                },
            },
            {
                "type": "input",
                "block_id": "component",
                "optional": True,
                "label": {"type": "plain_text", "text": "Affected component"},
                "element": picker("service", "api, queues, search, postgres…"),
            },
        ],
    }


def _value(view: dict, block: str) -> str:
    """What the block's one element holds: typed text or the picked option's value."""
    values = (((view.get("state") or {}).get("values") or {}).get(block) or {}).values()
    state = next(iter(values), None) or {}
    selected = state.get("selected_option") or {}
    return str(selected.get("value") or state.get("value") or "").strip()


class IncidentUI:
    """Turns modal submissions and pickers into `incident …` commands run for whoever acted."""

    def __init__(self, store: IncidentStore, outbox: Any, run: Run) -> None:
        self.store = store
        self.outbox = outbox
        self.run = run

    @staticmethod
    def wants_modal(text: str) -> bool:
        """`/forge incident declare` with nothing after it asks in a modal (unreadable text: no)."""
        try:
            return bool(BARE_DECLARE.match(normalise(text)))
        except UsageError:
            return False

    async def open_modal(self, trigger_id: str | None, channel: str, user: str) -> None:
        """Open the declare modal, or tell the user why not."""
        if (
            not trigger_id
            or await self.outbox.open_view(trigger_id, declare_modal(channel)) is None
        ):
            text = rich(
                "Couldn't open the dialog: type ",
                Code("/forge incident declare P1 <title>"),
                " instead.",
            )
            await self.outbox.ephemeral(channel, user, message(text, [section(text)]))

    async def on_declare(self, ack: Any, body: dict, view: dict) -> None:
        """Validate the modal, close it, and declare as the submitter."""
        severity, title = _value(view, "severity"), _value(view, "title")
        if severity not in SEVERITIES or len(title) < 3:
            await ack(
                response_action="errors", errors={"title": "Give a title of at least 3 characters."}
            )
            return
        await ack()
        words = [f"incident declare {severity}", shlex.quote(title)]
        for option in ("description", "component"):
            if value := _value(view, option):
                words.append(f"--{option} {shlex.quote(value)}")
        channel = str(view.get("private_metadata") or "")
        await self.run(Invocation(" ".join(words), body["user"]["id"], channel or None), None)

    async def on_assign(self, body: dict, action: dict) -> None:
        """The Assign picker: `incident assign <step> <user>` for the person who picked."""
        found = re.fullmatch(r"incident:(\d+):(\d+)", str(action.get("block_id") or ""))
        picked = str(action.get("selected_user") or "")
        if not found or not re.fullmatch(r"[UW][A-Z0-9]{2,20}", picked):
            return
        incident, step = found.groups()
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
            "channel_id"
        )
        thread = _thread(body)
        await self.run(
            Invocation(
                f"incident assign {step} {picked} --id INC-{incident}",
                body["user"]["id"],
                channel,
                event="click",
                thread_ts=thread,
            ),
            thread,
        )

    async def locate(self, invocation: Invocation) -> Invocation:
        """The invocation with the incident whose thread it was made in, if any."""
        if not invocation.thread_ts or not invocation.channel_id or invocation.incident_id:
            return invocation
        try:
            incident = await self.store.by_thread(invocation.channel_id, invocation.thread_ts)
        except BackendError as exc:
            log.warning("incident_lookup_unavailable", error=str(exc))
            return invocation
        return replace(invocation, incident_id=incident["id"]) if incident else invocation

    async def after(self, invocation: Invocation, outcome: Outcome) -> None:
        """A command run in an incident's thread goes on its timeline (once if repeated quickly)."""
        if (
            invocation.incident_id is None
            or invocation.text.strip().startswith("incident")
            or outcome.kind == "approval"
        ):
            return
        try:
            result = outcome.result.status.value if outcome.result else outcome.kind
            command = outcome.spec.name if outcome.spec else invocation.text.split(" ")[0]
            await self.store.record(
                invocation.incident_id,
                "run",
                invocation.actor_id,
                f"{invocation.text} → {result}",
                {"command": command, "outcome": result},
            )
        except BackendError as exc:
            log.warning("incident_timeline_unavailable", error=str(exc))

    async def approval_requested(
        self, channel: str, thread_ts: str | None, actor: str, text: str, approval_id: str
    ) -> None:
        """A destructive command requested from an incident's thread is linked to the incident."""
        if not thread_ts:
            return
        try:
            incident = await self.store.by_thread(channel, thread_ts)
            if incident is not None:
                await self.store.record(
                    incident["id"],
                    "approval_requested",
                    actor,
                    f"Approval requested: {plain(text)}",
                    {"approval": approval_id},
                )
        except BackendError as exc:
            log.warning("incident_timeline_unavailable", error=str(exc))


def _thread(body: dict) -> str | None:
    """The thread a clicked message is in (the incident card's ts), if any."""
    container = body.get("container") or {}
    return container.get("thread_ts") or (body.get("message") or {}).get("thread_ts")

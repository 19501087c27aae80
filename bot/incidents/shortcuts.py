"""The incident shortcuts: "Declare incident" (global) and "Add to incident" (on a message)."""

from __future__ import annotations

import shlex
from collections.abc import Awaitable, Callable
from typing import Any

from bot.approvals.slack import Sealer
from bot.core.audit import AuditEntry
from bot.core.dispatch import Invocation
from bot.core.forge import Forge
from bot.core.registry import Role
from bot.incidents.slack import declare_modal
from bot.log import get_logger
from bot.slack.pickers import picker
from bot.slack.render import message, section
from bot.text.cells import Code, Text, rich

log = get_logger(__name__)
DECLARE_SHORTCUT = "forge_declare_incident"
ADD_SHORTCUT = "forge_add_to_incident"
ADD_MODAL = "forge_incident_add"
PICK_INCIDENT = "forge_pick:incident"
QUOTED_CHARS = 1500
Run = Callable[[Invocation, str | None], Awaitable[None]]


def notice_modal(title: str, text: Text) -> dict[str, Any]:
    """A modal that only says something (why forge will not do what was asked)."""
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": title[:24]},
        "close": {"type": "plain_text", "text": "Close"},
        "blocks": [section(text)],
    }


def add_modal(sealed: str, quoted: str) -> dict[str, Any]:
    """Pick the open incident the message goes to (options from forge, as the user types)."""
    return {
        "type": "modal",
        "callback_id": ADD_MODAL,
        "private_metadata": sealed,
        "title": {"type": "plain_text", "text": "Add to incident"},
        "submit": {"type": "plain_text", "text": "Add"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            section(rich("The message: ", quoted[:300])),
            {
                "type": "input",
                "block_id": "incident",
                "label": {"type": "plain_text", "text": "Open incident"},
                "element": picker("incident", "INC-…"),
            },
        ],
    }


def permalink(domain: str, channel: str, ts: str) -> str:
    """The message's address, as Slack's chat.getPermalink draws it."""
    return f"https://{domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}"


class Shortcuts:
    """Answers the two shortcuts for whoever chose them, after the role each needs is checked."""

    def __init__(self, forge: Forge, outbox: Any, sealer: Sealer, run: Run) -> None:
        self.forge = forge
        self.outbox = outbox
        self.sealer = sealer
        self.run = run

    async def _refusal(self, user: str, command: str, channel: str | None) -> Text | None:
        """Why this user may not run `command` (None: they may); audited either way."""
        spec = self.forge.dispatcher.registry.get(command)
        actor = await self.forge.dispatcher.actor(user, "slack")
        needed = spec.role if spec else Role.ADMIN
        refused: Text | None = None
        if not actor.may(needed):
            held = actor.role.label if actor.role else "no role"
            refused = actor.doubt or rich(
                Code(command), f" needs the {needed.label} role; you have {held}."
            )
        await self.forge.audit.try_record(
            AuditEntry(
                "shortcut",
                user,
                command,
                "refused" if refused else "opened",
                channel_id=channel,
                command=command,
                detail={"shortcut": command},
            )
        )
        return refused

    async def on_declare(self, body: dict) -> None:
        """Global shortcut: the declare modal, or why not, in a modal."""
        user, trigger = body["user"]["id"], str(body.get("trigger_id") or "")
        refused = await self._refusal(user, "incident declare", None)
        channel = self.forge.settings.config.channels.incidents or ""
        view = notice_modal("Declare incident", refused) if refused else declare_modal(channel)
        if trigger:
            await self.outbox.open_view(trigger, view)

    async def on_add(self, body: dict) -> None:
        """Message shortcut: pick an open incident for this message, or be told why not."""
        user, trigger = body["user"]["id"], str(body.get("trigger_id") or "")
        channel = str((body.get("channel") or {}).get("id") or "")
        refused = await self._refusal(user, "incident update", channel or None)
        if refused:
            await self._tell(body, channel, user, rich("🚫 ", refused))
            return
        quoted = self._quote(body, channel)
        sealed = self.sealer.seal(
            {"for": ADD_MODAL, "user": user, "channel": channel, "text": quoted}
        )
        if not trigger or await self.outbox.open_view(trigger, add_modal(sealed, quoted)) is None:
            await self._tell(body, channel, user, "❌ Couldn't open the dialog; try again.")

    @staticmethod
    def _quote(body: dict, channel: str) -> str:
        """`Message from U…: text (link)`, on one line, the text clipped."""
        msg = body.get("message") or {}
        text = " ".join(str(msg.get("text") or "").split())
        if len(text) > QUOTED_CHARS:
            text = text[: QUOTED_CHARS - 1] + "…"
        domain = str((body.get("team") or {}).get("domain") or "slack")
        ts = str(msg.get("ts") or body.get("message_ts") or "")
        author = str(msg.get("user") or msg.get("bot_id") or "someone")
        return f"Message from {author}: {text or '(no text)'} ({permalink(domain, channel, ts)})"

    async def on_submit(self, ack: Any, view: dict, user: str) -> None:
        """The picked incident gets the message as a timeline update, run as the submitter."""
        payload = self.sealer.open(str(view.get("private_metadata") or ""))
        picked = _picked(view)
        if payload is None or payload.get("for") != ADD_MODAL or payload.get("user") != user:
            await ack(response_action="errors", errors={"incident": "This dialog is not valid."})
            return
        if not picked.isdigit():
            await ack(response_action="errors", errors={"incident": "Pick an open incident."})
            return
        await ack()
        text = f"incident update --id INC-{picked} {shlex.quote(payload['text'])}"
        await self.run(Invocation(text, user, payload["channel"] or None), None)

    async def _tell(self, body: dict, channel: str, user: str, text: Text) -> None:
        said = message(text, [section(text)])
        url = body.get("response_url")
        if not (isinstance(url, str) and await self.outbox.respond(url, said)):
            await self.outbox.ephemeral(channel, user, said)


def _picked(view: dict) -> str:
    state = (((view.get("state") or {}).get("values") or {}).get("incident") or {}).get(
        PICK_INCIDENT
    ) or {}
    return str((state.get("selected_option") or {}).get("value") or "")

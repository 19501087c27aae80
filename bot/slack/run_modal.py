"""The Home tab's "Run a command": pick a command you may run, then its arguments and where the
answer goes; the command then runs through the normal path (role, audit, approval) as you."""

from __future__ import annotations

import shlex
from typing import Any

from bot.approvals.slack import Sealer
from bot.core.dispatch import Invocation
from bot.core.forge import Forge
from bot.core.registry import CommandSpec
from bot.slack.outbox import Outbox
from bot.slack.pickers import picker
from bot.slack.render import context, section
from bot.text.cells import Code, rich

RUN_PICK = "forge_run_pick"
RUN_ARGS = "forge_run_args"
WHERE = "where"
PICKED_BY_NAME = {"queue": "queue", "file": "backup", "index": "index", "alias": "index"}


def pick_view() -> dict[str, Any]:
    """Step one: which command (only those the person may run are offered)."""
    return {
        "type": "modal",
        "callback_id": RUN_PICK,
        "title": {"type": "plain_text", "text": "Run a command"},
        "submit": {"type": "plain_text", "text": "Next"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [_input("command", "Command", picker("command", "queue health, backup list…"))],
    }


def args_view(spec: CommandSpec, sealed: str) -> dict[str, Any]:
    """Step two: one input per argument, and the channel the answer goes to."""
    blocks: list[dict[str, Any]] = [
        section(rich("Usage: ", Code(spec.usage))),
        context(spec.summary),
    ]
    for name, field in spec.positionals():
        blocks.append(_argument(f"arg:{name}", name, field))
    for name, field in spec.options():
        blocks.append(_argument(f"opt:{name}", "--" + name.replace("_", "-"), field))
    where = {"type": "conversations_select", "action_id": "value"}
    blocks.append(_input(WHERE, "Post the answer in", where))
    return {
        "type": "modal",
        "callback_id": RUN_ARGS,
        "private_metadata": sealed,
        "title": {"type": "plain_text", "text": "Run a command"},
        "submit": {"type": "plain_text", "text": "Run"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks[:100],
    }


def _argument(block_id: str, label: str, field: Any) -> dict[str, Any]:
    name = block_id.split(":", 1)[1]
    if field.annotation is bool:
        options = [_option("no"), _option("yes")]
        element: dict[str, Any] = {
            "type": "static_select",
            "action_id": "value",
            "options": options,
        }
    elif name in PICKED_BY_NAME:
        element = picker(PICKED_BY_NAME[name], name)
    else:
        element = {"type": "plain_text_input", "action_id": "value", "max_length": 2000}
    block = _input(block_id, label, element, optional=not field.is_required())
    if field.description:
        block["hint"] = {"type": "plain_text", "text": field.description[:150]}
    return block


def _input(block_id: str, label: str, element: dict, *, optional: bool = False) -> dict[str, Any]:
    return {
        "type": "input",
        "block_id": block_id,
        "optional": optional,
        "label": {"type": "plain_text", "text": label[:2000]},
        "element": element,
    }


def _option(text: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": text}, "value": text}


def _picked(view: dict, block: str) -> str:
    """The value of a block's one element: typed, picked or the chosen conversation."""
    values = (((view.get("state") or {}).get("values") or {}).get(block) or {}).values()
    state = next(iter(values), None) or {}
    option = state.get("selected_option") or {}
    found = option.get("value") or state.get("value") or state.get("selected_conversation")
    return str(found or "").strip()


class RunModal:
    """Both steps, for whoever submits; the run itself is the surface's normal one."""

    def __init__(self, forge: Forge, outbox: Outbox, sealer: Sealer) -> None:
        self.forge = forge
        self.outbox = outbox
        self.sealer = sealer

    async def open(self, trigger_id: str) -> None:
        """The Home tab's button: step one."""
        await self.outbox.open_view(trigger_id, pick_view())

    async def on_pick(self, ack: Any, body: dict, view: dict) -> None:
        """Step one submitted: the arguments step for a command the person may run."""
        user = body["user"]["id"]
        spec = self.forge.dispatcher.registry.get(_picked(view, "command"))
        actor = await self.forge.dispatcher.actor(user, "slack")
        if spec is None or not actor.may(spec.role):
            await ack(response_action="errors", errors={"command": "Pick a command you may run."})
            return
        sealed = self.sealer.seal({"for": RUN_ARGS, "user": user, "command": spec.name})
        await ack(response_action="update", view=args_view(spec, sealed))

    async def on_args(self, ack: Any, body: dict, view: dict) -> Invocation | None:
        """Step two submitted: the invocation to run as the submitter (None: refused here)."""
        user = body["user"]["id"]
        payload = self.sealer.open(str(view.get("private_metadata") or ""))
        payload = payload if payload and payload.get("for") == RUN_ARGS else {}
        spec = self.forge.dispatcher.registry.get(str(payload.get("command")))
        if spec is None or payload.get("user") != user:
            await ack(response_action="errors", errors={WHERE: "This dialog is not valid."})
            return None
        channel = _picked(view, WHERE)
        if not channel:
            await ack(response_action="errors", errors={WHERE: "Pick where the answer goes."})
            return None
        await ack()
        return Invocation(_text(spec, view), user, channel)


def _text(spec: CommandSpec, view: dict) -> str:
    """The command line the two steps describe, options first, every value quoted."""
    words = [spec.name]
    for name, field in spec.options():
        value, flag = _picked(view, f"opt:{name}"), "--" + name.replace("_", "-")
        if field.annotation is bool and value == "yes":
            words.append(flag)
        elif field.annotation is not bool and value:
            words += [flag, shlex.quote(value)]
    for name, _ in spec.positionals():
        if value := _picked(view, f"arg:{name}"):
            words.append(shlex.quote(value))
    return " ".join(words)

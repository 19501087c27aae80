"""external_select options: Slack's block_suggestion answered from forge's names within 3 s."""

from __future__ import annotations

import re
from typing import Any

from bot.core.dispatch import Invocation
from bot.core.forge import Forge
from bot.core.registry import Role
from bot.pickers.names import Names

PICK = re.compile(r"^forge_pick:(\w+)$")


def picker(kind: str, placeholder: str, *, initial: str | None = None) -> dict[str, Any]:
    """An external_select whose options forge loads as the user types."""
    element: dict[str, Any] = {
        "type": "external_select",
        "action_id": f"forge_pick:{kind}",
        "min_query_length": 0,
        "placeholder": {"type": "plain_text", "text": placeholder[:150]},
    }
    if initial:
        element["initial_option"] = option(initial, initial)
    return element


def option(label: str, value: str) -> dict[str, Any]:
    """One option, clipped to Slack's limits (75 characters shown, 150 carried)."""
    shown = label if len(label) <= 75 else label[:74] + "…"
    return {"text": {"type": "plain_text", "text": shown}, "value": value[:150]}


class Pickers:
    """Options for whoever types, if they hold a role at all; nothing for anyone else."""

    def __init__(self, forge: Forge, names: Names | None = None) -> None:
        self.forge = forge
        self.names = names or Names()

    async def options(self, body: dict) -> list[dict[str, Any]]:
        """The options for this block_suggestion: its kind from the action id, filtered by value."""
        found = PICK.match(str(body.get("action_id") or ""))
        user = body["user"]["id"]
        actor = await self.forge.dispatcher.actor(user, "slack")
        if found is None or not actor.may(Role.VIEWER):
            return []
        ctx = self.forge.dispatcher.context(actor, Invocation("", user))
        typed = str(body.get("value") or "")[:100]
        return [option(n.label, n.value) for n in await self.names.offer(found[1], typed, ctx)]

"""What one person's Home tab shows, each part read by running its command as them.

Every part is a read command from the registry, authorized for the person like a typed one and
run by the dispatcher's handler call, in parallel within PART_BUDGET; a part that fails, is
refused or is slow is shown as such. Only the opening of the tab is audited, not each refresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.core.context import Actor
from bot.core.dispatch import Invocation, Outcome
from bot.core.errors import ForgeError
from bot.core.forge import Forge
from bot.log import get_logger
from bot.text.cells import Code, Text, rich

log = get_logger(__name__)
PART_BUDGET = 4.0
PARTS = {
    "me": "whoami",
    "approvals": "approvals",
    "incidents": "incident list",
    "queues": "queue health",
    "backups": "backup list",
    "alerts": "alerts",
}


@dataclass(frozen=True)
class Part:
    """One command's answer for the Home tab: its data and table rows, or why there are none."""

    data: dict[str, Any] = field(default_factory=dict)
    rows: Sequence[Sequence[Text]] = field(default_factory=list)
    problem: Text = ""


@dataclass(frozen=True)
class Dashboard:
    """Everything the Home tab shows for one person."""

    user: str
    parts: dict[str, Part]
    drill: dict[str, Any] | None = None

    def part(self, name: str) -> Part:
        """One part, or an empty one."""
        return self.parts.get(name) or Part(problem="not read")


async def gather(forge: Forge, user: str) -> Dashboard:
    """Run the Home tab's commands as `user`, at once, each within PART_BUDGET."""
    actor = await forge.dispatcher.actor(user, "slack")
    names = list(PARTS)
    answers = await asyncio.gather(*(_part(forge, actor, PARTS[n]) for n in names))
    return Dashboard(user, dict(zip(names, answers, strict=True)), await _last_drill(forge))


async def _part(forge: Forge, actor: Actor, command: str) -> Part:
    dispatcher = forge.dispatcher
    invocation = Invocation(command, actor.user_id, None, event="home")
    try:
        parsed = dispatcher.parse(invocation, actor)
        dispatcher.authorize(parsed, actor, invocation)
        call = dispatcher.call(parsed.spec, dispatcher.context(actor, invocation), parsed)
        outcome = await asyncio.wait_for(call, PART_BUDGET)
    except ForgeError as exc:
        return Part(problem=exc.text)
    except TimeoutError:
        return Part(problem=rich(Code(command), f" did not answer within {PART_BUDGET:g} s."))
    except Exception as exc:  # one part must never take the tab down
        log.warning("home_part_failed", command=command, error=type(exc).__name__)
        return Part(problem=rich(Code(command), " failed."))
    return _from(outcome)


def _from(outcome: Outcome) -> Part:
    result = outcome.result
    if result is None:
        return Part(problem=outcome.message or outcome.kind)
    rows = result.tables[0].rows if result.tables else []  # the first table is the command's own
    return Part(dict(result.data), rows)


async def _last_drill(forge: Forge) -> dict[str, Any] | None:
    """The newest `backup drill` in the audit trail: when, and how it ended."""
    try:
        found = await forge.audit.query(command="backup drill", limit=5)
    except Exception as exc:
        log.info("home_drill_unknown", error=type(exc).__name__)
        return None
    ran = [r for r in found if r["event"] not in ("intent", "authz_fail", "replay_refused")]
    return ran[0] if ran else {}

"""Who one can be in the playground and which channels there are, read off the config."""

from __future__ import annotations

import re
from typing import Any

from bot.config.settings import Config

GUEST = "U0GUEST"
Json = dict[str, Any]


def _name(slack_id: str) -> str:
    """A readable handle for a demo ID: U0LEAD -> lead, C0OPS -> ops."""
    return re.sub(r"^[UWSCG]0?", "", slack_id).lower() or slack_id.lower()


def _member_of(group: str) -> str:
    """The one demo member the stand-in gives a user group: S0ONCALL -> U0ONCALL."""
    return "U" + group[1:]


def people(config: Config, api: Any) -> list[Json]:
    """Everyone the config names (a user group by one member the stand-in invents), and a guest."""
    found: dict[str, Json] = {}
    grants = [
        *(
            (p, role)
            for role in ("admin", "operator", "viewer")
            for p in getattr(config.roles, role)
        ),
        *((p, "approver") for p in config.approvers),
    ]
    for principal, _ in grants:
        if principal == "*":
            continue
        if principal.startswith("S"):
            member = _member_of(principal)
            api.usergroups.setdefault(principal, [member])
            found.setdefault(member, {"id": member, "name": _name(member), "via": principal})
        else:
            found.setdefault(principal, {"id": principal, "name": _name(principal), "via": None})
    if "*" in config.roles.viewer:
        found.setdefault(GUEST, {"id": GUEST, "name": "guest", "via": None})
    return list(found.values())


def channels(config: Config, api: Any) -> list[Json]:
    """#ops, the config's alert, incident and destructive-command channels, and any forge made."""
    named = {"C0OPS": "ops"}
    if config.channels.alerts:
        named[config.channels.alerts] = "alerts"
    if config.channels.incidents:
        named[config.channels.incidents] = "incidents"
    for channel in [
        *config.channels.destructive,
        *(route.channel for route in config.alerts.routes),
    ]:
        named.setdefault(channel, _name(channel))
    for channel, name in named.items():
        api.channel_names.setdefault(channel, name)
    return [
        {"id": channel, "name": api.channel_names[channel]}
        for channel in {**named, **api.channel_names}
    ]

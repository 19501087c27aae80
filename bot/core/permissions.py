"""Roles from the config file, by Slack user ID, user-group ID or "*"; any error denies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.config.settings import Config
from bot.core.registry import Role
from bot.log import get_logger

log = get_logger(__name__)


class GroupDirectory(Protocol):
    """Who is in a Slack user group."""

    async def members(self, group_id: str, fresh: bool = False) -> frozenset[str]:
        """User IDs in the group (`fresh`: asked now, uncached); raises when it cannot tell."""


class NoGroups:
    """A directory for when Slack is not reachable (the terminal): groups cannot be resolved."""

    async def members(self, group_id: str, fresh: bool = False) -> frozenset[str]:
        """Always raises: membership is unknown."""
        raise LookupError(f"cannot resolve user group {group_id} without Slack")


@dataclass(frozen=True)
class Grant:
    """What a user holds right now; `doubt` says why a higher grant could not be checked."""

    role: Role | None
    approver: bool
    doubt: str | None = None


class Permissions:
    """Resolves a Slack user to a role and approver flag, fresh for every request."""

    def __init__(self, config: Config, groups: GroupDirectory) -> None:
        self._config = config
        self._groups = groups

    async def resolve(self, user_id: str, fresh: bool = False) -> Grant:
        """The highest role the user certainly holds, and whether they may approve."""
        doubt = None
        role = None
        for candidate in sorted(Role, reverse=True):
            held, unknown = await self._matches(
                user_id, getattr(self._config.roles, candidate.label), fresh
            )
            doubt = doubt or unknown
            if held:
                role = candidate
                break
        approver, unknown = await self._matches(user_id, self._config.approvers, fresh)
        return Grant(role, approver, doubt or unknown)

    async def _matches(
        self, user_id: str, principals: list[str], fresh: bool = False
    ) -> tuple[bool, str | None]:
        """Whether the user is a principal; a failed group lookup grants nothing and is reported."""
        if "*" in principals or user_id in principals:
            return True, None
        doubt = None
        for group in (p for p in principals if p.startswith("S")):
            try:
                if user_id in await self._groups.members(group, fresh=fresh):
                    return True, None
            except Exception as exc:  # fail closed: an unknown membership grants nothing
                log.warning("usergroup_lookup_failed", group=group, error=type(exc).__name__)
                doubt = (
                    "Can't verify permissions right now "
                    "(the Slack user-group lookup failed); try again."
                )
        return False, doubt

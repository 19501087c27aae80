"""Roles from the config file, by Slack user ID, user-group ID or "*"; any error denies."""

from __future__ import annotations

import time
from typing import Protocol

from bot.errors import PermissionDenied
from bot.registry import Role
from bot.settings import Config

GROUP_CACHE_SECONDS = 300.0


class GroupDirectory(Protocol):
    """Who is in a Slack user group."""

    async def members(self, group_id: str) -> frozenset[str]:
        """User IDs in the group; raises when it cannot tell."""


class NoGroups:
    """A directory for when Slack is not reachable (the terminal): groups cannot be resolved."""

    async def members(self, group_id: str) -> frozenset[str]:
        """Always raises: membership is unknown."""
        raise LookupError(f"cannot resolve user group {group_id} without Slack")


class SlackGroupDirectory:
    """`usergroups.users.list`, cached for five minutes."""

    def __init__(self, client: object, ttl: float = GROUP_CACHE_SECONDS) -> None:
        self._client = client
        self._ttl = ttl
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    async def members(self, group_id: str) -> frozenset[str]:
        """Members of the group, from the cache when fresh."""
        cached = self._cache.get(group_id)
        if cached and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        response = await self._client.usergroups_users_list(usergroup=group_id)  # type: ignore[attr-defined]
        members = frozenset(response.get("users") or [])
        self._cache[group_id] = (time.monotonic(), members)
        return members


class Permissions:
    """Resolves a Slack user to a role and approver flag, fresh for every request."""

    def __init__(self, config: Config, groups: GroupDirectory) -> None:
        self._config = config
        self._groups = groups

    async def role_of(self, user_id: str) -> Role | None:
        """The highest role the user holds, or None."""
        for role in sorted(Role, reverse=True):
            if await self._matches(user_id, getattr(self._config.roles, role.label)):
                return role
        return None

    async def is_approver(self, user_id: str) -> bool:
        """True when the user may approve destructive requests of others."""
        return await self._matches(user_id, self._config.approvers)

    async def _matches(self, user_id: str, principals: list[str]) -> bool:
        if "*" in principals or user_id in principals:
            return True
        for group in (p for p in principals if p.startswith("S")):
            try:
                if user_id in await self._groups.members(group):
                    return True
            except Exception as exc:  # fail closed: an unknown membership grants nothing
                raise PermissionDenied("Can't verify permissions right now (user group lookup failed).") from exc
        return False

"""Slack user groups for role grants: `usergroups.users.list`, cached."""

from __future__ import annotations

import asyncio
import time

GROUP_CACHE_SECONDS = 300.0
FAILED_LOOKUP_SECONDS = 15.0


class SlackGroupDirectory:
    """`usergroups.users.list`, cached for five minutes."""

    def __init__(self, client: object, ttl: float = GROUP_CACHE_SECONDS) -> None:
        self._client = client
        self._ttl = ttl
        self._cache: dict[str, tuple[float, frozenset[str] | None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def members(self, group_id: str, fresh: bool = False) -> frozenset[str]:
        """Members, cached unless `fresh`; misses share a lookup; failures are cached briefly."""
        async with self._locks.setdefault(group_id, asyncio.Lock()):
            cached = None if fresh else self._cache.get(group_id)
            if cached and cached[1] is not None and time.monotonic() - cached[0] < self._ttl:
                return cached[1]
            if (
                cached
                and cached[1] is None
                and time.monotonic() - cached[0] < FAILED_LOOKUP_SECONDS
            ):
                raise LookupError(f"user group {group_id} could not be read recently")
            try:
                response = await self._client.usergroups_users_list(usergroup=group_id)  # type: ignore[attr-defined]
            except Exception:
                self._cache[group_id] = (time.monotonic(), None)
                raise
            members = frozenset(response.get("users") or [])
            self._cache[group_id] = (time.monotonic(), members)
            return members

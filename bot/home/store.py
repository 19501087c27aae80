"""Home tabs in the state store: who watches, and each one's publishing window, for all replicas."""

from __future__ import annotations

from bot.backends.clients import call
from bot.state.store import StateStore

CLAIM = """
UPDATE forge.home_tabs SET published_at = now()
 WHERE user_id = $1
   AND (published_at IS NULL OR published_at <= now() - make_interval(secs => $2))
RETURNING user_id"""
WAIT = """
SELECT GREATEST(0, EXTRACT(EPOCH FROM published_at + make_interval(secs => $2) - now()))::float8
  FROM forge.home_tabs WHERE user_id = $1"""


class HomeStore:
    """forge.home_tabs; every call has the backend timeout and raises BackendError."""

    def __init__(self, store: StateStore, timeout: float) -> None:
        self.store = store
        self.timeout = timeout

    async def opened(self, user: str) -> None:
        """The user opened their Home tab now."""
        pool = await self.store.pool()
        sql = (
            "INSERT INTO forge.home_tabs (user_id) VALUES ($1) "
            "ON CONFLICT (user_id) DO UPDATE SET opened_at = now()"
        )
        await call("state store", pool.execute(sql, user), self.timeout)

    async def watchers(self, seconds: float) -> list[str]:
        """Users who opened their Home tab within the last `seconds`."""
        pool = await self.store.pool()
        rows = await call(
            "state store",
            pool.fetch(
                "SELECT user_id FROM forge.home_tabs "
                "WHERE opened_at > now() - make_interval(secs => $1)",
                seconds,
            ),
            self.timeout,
        )
        return [r["user_id"] for r in rows]

    async def claim(self, user: str, window: float) -> float:
        """Take this user's publishing slot: 0 when taken, else the seconds until it is free."""
        pool = await self.store.pool()
        if await call("state store", pool.fetchval(CLAIM, user, window), self.timeout):
            return 0.0
        wait = await call("state store", pool.fetchval(WAIT, user, window), self.timeout)
        return float(wait) if wait is not None else 0.0

"""The tests' Slack double: a scriptable playground Web API on its own server, with Socket Mode."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import WSCloseCode, web

from bot.playground.slack_types import (
    APP_ID,
    BOT_ID,
    BOT_USER,
    SCOPES,
    TEAM_ID,
    Call,
    Json,
    Result,
    err,
)
from bot.playground.web_api import SlackWebApi, UploadedFile

from .slack_links import SocketModeMixin

__all__ = [
    "APP_ID",
    "BOT_ID",
    "BOT_USER",
    "SCOPES",
    "TEAM_ID",
    "Call",
    "SlackDouble",
    "UploadedFile",
]


@dataclass
class _Failure:
    status: int
    error: str
    times: int
    retry_after: int


class SlackDouble(SocketModeMixin, SlackWebApi):
    """An aiohttp server on 127.0.0.1 acting as the parts of Slack forge uses, recording it all."""

    def __init__(self, *, enforce_channel_rate: bool = False, port: int = 0) -> None:
        """Configure the double; start() (or `async with`) serves on `port` (0: any free one)."""
        super().__init__(f"http://127.0.0.1:{port}")
        self.enforce_channel_rate = enforce_channel_rate
        self.envelopes: list[Json] = []
        self.socket_acks: list[Json] = []
        self.socket_connected = asyncio.Event()
        self.socket_connections = 0
        self.port = port
        self._failures: dict[str, deque[_Failure]] = {}
        self._delays: dict[str, float] = {}
        self._buckets: dict[str, tuple[float, float]] = {}
        self._sockets: list[web.WebSocketResponse] = []
        self._unacked: dict[str, tuple[web.WebSocketResponse, Json]] = {}
        self._turn = -1
        self.deliveries: list[tuple[str, int]] = []
        self.redelivered: list[str] = []
        self._runner: web.AppRunner | None = None

    # lifecycle

    async def start(self) -> SlackDouble:
        """Serve on the configured port, or a random free one."""
        app = web.Application()
        app.add_routes(self.routes())
        app.router.add_get("/link/", self._link)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self.port = self._runner.addresses[0][1]
        self.base = f"http://127.0.0.1:{self.port}"
        return self

    async def stop(self) -> None:
        """Close open sockets, then the server."""
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SlackDouble:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # scripting

    def fail(
        self,
        method: str,
        status: int = 429,
        error: str = "ratelimited",
        times: int = 1,
        retry_after: int = 1,
    ) -> None:
        """Fail the next `times` calls of `method` (or "response_url"), after any earlier fail()."""
        self._failures.setdefault(method, deque()).append(
            _Failure(status, error, times, retry_after)
        )

    def delay(self, method: str, seconds: float) -> None:
        """Delay every later call of `method` (or "response_url") by `seconds`; 0 undoes."""
        self._delays[method] = seconds

    def clear(self) -> None:
        """Forget everything recorded and stored (scripted failures and settings stay)."""
        super().clear()
        self.envelopes.clear()
        self.socket_acks.clear()

    async def wait_for(self, method: str, count: int = 1, timeout: float = 3.0) -> list[Call]:
        """Wait until `method` has been called `count` times; its calls."""
        await self._poll(
            lambda: len(self.calls_to(method)) >= count,
            timeout,
            lambda: (
                f"expected {count} call(s) to {method!r} within {timeout}s, "
                f"got {len(self.calls_to(method))}; received: {self._summary()}"
            ),
        )
        return self.calls_to(method)

    def _summary(self) -> str:
        return (
            ", ".join(f"{m} x{n}" for m, n in Counter(c.method for c in self.calls).items())
            or "nothing"
        )

    @staticmethod
    async def _poll(done: Callable[[], bool], timeout: float, message: Callable[[], str]) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() >= deadline:
                raise AssertionError(message())
            await asyncio.sleep(0.01)

    async def _scripted(self, method: str) -> Result | None:
        """Apply delay(), then answer with the pending fail(), if any."""
        await asyncio.sleep(self._delays.get(method, 0))
        queue = self._failures.get(method)
        if not queue:
            return None
        failure = queue[0]
        failure.times -= 1
        if failure.times <= 0:
            queue.popleft()
        headers = {"Retry-After": str(failure.retry_after)} if failure.status == 429 else {}
        return failure.status, err(failure.error), headers

    def _limited(self, method: str, args: Json) -> bool:
        """With enforce_channel_rate, chat.postMessage beyond the channel's token bucket."""
        return (
            method == "chat.postMessage"
            and self.enforce_channel_rate
            and not self._rate_ok(args.get("channel"))
        )

    def _rate_ok(self, channel: str | None) -> bool:
        """Token bucket per channel: a burst of 3, refilled at 1 per second."""
        now = time.monotonic()
        tokens, last = self._buckets.get(str(channel), (3.0, now))
        tokens = min(3.0, tokens + (now - last))
        self._buckets[str(channel)] = (tokens - 1 if tokens >= 1 else tokens, now)
        return tokens >= 1

    def _api_apps_connections_open(self, args: Json) -> Json:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/link/?ticket={self._ticket()}"}

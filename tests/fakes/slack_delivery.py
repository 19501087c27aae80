"""Slack's delivery to forge, as Slack does it: 3 s to answer, events retried, commands never.

Slash commands and interactive payloads are sent once: a failure or a late answer is only an
error the user sees. Events API deliveries that fail (no 2xx, a broken connection, no answer
within 3 s) are retried up to 3 times with X-Slack-Retry-Num and X-Slack-Retry-Reason.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from typing import Any

import aiohttp

from bot.playground.slack_requests import Response, SlackClient

ACK_WITHIN = 3.0


class SlackDelivery(SlackClient):
    """A SlackClient whose requests fail as Slack's do; `statuses` counts every answer (0: none)."""

    def __init__(self, *args: Any, retry_delays: tuple[float, ...] = (0.0, 1.0, 2.0), **kw: Any):
        super().__init__(*args, **kw)
        self.retry_delays = retry_delays
        self.statuses: Counter[int] = Counter()
        self.event_retries = 0

    async def post_raw(self, body: str, headers: dict[str, str]) -> Response:
        """One attempt: the answer, or status 0 when the connection failed or 3 s passed."""
        session = self._session or aiohttp.ClientSession()
        self._session = session
        started = time.perf_counter()
        try:
            async with asyncio.timeout(ACK_WITHIN):
                async with session.post(self.url, data=body.encode(), headers=headers) as answer:
                    text = await answer.text()
                    status, answered = answer.status, dict(answer.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            status, text, answered = 0, type(exc).__name__, {}
        self.statuses[status] += 1
        return Response(status, text, answered, time.perf_counter() - started)

    async def event(self, event: dict[str, Any], **kw: Any) -> Response:
        """Deliver an event; on failure, retry as Slack does (same event_id, Retry-Num 1..3)."""
        kw.pop("retry_num", None)
        kw.setdefault("event_id", "Ev" + secrets.token_hex(6).upper())
        response = await super().event(event, **kw)
        for attempt, delay in enumerate(self.retry_delays, start=1):
            if 200 <= response.status < 300 or response.headers.get("X-Slack-No-Retry") == "1":
                break
            await asyncio.sleep(delay)
            self.event_retries += 1
            reason = "http_timeout" if response.status == 0 else "http_error"
            response = await super().event(event, retry_num=attempt, retry_reason=reason, **kw)
        return response

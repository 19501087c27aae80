"""Background loops (alert cards, incident board, backup schedule): a step, then a pause, forever.

A backend outage is logged once when it starts and once when it ends, and the loop waits longer
after each failure (up to 30 s) instead of logging every half second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bot.core.errors import BackendError
from bot.log import get_logger

log = get_logger(__name__)
MAX_PAUSE = 30.0


class Backoff:
    """The pause after a step: the usual one while it works, doubling while the backend is down."""

    def __init__(self, name: str, pause: float) -> None:
        self.name, self.pause, self.current, self.down = name, pause, pause, False

    def ok(self) -> float:
        """The step worked: say so if it had not, and use the usual pause."""
        if self.down:
            log.info(f"{self.name}_resumed")
        self.down, self.current = False, self.pause
        return self.pause

    def failed(self, exc: BackendError) -> float:
        """The backend failed: log it once per outage and wait longer each time."""
        if not self.down:
            log.warning(f"{self.name}_paused", error=str(exc))
        self.down, self.current = True, min(MAX_PAUSE, max(self.current * 2, 1.0))
        return self.current


async def stop(*tasks: asyncio.Task[None]) -> None:
    """Cancel the tasks and wait until they are done, cancelling again: Python 3.11's `wait_for` can
    swallow a cancellation that arrives as its inner wait finishes, and a loop that missed one would
    run on."""
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)


async def forever(
    name: str,
    step: Callable[[], Awaitable[object]],
    pause: float,
    wait: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Run `step`, then `wait(pause)`, until cancelled; a step that crashes is only logged."""
    backoff = Backoff(name, pause)
    while True:
        try:
            await step()
            delay = backoff.ok()
        except BackendError as exc:
            delay = backoff.failed(exc)
        except Exception:
            log.exception(f"{name}_failed")
            delay = pause
        await wait(delay)

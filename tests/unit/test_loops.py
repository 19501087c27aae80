"""Background loops back off while a backend is down, say so once, never die of a crashing step."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from bot.background.loops import MAX_PAUSE, forever, stop
from bot.core.errors import BackendUnavailable


async def test_pauses_grow_while_the_backend_is_down_and_reset_after():
    """Down, down, down, a crash, up: pauses 1, 2, 4, the usual 0.5 after the crash and after
    recovery; the outage is logged once when it starts and once when it ends."""
    outcomes = iter(
        [BackendUnavailable("state store", "connection refused")] * 3 + [RuntimeError("bug"), None]
    )
    waited: list[float] = []

    async def step() -> None:
        result = next(outcomes)
        if result is not None:
            raise result

    async def wait(seconds: float) -> None:
        waited.append(seconds)
        if len(waited) == 5:
            raise asyncio.CancelledError

    with capture_logs() as logs, pytest.raises(asyncio.CancelledError):
        await forever("board", step, 0.5, wait)
    assert waited == [1.0, 2.0, 4.0, 0.5, 0.5]
    events = [entry["event"] for entry in logs]
    assert events.count("board_paused") == 1 and events.count("board_resumed") == 1
    assert "board_failed" in events and max(waited) <= MAX_PAUSE


async def test_stop_ends_a_loop_that_swallowed_a_cancellation():
    """A loop that lost a cancellation (as 3.11's wait_for can) is re-cancelled until it ends."""
    swallowed = []

    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed.append(True)

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0.02)
    await asyncio.wait_for(stop(task), 2)
    assert task.cancelled() and swallowed == [True]

"""Tasks forge starts and does not await at once: each one's failure is observed and logged.

asyncio logs "Task exception was never retrieved" only when a failed task is collected, long after
the fact and without forge's context; `observe` retrieves the exception the moment the task ends
and logs it as `task_failed` with the task's name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from bot.log import get_logger

log = get_logger(__name__)
T = TypeVar("T")


def observe(task: asyncio.Task[T]) -> asyncio.Task[T]:
    """Have the task's exception retrieved and logged as soon as it ends; the task."""
    task.add_done_callback(_report)
    return task


def spawn(coro: Coroutine[Any, Any, T], name: str | None = None) -> asyncio.Task[T]:
    """Start a coroutine as an observed task."""
    return observe(asyncio.create_task(coro, name=name))


def _report(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("task_failed", task=task.get_name(), error=type(error).__name__, exc_info=error)

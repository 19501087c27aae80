"""The render pool: spawned worker processes, started on the first picture, so neither the Slack
ack path nor the event loop waits on matplotlib, and `forge run help` never imports it.

    png = await render(figure)      # GraphError when it cannot be drawn in time or small enough
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

from bot.graphs.spec import Figure

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

WORKERS = max(1, min(2, (os.cpu_count() or 2) - 1))  # leave a core to the bot
NICENESS = 10  # a picture may wait; the bot's acks and /metrics scrapes may not
RENDER_SECONDS = 20.0  # a cold pool spawns Python and imports matplotlib first
MAX_BYTES = 200 * 1024
PNG = b"\x89PNG\r\n\x1a\n"
_pool: ProcessPoolExecutor | None = None


class GraphError(Exception):
    """The picture could not be drawn; the message says why, in plain words."""


def _draw(figure: Figure, dpi: int) -> bytes:
    """In a worker: draw the figure (matplotlib is imported here, never in the bot's process)."""
    from bot.graphs import draw

    return draw.render(figure, dpi)


def _warm() -> None:
    """In a new worker: yield the CPU to the bot, and import matplotlib before the first picture."""
    os.nice(NICENESS)
    from bot.graphs import draw  # noqa: F401


def pool() -> ProcessPoolExecutor:
    """The process pool, started on first use."""
    global _pool
    if _pool is None:
        import atexit
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        atexit.register(shutdown)  # before interpreter teardown, or its manager thread complains

        _pool = ProcessPoolExecutor(
            WORKERS, mp_context=multiprocessing.get_context("spawn"), initializer=_warm
        )
    return _pool


def started() -> bool:
    """True once the pool runs."""
    return _pool is not None


async def render(figure: Figure) -> bytes:
    """The figure as a PNG of at most 200 KB; drawn again at a lower resolution if too big."""
    for dpi in (200, 150, 100):
        data = await _run(figure, dpi)
        if len(data) <= MAX_BYTES:
            return data
    raise GraphError(f"the picture stays over {MAX_BYTES // 1024} KB even at a low resolution")


async def _run(figure: Figure, dpi: int) -> bytes:
    from concurrent.futures.process import BrokenProcessPool

    loop = asyncio.get_running_loop()
    try:
        data = await asyncio.wait_for(
            loop.run_in_executor(pool(), _draw, figure, dpi), RENDER_SECONDS
        )
    except TimeoutError:
        raise GraphError(f"drawing took longer than {RENDER_SECONDS:g} s") from None
    except BrokenProcessPool:
        shutdown()
        raise GraphError("the drawing process died; the next picture starts a new one") from None
    except Exception as exc:  # a bug in drawing must cost the picture, never the command
        raise GraphError(f"drawing failed ({type(exc).__name__})") from exc
    if not data.startswith(PNG):
        raise GraphError("the drawing process returned no PNG")
    return data


def memory_bytes() -> int:
    """Resident memory of the pool's worker processes (Linux /proc), 0 when not started."""
    if _pool is None:
        return 0
    total = 0
    for pid in list(getattr(_pool, "_processes", {}) or {}):
        try:
            with open(f"/proc/{pid}/statm") as statm:
                total += int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
    return total


def shutdown() -> None:
    """Stop the workers; the next picture starts the pool again."""
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=False, cancel_futures=True)
        _pool = None

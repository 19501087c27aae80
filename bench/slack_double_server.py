"""The Slack double as a process of its own, for benchmarks: `slack_double_server.py PORT`."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.slack_double import SlackDouble


async def serve(port: int) -> None:
    """Serve until killed."""
    async with SlackDouble(port=port):
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))

"""The baseline for bench/ack_latency.py: a bare Bolt app, one listener that acks and posts."""

from __future__ import annotations

import os
import sys

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient


def main() -> None:
    """Serve /slack/events with Bolt's own aiohttp server on the given port."""
    port = int(sys.argv[1])
    client = AsyncWebClient(
        token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"]
    )
    app = AsyncApp(client=client, signing_secret=os.environ["SLACK_SIGNING_SECRET"])

    @app.command("/forge")
    async def answer(ack, say) -> None:  # type: ignore[no-untyped-def]
        await ack()
        await say("pong")

    app.start(port=port, path="/slack/events", host="127.0.0.1")


if __name__ == "__main__":
    main()

"""With real parts: Alertmanager delivering to forge, and Prometheus scraping forge's queue gauges
with deploy/'s rules, so jobs failed by Node BullMQ make QueueDLQJobsPresent fire into a card and
`dlq clear` resolves it."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import timedelta

import pytest
from PIL import Image

from tests.conftest import empty_redis, running_forge
from tests.fakes.bullmq_node import NodeBullMQ, node_unavailable_reason
from tests.support.alert_fixtures import TOKEN, settings_for
from tests.support.alertmanager_fixture import (
    SKIP_REASON,
    Alertmanager,
    now,
    rules_prometheus,
    unavailable,
)
from tests.support.services import redis_url
from tests.support.slack_flow import click, confirm, open_dialog, rows

URL = redis_url(9)
WARNING_AMBER, RESOLVED_GREEN = (0xE8, 0xA3, 0x17), (0x2E, 0xB6, 0x7D)
pytestmark = [pytest.mark.integration, pytest.mark.skipif(unavailable(), reason=SKIP_REASON)]


def cards(slack, channel: str = "C0ALERTS") -> list:
    """Top-level posts in the alerts channel."""
    return [
        c
        for c in slack.calls_to("chat.postMessage")
        if c.args.get("channel") == channel and not c.args.get("thread_ts")
    ]


def edits_of(slack, ts: str) -> list[str]:
    """The texts a card was edited to, in order."""
    return [c.args["text"] for c in slack.calls_to("chat.update") if c.args.get("ts") == ts]


def images_of(call) -> list[dict]:
    """The image blocks of a post or edit."""
    return [b for b in call.args["blocks"] if b["type"] == "image"]


def edits_with_a_picture(slack, ts: str) -> list:
    """The edits of a card that carry its graph, in order."""
    return [c for c in slack.calls_to("chat.update") if c.args.get("ts") == ts and images_of(c)]


def picture(slack, blocks: list) -> Image.Image:
    """The card's graph: its image block's Slack file, a PNG of at most 200 KB, 1,600 px wide,
    with the DLQ drawn in the alert's colour."""
    [block] = [b for b in blocks if b["type"] == "image"]
    [upload] = [f for f in slack.files if f.id == block["slack_file"]["id"]]
    assert len(upload.content) <= 200 * 1024 and "QueueDLQJobsPresent" in block["alt_text"]
    image = Image.open(io.BytesIO(upload.content)).convert("RGB")
    assert image.size[0] == 1600 and colour_share(image, WARNING_AMBER) > 0, "no series drawn"
    return image


def colour_share(image: Image.Image, colour: tuple[int, int, int]) -> int:
    """How many pixels have exactly this colour."""
    return sum(1 for p in image.get_flattened_data() if p == colour)


async def until(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    """Poll a synchronous predicate."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.1)


async def test_alertmanager_delivers_cards_that_repeat_and_resolve_correctly(state_dsn, slack):
    """An alert pushed to Alertmanager arrives as one card; pushed again it stays one card; resolved
    through Alertmanager the card says so."""
    async with running_forge(settings_for(state_dsn, slack.url), slack) as bot:
        manager = Alertmanager(bot.url, TOKEN)
        try:
            await asyncio.to_thread(manager.wait_ready)
            labels = {"alertname": "QueueHighLag", "queue": "email", "severity": "warning"}
            notes = {"summary": "The oldest waiting job of email is 7m old"}
            started = now() - timedelta(minutes=3)
            await asyncio.to_thread(manager.push, labels, notes, started)
            await until(lambda: len(cards(slack)) == 1, 15, "a card")
            [card] = cards(slack)
            assert "FIRING: QueueHighLag on `email`" in card.args["text"]
            await asyncio.to_thread(manager.push, labels, notes, started)
            await asyncio.sleep(2.5)
            assert len(cards(slack)) == 1
            await asyncio.to_thread(manager.push, labels, notes, started, now())
            ts = card.response["ts"]
            await until(
                lambda: any("RESOLVED" in t for t in edits_of(slack, ts)), 15, "the resolution"
            )
            assert "RESOLVED: QueueHighLag on `email` after 3 min" in edits_of(slack, ts)[-1]
            assert len(cards(slack)) == 1
        finally:
            manager.stop()


@pytest.mark.skipif(
    node_unavailable_reason() is not None, reason=f"Node BullMQ: {node_unavailable_reason()}"
)
async def test_failed_jobs_fire_through_prometheus_and_dlq_clear_resolves(state_dsn, slack):
    """Node BullMQ 5 fails 4 `email` jobs three times; Prometheus, scraping forge's
    `crm_queue_jobs_dlq_total`, fires QueueDLQJobsPresent into a card with its buttons;
    `dlq clear email` approved by a second person empties the DLQ, the gauge drops to 0, and the
    same card turns resolved. The card is posted at once and its graph of the rule's expression
    edited in after; once resolved, the graph is drawn again with the recovery marked."""
    async with empty_redis(URL):
        await NodeBullMQ(5, URL).fail("email", 4, attempts=3)
        settings = settings_for(
            state_dsn,
            slack.url,
            redis_url=URL,
            config={"queues": ["email"], "alerts": {"gauge_cache_seconds": 0.2}},
        )
        async with running_forge(settings, slack) as bot:
            manager = Alertmanager(bot.url, TOKEN)
            prometheus = rules_prometheus(bot.url.removeprefix("http://"), manager.address)
            try:
                bot.forge.settings.env.prometheus_url = prometheus.url
                await asyncio.gather(
                    asyncio.to_thread(manager.wait_ready), asyncio.to_thread(prometheus.wait_ready)
                )
                await until(
                    lambda: any("QueueDLQJobsPresent" in c.args["text"] for c in cards(slack)),
                    40,
                    "QueueDLQJobsPresent's card",
                )
                [card] = cards(slack)
                assert not images_of(card), "the new card waited for its graph"
                await until(
                    lambda: edits_with_a_picture(slack, card.response["ts"]),
                    40,
                    "the graph edited into the card",
                )
                firing_png = picture(
                    slack, edits_with_a_picture(slack, card.response["ts"])[0].args["blocks"]
                )
                buttons = [
                    e["value"]
                    for b in card.args["blocks"]
                    if b["type"] == "actions"
                    for e in b["elements"]
                ]
                assert buttons == ["queue health email", "dlq list email", "dlq clear email"]
                assert "4 jobs in the DLQ of email" in json.dumps(card.args["blocks"])

                bot.slack.views.clear()
                view = await open_dialog(bot, "dlq clear email")
                await confirm(bot, view, "email")
                [request] = await rows(bot)
                approval_card = [
                    c
                    for c in slack.calls_to("chat.postMessage")
                    if c.args.get("channel") == "C0OPS"
                ]
                await click(bot, request["id"], "U0LEAD", approval_card[0].response["ts"])
                assert (await rows(bot))[0]["status"] == "succeeded"

                ts = card.response["ts"]
                await until(
                    lambda: any("RESOLVED" in t for t in edits_of(slack, ts)), 40, "the resolution"
                )
                assert "RESOLVED: QueueDLQJobsPresent on `email`" in edits_of(slack, ts)[-1]
                assert len(cards(slack)) == 1
                [last] = [c for c in slack.calls_to("chat.update") if c.args.get("ts") == ts][-1:]
                resolved_png = picture(slack, last.args["blocks"])
                assert colour_share(firing_png, RESOLVED_GREEN) == 0
                assert colour_share(resolved_png, RESOLVED_GREEN) > 0, "no recovery mark"
            finally:
                prometheus.stop()
                manager.stop()

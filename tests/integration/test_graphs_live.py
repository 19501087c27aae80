"""`queue graph` against a real Prometheus scraping forge's /metrics while Node BullMQ fails jobs:
the PNG decoded with Pillow, the Slack upload, and the sparklines when Prometheus is gone."""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image

from bot.text.cells import plain
from tests.conftest import empty_redis, running_forge
from tests.fakes.bullmq_node import NodeBullMQ, node_unavailable_reason
from tests.support.alert_fixtures import settings_for
from tests.support.ops_support import run
from tests.support.prometheus_fixture import CONFIG, JOB, PROMETHEUS, SKIP_REASON, Prometheus
from tests.support.services import redis_url

URL = redis_url(11)
DLQ_RED = (0xE0, 0x1E, 0x5A)
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(PROMETHEUS is None, reason=SKIP_REASON),
    pytest.mark.skipif(node_unavailable_reason() is not None, reason="Node BullMQ unavailable"),
]


def reds(image: Image.Image) -> list[tuple[int, int]]:
    """The (x, y) pixels drawn in the DLQ's colour in the jobs panel, right of its legend."""
    rgb = image.convert("RGB")
    width, height = rgb.size
    pixels = rgb.load()
    return [
        (x, y)
        for x in range(width // 4, width, 2)
        for y in range(height * 45 // 100)
        if all(abs(a - b) <= 24 for a, b in zip(pixels[x, y], DLQ_RED, strict=True))
    ]


async def until_sample(prometheus: Prometheus, expr: str, timeout: float = 30) -> None:
    """Until Prometheus answers the expression with a sample."""
    await asyncio.to_thread(prometheus.wait_for, expr, timeout)


async def test_queue_graph_draws_what_prometheus_saw_and_falls_back_to_sparklines(state_dsn, slack):
    """The DLQ of `email` is 0 for a few seconds, then Node BullMQ fails 4 jobs for good: the
    graph is a ≤ 200 KB PNG at 2× (1,600 px wide) whose red DLQ line rises on the right, the trend
    says `DLQ 0 → 4`, Slack gets the PNG as a file; with Prometheus stopped the same command gives
    sparklines of forge's own readings and says plainly why there is no picture."""
    config = {
        "queues": ["email"],
        "alerts": {"gauge_cache_seconds": 0.2},
        "graphs": {"sample_seconds": 1},
    }
    async with empty_redis(URL):
        async with running_forge(
            settings_for(state_dsn, slack.url, redis_url=URL, config=config), slack
        ) as bot:
            target = bot.url.removeprefix("http://")
            prometheus = Prometheus(None, config=CONFIG + JOB.format(target=target))
            try:
                await asyncio.to_thread(prometheus.wait_ready)
                bot.forge.settings.env.prometheus_url = prometheus.url
                await until_sample(prometheus, 'crm_queue_jobs_dlq_total{queue="email"} == 0')
                await asyncio.sleep(8)
                await NodeBullMQ(5, URL).fail("email", 4, attempts=3)
                await until_sample(prometheus, 'crm_queue_jobs_dlq_total{queue="email"} == 4')
                await asyncio.sleep(3)
                outcome = await run(bot.forge, "queue graph email --window 5m")
                await bot.client.slash(
                    "queue graph email --window 5m", user="U0OPS", channel="C0OPS"
                )
                [upload] = await bot.slack.wait_for("files.completeUploadExternal", timeout=30)
            finally:
                prometheus.stop()
            fallback = await run(bot.forge, "queue graph email --window 5m")

    result = outcome.result
    assert outcome.kind == "result" and result is not None, outcome.message
    assert "DLQ 0 → 4" in plain(result.summary), plain(result.summary)
    [png] = result.attachments
    assert png.filename == "queue-email.png" and len(png.content) <= 200 * 1024
    image = Image.open(io.BytesIO(png.content))
    assert image.format == "PNG" and image.size[0] == 1600
    red = reds(image)
    assert len(red) > 100, "the DLQ line is not drawn"
    xs = sorted(x for x, _ in red)
    left = [y for x, y in red if x <= xs[len(xs) // 10]]
    right = [y for x, y in red if x >= xs[-len(xs) // 10]]
    assert min(right) < max(left) - 100, "the DLQ line does not rise on the right"
    assert result.data["points"]["dlq"] <= 11_000

    shared = [f for f in bot.slack.files if f.filename == "queue-email.png"]
    assert shared and shared[0].content.startswith(b"\x89PNG"), upload.args

    text = plain(fallback.result.text)
    assert fallback.result.attachments == []
    assert f"No picture: Prometheus at {prometheus.url} could not answer" in text
    dlq_line = next(line for line in text.splitlines() if line.startswith("DLQ"))
    assert "▁" in dlq_line and "█" in dlq_line and dlq_line.rstrip().endswith("0 → 4"), dlq_line

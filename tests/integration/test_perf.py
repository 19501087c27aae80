"""`perf` on real Prometheus scraping ClientForge-shaped metrics, with real Redis and PostgreSQL."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from PIL import Image

import commands.perf  # noqa: F401  (registers the command)
from bot.core.context import Actor
from bot.core.dispatch import Invocation
from bot.core.errors import BackendError
from bot.core.registry import Role
from bot.core.result import Status
from bot.text.cells import plain
from commands.perf import Row, prom_query, summarize
from tests.scenario.test_cli import forge as forge_cli
from tests.support.ops_support import run, started_forge
from tests.support.prometheus_fixture import PROMETHEUS, SKIP_REASON, Profile, free_port, stacks
from tests.support.services import redis_url

pytestmark = pytest.mark.integration
needs_prometheus = pytest.mark.skipif(PROMETHEUS is None, reason=SKIP_REASON)
REDIS = redis_url(10)
DEGRADED = Profile(
    cpu=0.9,
    rss=1.6 * (1 << 30),
    lag=0.2,
    rps=40,
    error_share=0.03,
    latency={0.1: 0.70, 1: 0.10, 5: 0.20},
)


@pytest.fixture(scope="module")
def prometheus_urls() -> Iterator[list[str]]:
    """Prometheus servers started together: a healthy ClientForge, a degraded one, nothing."""
    if PROMETHEUS is None:
        pytest.skip(SKIP_REASON)
    yield from stacks(Profile(), DEGRADED, None)


@pytest.fixture
def healthy_prometheus(prometheus_urls: list[str]) -> str:
    """Prometheus scraping a healthy ClientForge."""
    return prometheus_urls[0]


@pytest.fixture
def degraded_prometheus(prometheus_urls: list[str]) -> str:
    """Prometheus scraping a ClientForge that is busy, big, slow and failing 3 % of requests."""
    return prometheus_urls[1]


@pytest.fixture
def empty_prometheus(prometheus_urls: list[str]) -> str:
    """Prometheus that scrapes no ClientForge."""
    return prometheus_urls[2]


def statuses(outcome) -> dict[str, str]:
    """Each check's status word."""
    assert outcome.kind == "result", outcome.message
    return {k: v["status"] for k, v in outcome.result.data["checks"].items()}


@needs_prometheus
async def test_a_healthy_stack_passes_every_check(state_dsn, healthy_prometheus):
    """CPU ~25 %, 300 MB, 4 ms lag, p95 under 100 ms, no 5xx; Redis and PostgreSQL fine."""
    async with started_forge(
        state_dsn, prometheus_url=healthy_prometheus, redis_url=REDIS
    ) as forge:
        outcome = await run(forge, "perf")
    assert set(statuses(outcome).values()) == {"ok"}, outcome.result.tables[0].rows
    checks = outcome.result.data["checks"]
    assert 0.2 < checks["cpu"]["value"] < 0.3 and checks["memory"]["value"] == 300 * 1048576
    assert checks["http_p95"]["value"] <= 0.1 and checks["http_5xx"]["value"] == 0
    assert outcome.result.summary == "Every check is within its thresholds."


@needs_prometheus
async def test_a_degraded_stack_is_graded_against_each_threshold(state_dsn, degraded_prometheus):
    """90 % CPU warns, 1.6 GB RSS and a 2–5 s p95 are critical, 200 ms lag and 3 % 5xx warn."""
    async with started_forge(
        state_dsn, prometheus_url=degraded_prometheus, redis_url=REDIS
    ) as forge:
        outcome = await run(forge, "perf")
    assert statuses(outcome) == {
        "cpu": "warning",
        "memory": "critical",
        "event_loop": "warning",
        "http_p95": "critical",
        "http_5xx": "warning",
        "redis_memory": "ok",
        "pg_connections": "ok",
    }
    checks = outcome.result.data["checks"]
    assert 2 < checks["http_p95"]["value"] < 5 and 0.025 < checks["http_5xx"]["value"] < 0.035
    assert outcome.result.status is Status.CRITICAL
    assert (
        outcome.result.tables[0].rows[0][1] == "🔴 critical"
        and "Needs attention:" in outcome.result.summary
    )


async def test_prometheus_unreachable_is_said_plainly_and_the_rest_still_runs(state_dsn):
    """Connection refused: one summary line names it; Redis and PostgreSQL are still checked."""
    url = f"http://127.0.0.1:{free_port()}"
    async with started_forge(state_dsn, prometheus_url=url, redis_url=REDIS) as forge:
        outcome = await run(forge, "perf")
    states = statuses(outcome)
    assert outcome.result.summary.startswith(
        f"Prometheus at {url} is unreachable (connection refused)"
    )
    assert states["redis_memory"] == states["pg_connections"] == "ok"
    assert outcome.result.status is Status.WARNING
    assert all(
        outcome.result.data["checks"][k]["detail"] == "Prometheus: connection refused"
        for k in ("cpu", "memory", "event_loop", "http_p95", "http_5xx")
    )


async def test_every_backend_down_still_gives_one_result(state_dsn):
    """Prometheus, Redis and PostgreSQL all refuse: a critical result naming each, not an error."""
    closed = [free_port() for _ in range(3)]
    async with started_forge(
        state_dsn,
        prometheus_url=f"http://127.0.0.1:{closed[0]}",
        redis_url=f"redis://127.0.0.1:{closed[1]}/10",
        database_url=f"postgresql://forge:pw@127.0.0.1:{closed[2]}/clientforge",
    ) as forge:
        outcome = await run(forge, "perf")
    states = statuses(outcome)
    assert states["redis_memory"] == states["pg_connections"] == "critical"
    assert outcome.result.status is Status.CRITICAL
    assert "Redis memory unknown, PostgreSQL connections unknown" in outcome.result.summary
    assert outcome.result.data["checks"]["pg_connections"]["detail"] == "connection refused"


@needs_prometheus
async def test_no_crm_series_is_unknown_not_healthy(state_dsn, empty_prometheus):
    """A Prometheus that scrapes no ClientForge gives 'no data' rows, graded as warnings."""
    async with started_forge(state_dsn, prometheus_url=empty_prometheus, redis_url=REDIS) as forge:
        outcome = await run(forge, "perf")
    assert outcome.result.status is Status.WARNING
    assert "no data" in outcome.result.data["checks"]["http_p95"]["detail"]
    assert "CPU unknown" in outcome.result.summary


@needs_prometheus
async def test_a_query_error_from_prometheus_is_a_backend_error(state_dsn, healthy_prometheus):
    """Prometheus's own 400 error body becomes a one-line BackendError."""
    async with started_forge(state_dsn, prometheus_url=healthy_prometheus) as forge:
        ctx = forge.dispatcher.context(Actor("U0VIEW", Role.VIEWER), Invocation("perf", "U0VIEW"))
        with pytest.raises(BackendError, match=r"HTTP 400: .*parse error"):
            await prom_query(ctx, "rate(")
        assert await prom_query(ctx, "vector(3)") == 3.0


async def test_bad_window_is_a_usage_error(state_dsn):
    """Windows outside 1m–1h, or not durations, are refused."""
    async with started_forge(state_dsn) as forge:
        for text in ("perf --window 10s", "perf --window 2h", "perf --window soon", "perf now"):
            outcome = await run(forge, text)
            assert outcome.kind == "usage", text


def test_a_single_failed_query_is_named_in_the_summary():
    """One Prometheus error among good answers is listed, not hidden by 'all within thresholds'."""
    rows = [
        Row("cpu", "CPU", Status.WARNING, "—", "", "Prometheus: HTTP 422: query timed out"),
        Row("memory", "Memory (RSS)", Status.OK, "300 MB", ""),
    ]
    assert summarize(rows, "http://u:pw@prom:9090") == "Needs attention: CPU unknown."


@needs_prometheus
async def test_perf_graph_draws_a_panel_per_check(state_dsn, degraded_prometheus):
    """`perf --graph`: a ≤ 200 KB PNG at 2× with five panels, the critical lines in red; from a
    terminal also a sparkline per check."""
    async with started_forge(
        state_dsn, prometheus_url=degraded_prometheus, redis_url=REDIS
    ) as forge:
        outcome = await forge.dispatcher.run(
            Invocation("perf --graph --window 5m", "U0VIEW", "C0OPS"),
            actor=Actor("U0VIEW", Role.VIEWER),
        )
        cli = await run(forge, "perf --graph --window 5m")
    [png] = outcome.result.attachments
    assert png.filename == "perf.png" and len(png.content) <= 200 * 1024
    image = Image.open(io.BytesIO(png.content)).convert("RGB")
    assert image.size[0] == 1600 and image.size[1] > 1600, image.size
    red = sum(1 for p in image.get_flattened_data() if p == (0xE0, 0x1E, 0x5A))
    assert red > 1000, "the critical memory and p95 lines are not drawn"
    assert all(n >= 15 for n in outcome.result.data["graph"]["points"])  # 15 s steps over 5 min
    sparks = plain(cli.result.text).splitlines()
    assert len(sparks) == 5 and sparks[1].startswith("Memory (RSS)") and "1,638 MB" in sparks[1]


async def test_perf_graph_without_prometheus_says_why_there_is_no_picture(state_dsn):
    """Prometheus refusing: the checks still run and the text says plainly why no picture."""
    url = f"http://127.0.0.1:{free_port()}"
    async with started_forge(state_dsn, prometheus_url=url, redis_url=REDIS) as forge:
        outcome = await run(forge, "perf --graph")
    assert outcome.result.attachments == []
    assert plain(outcome.result.text) == (
        f"No picture: Prometheus at {url} could not answer (connection refused)."
    )


@needs_prometheus
def test_forge_run_perf_graph_writes_the_png_with_out(tmp_path, state_dsn, healthy_prometheus):
    """`forge run "perf --graph" --out DIR` from a terminal: sparklines printed, the PNG written
    (the render pool spawned from the console script)."""
    out = tmp_path / "pictures"
    out.mkdir()
    done = forge_cli(
        tmp_path,
        "run",
        "perf --graph --window 5m",
        "--out",
        str(out),
        FORGE_STATE_DATABASE_URL=state_dsn,
        PROMETHEUS_URL=healthy_prometheus,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"wrote {out / 'perf.png'}" in done.stderr
    assert "Memory (RSS)" in done.stdout and "300 MB" in done.stdout
    image = Image.open(out / "perf.png")
    assert image.format == "PNG" and image.size[0] == 1600

"""Graphs: render time per kind (cold and warm pool), slash-command ack p99 while 20 pictures
render against none, and the render pool's memory.

Run from the repository root: `.venv/bin/python bench/graphs.py` (`--docs docs` also writes the
README's pictures, drawn by forge's renderer from this scenario's data). The ack part starts a
Slack double, a fresh state-store database and `forge serve`, declares an incident, and sends
signed `/forge help` requests one after another, once alone and once while 20 `/forge incident
report` requests each draw a timeline.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import secrets
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ack_latency import PG_ADMIN, SECRET, Connection, admin, free_port, http_request, start  # noqa: E402
from bot.alerts import graph as alert_graph  # noqa: E402
from bot.backends.prometheus import Series  # noqa: E402
from bot.graphs import pool  # noqa: E402
from bot.graphs.spec import Figure  # noqa: E402
from bot.incidents import timeline  # noqa: E402
from commands import perf_panels  # noqa: E402
from commands.perf import METRICS  # noqa: E402
from commands.queues import graph as queue_graph  # noqa: E402
from tests.fakes.slack_client import sign, slash_body  # noqa: E402

WARM_RUNS, TARGET_WARM_P95_MS, TARGET_ACK_RATIO = 30, 300.0, 1.10
NOW = datetime.now(UTC).replace(microsecond=0)


def _ramp(times: list[float], start: float, minutes: float, top: float) -> list[float]:
    """0 until `start`, then a straight rise to `top` over `minutes`, then flat."""
    return [min(top, max(0.0, (t - start) / (minutes * 60) * top)) for t in times]


def queue_figure() -> Figure:
    """Six hours of `email`: the DLQ 0 → 1,520 in 40 min, the lag past 15 min and rising."""
    end = NOW.timestamp()
    times = [end - 6 * 3600 + i * 30 for i in range(721)]
    trouble = end - 45 * 60
    data = {
        "dlq": (times, _ramp(times, trouble, 40, 1520)),
        "failed": (times, [v + 40 for v in _ramp(times, trouble - 300, 40, 1700)]),
        "waiting": (
            times,
            [
                200 + 150 * math.sin(t / 1800) + r
                for t, r in zip(times, _ramp(times, trouble, 45, 900), strict=True)
            ],
        ),
        "active": (times, [20.0 if t < trouble else 4.0 for t in times]),
        "lag": (times, [5.0 + r for r in _ramp(times, trouble, 45, 960)]),
    }
    return queue_graph.figure("email", data, times[0], end)


def perf_figure() -> Figure:
    """An hour of ClientForge: CPU and p95 climbing after a deploy, a burst of 5xx."""
    end = NOW.timestamp()
    times = [end - 3600 + i * 15 for i in range(241)]
    deploy = end - 20 * 60
    shapes = {
        "cpu": [0.3 + r for r in _ramp(times, deploy, 10, 0.65)],
        "memory": [350e6 + r for r in _ramp(times, deploy, 15, 800e6)],
        "event_loop": [0.004 + r for r in _ramp(times, deploy, 5, 0.15)],
        "http_p95": [0.08 + r for r in _ramp(times, deploy, 8, 1.6)],
        "http_5xx": [0.002 + (0.03 if deploy + 300 < t < deploy + 900 else 0) for t in times],
    }
    found = [Series({}, times, shapes[m.key]) for m in METRICS]
    return perf_panels.figure(METRICS, found, times[0], end)


def alert_figure() -> Figure:
    """QueueDLQJobsPresent on `email`: firing for 25 minutes, resolved 10 minutes ago."""
    end = NOW.timestamp()
    times = [end - 3600 + i * 15 for i in range(241)]
    fired, cleared = end - 35 * 60, end - 10 * 60
    values = [
        0.0 if t < fired - 300 or t > cleared else min(40.0, (t - fired + 300) / 20) for t in times
    ]
    series = [Series({"queue": "email", "instance": "forge:3100"}, times, values)]
    alerts = [
        {
            "starts_at": datetime.fromtimestamp(fired, UTC),
            "ends_at": datetime.fromtimestamp(cleared, UTC),
            "status": "resolved",
            "severity": "warning",
        }
    ]
    title = "QueueDLQJobsPresent: crm_queue_jobs_dlq_total"
    return alert_graph.figure(title, "jobs", series, 0.0, alerts, end)


def timeline_figure() -> Figure:
    """INC-42 from declaration to resolution: its steps, a severity change, commands, an alert."""
    at = [NOW - timedelta(minutes=m) for m in (52, 49, 44, 40, 31, 27, 18, 9, 55)]
    incident = {
        "id": 42,
        "title": "Emails bounce: the email queue's DLQ grows",
        "severity": "P1",
        "declared_at": at[0],
        "resolved_at": at[7],
    }
    events = [
        {"kind": "declared", "at": at[0], "text": "", "detail": {"severity": "P2"}},
        {"kind": "item_done", "at": at[1], "text": "", "detail": {"marks": "acknowledge"}},
        {"kind": "run", "at": at[2], "text": "queue health email → warning", "detail": {}},
        {"kind": "severity", "at": at[3], "text": "Severity P2 → P1", "detail": {}},
        {
            "kind": "approval_requested",
            "at": at[4],
            "text": "Approval requested: dlq clear email",
            "detail": {},
        },
        {"kind": "item_done", "at": at[6], "text": "", "detail": {"marks": "mitigate"}},
    ]
    alerts = [
        {"alertname": "QueueDLQJobsPresent", "severity": "warning", "queue": "email", "at": at[8]}
    ]
    found = timeline.marks(incident, events, alerts)
    return timeline.figure(incident, found, NOW)


KINDS = {
    "queue": queue_figure,
    "perf": perf_figure,
    "alert": alert_figure,
    "timeline": timeline_figure,
}


async def timed(figure: Figure) -> tuple[float, int]:
    """Milliseconds to render, and the PNG's size."""
    started = time.perf_counter()
    png = await pool.render(figure)
    return (time.perf_counter() - started) * 1000, len(png)


def percentile(values: list[float], share: float) -> float:
    """The value at this share of the sorted samples."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(math.ceil(share * len(ordered))) - 1)]


async def render_times(docs: Path | None) -> dict[str, dict[str, float]]:
    """Per kind: the cold render (pool just started), then warm p50/p95 and the PNG's size."""
    figures = {kind: make() for kind, make in KINDS.items()}
    results: dict[str, dict[str, float]] = {}
    for kind, figure in figures.items():
        pool.shutdown()
        await asyncio.sleep(0.5)
        cold, _ = await timed(figure)
        warm = [await timed(figure) for _ in range(WARM_RUNS)]
        results[kind] = {
            "cold_ms": cold,
            "p50_ms": statistics.median(ms for ms, _ in warm),
            "p95_ms": percentile([ms for ms, _ in warm], 0.95),
            "kb": warm[0][1] / 1024,
        }
        if docs is not None:
            docs.mkdir(parents=True, exist_ok=True)
            (docs / f"graph-{kind}.png").write_bytes(await pool.render(figure))
    results["pool"] = {"memory_mb": pool.memory_bytes() / 1048576, "workers": pool.WORKERS}
    pool.shutdown()
    return results


def signed(text: str, user: str, double_url: str, port: int) -> bytes:
    """One signed slash command, as bytes on the wire."""
    body = slash_body(text, user=user, response_url=f"{double_url}response/bench")
    return http_request(body, sign(SECRET, body), port)


async def acks(port: int, double_url: str, count: int, renders: int) -> list[float]:
    """Ack latencies of `count` sequential `/forge help`, with `renders` reports drawing."""
    single = await Connection(port).open()
    drawing = [await Connection(port).open() for _ in range(renders)]
    requests = [signed("help", "U0BENCH", double_url, port) for _ in range(count)]
    reports = [signed("incident report INC-1", "U0BENCH", double_url, port) for _ in drawing]
    await asyncio.gather(*(c.send(r) for c, r in zip(drawing, reports, strict=True)))
    latencies = []
    for request in requests:
        ms, status = await single.send(request)
        assert status == 200, status
        latencies.append(ms)
    for connection in [single, *drawing]:
        connection.close()
    return latencies


async def ack_under_renders(count: int) -> dict[str, float]:
    """`forge serve`'s ack p99 alone and while 20 timelines render (its pool warmed first)."""
    database = f"forge_bench_{secrets.token_hex(4)}"
    await admin(f'CREATE DATABASE "{database}"')
    try:
        double_port, port = free_port(), free_port()
        double_url = f"http://127.0.0.1:{double_port}/api/"
        double = await start(
            [sys.executable, str(ROOT / "bench" / "slack_double_server.py"), str(double_port)],
            dict(os.environ),
            double_port,
        )
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": "xoxb-bench",
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": double_url,
            "FORGE_HTTP_HOST": "127.0.0.1",
            "FORGE_HTTP_PORT": str(port),
            "FORGE_STATE_DATABASE_URL": PG_ADMIN.rsplit("/", 1)[0] + "/" + database,
            "FORGE_CONFIG": str(ROOT / "forge.example.yml"),
            "PROMETHEUS_URL": "http://127.0.0.1:9",
        }
        env.pop("SLACK_APP_TOKEN", None)
        forge = await start([str(Path(sys.executable).with_name("forge")), "serve"], env, port)
        try:
            setup = await Connection(port).open()
            await setup.send(signed("incident declare P3 bench", "U0OPS", double_url, port))
            await asyncio.sleep(2)
            await setup.send(signed("incident report INC-1", "U0BENCH", double_url, port))
            await asyncio.sleep(8)  # the pool starts and draws once
            setup.close()
            alone = await acks(port, double_url, count, 0)
            busy = await acks(port, double_url, count, 20)
        finally:
            forge.terminate()
            await forge.wait()
            double.terminate()
            await double.wait()
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    return {
        "alone_p99_ms": percentile(alone, 0.99),
        "busy_p99_ms": percentile(busy, 0.99),
        "alone_p50_ms": statistics.median(alone),
        "busy_p50_ms": statistics.median(busy),
    }


def report(renders: dict[str, dict[str, float]], ack: dict[str, float] | None) -> None:
    """Print the figures and whether each target was met."""
    print(f"{'kind':<9} {'cold ms':>8} {'warm p50':>9} {'warm p95':>9} {'PNG KB':>7}")
    for kind in KINDS:
        r = renders[kind]
        print(
            f"{kind:<9} {r['cold_ms']:>8.0f} {r['p50_ms']:>9.0f} {r['p95_ms']:>9.0f} "
            f"{r['kb']:>7.0f}"
        )
    worst = max(renders[k]["p95_ms"] for k in KINDS)
    print(
        f"warm p95, worst kind: {worst:.0f} ms (target < {TARGET_WARM_P95_MS:.0f} ms) -> "
        f"{'met' if worst < TARGET_WARM_P95_MS else 'MISSED'}"
    )
    print(
        f"render pool: {renders['pool']['workers']:.0f} workers, "
        f"{renders['pool']['memory_mb']:.0f} MB resident"
    )
    if ack:
        ratio = ack["busy_p99_ms"] / ack["alone_p99_ms"]
        print(
            f"ack p99 alone {ack['alone_p99_ms']:.1f} ms (p50 {ack['alone_p50_ms']:.1f}), "
            f"with 20 renders {ack['busy_p99_ms']:.1f} ms (p50 {ack['busy_p50_ms']:.1f}): "
            f"x{ratio:.2f} (target within 10 %) -> "
            f"{'met' if ratio <= TARGET_ACK_RATIO else 'MISSED'}"
        )


async def main(docs: Path | None, count: int, skip_ack: bool) -> None:
    """Render times first, then the ack comparison."""
    renders = await render_times(docs)
    ack = None if skip_ack else await ack_under_renders(count)
    report(renders, ack)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, help="also write graph-<kind>.png into this folder")
    parser.add_argument("--acks", type=int, default=300, help="sequential acks per phase")
    parser.add_argument("--no-ack", action="store_true", help="render times and memory only")
    options = parser.parse_args()
    asyncio.run(main(options.docs, options.acks, options.no_ack))

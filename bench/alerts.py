"""An alert storm against `forge serve`: 1,000 alerts in 100 Alertmanager webhooks, sent flat out.

Run from the repository root: `.venv/bin/python bench/alerts.py`. It starts a Slack double (on a
thread of this process, so every Web API call is timed without slowing the storm's clock), a fresh
state-store database and `forge serve`, then sends 100 webhooks of 10 new alerts each to 10
Alertmanager groups, 10 at a time. It prints the webhooks' response times (target: p99 under 50 ms),
the Slack calls made, the smallest gap between two calls to the channel (forge paces itself at one a
second), and how long until every card shows all of its alerts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ack_latency import PG_ADMIN, admin, free_port, start  # noqa: E402
from tests.fakes.slack_double import SlackDouble  # noqa: E402
from tests.support.alert_fixtures import alert, notification  # noqa: E402

TOKEN = "bench-alertmanager-token"
CONFIG = (
    "channels: {alerts: C0ALERTS}\nqueues: [email]\n"
    "alerts: {routes: [{match: {queue: warmup}, channel: C0WARMUP}]}\n"
)
TARGET_P99_MS = 50.0


@contextlib.asynccontextmanager
async def double_in_thread() -> AsyncIterator[SlackDouble]:
    """The Slack double on a loop of its own, so its work never delays the storm's timing here."""
    ready, stop = threading.Event(), threading.Event()
    holder: list[SlackDouble] = []

    async def serve() -> None:
        async with SlackDouble() as double:
            holder.append(double)
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    await asyncio.to_thread(ready.wait, 10)
    try:
        yield holder[0]
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 10)


def payloads(groups: int, per_group: int, per_webhook: int) -> list[bytes]:
    """Webhooks round-robin over the groups, each with the next batch of new alerts of its group."""
    bodies = []
    for batch in range(per_group // per_webhook):
        for g in range(groups):
            alerts = [
                alert("QueueHighLag", queue=f"g{g}-q{batch * per_webhook + i}")
                for i in range(per_webhook)
            ]
            bodies.append(json.dumps(notification(alerts, group=f"bench-group-{g}")).encode())
    return bodies


async def storm(url: str, bodies: list[bytes], concurrency: int) -> list[tuple[float, int]]:
    """Send every body, `concurrency` at a time; (ms, status) each."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    samples: list[tuple[float, int]] = []
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
            samples.append(((time.perf_counter() - started) * 1000, response.status))

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return samples


def all_shown(double: SlackDouble, groups: int, per_group: int) -> bool:
    """True when the latest version of every card lists all of its group's alerts as firing."""
    latest: dict[str, str] = {}
    for call in double.calls:
        if (
            call.method in ("chat.postMessage", "chat.update")
            and call.args.get("channel") == "C0ALERTS"
        ):
            ts = call.args.get("ts") or (call.response or {}).get("ts")
            latest[str(ts)] = call.args.get("text", "")
    return len(latest) == groups and all(
        f"({per_group} firing)" in text for text in latest.values()
    )


async def main(groups: int, per_group: int, per_webhook: int, concurrency: int) -> None:
    """Start everything, send the storm, wait until Slack shows it all, print the figures."""
    database = f"forge_bench_{secrets.token_hex(4)}"
    await admin(f'CREATE DATABASE "{database}"')
    config = Path(tempfile.mkdtemp()) / "forge.yml"
    config.write_text(CONFIG)
    try:
        async with double_in_thread() as double:
            port = free_port()
            env = {
                **os.environ,
                "SLACK_BOT_TOKEN": "xoxb-bench",
                "SLACK_SIGNING_SECRET": "bench-secret",
                "SLACK_API_URL": double.url,
                "FORGE_HTTP_HOST": "127.0.0.1",
                "FORGE_HTTP_PORT": str(port),
                "FORGE_STATE_DATABASE_URL": PG_ADMIN.rsplit("/", 1)[0] + "/" + database,
                "FORGE_CONFIG": str(config),
                "FORGE_ALERTMANAGER_TOKEN": TOKEN,
            }
            env.pop("SLACK_APP_TOKEN", None)
            process = await start(
                [str(Path(sys.executable).with_name("forge")), "serve"], env, port
            )
            try:
                await report(double, port, groups, per_group, per_webhook, concurrency)
            finally:
                process.terminate()
                await process.wait()
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


async def report(
    double: SlackDouble, port: int, groups: int, per_group: int, per_webhook: int, concurrency: int
) -> None:
    """The storm and its figures."""
    bodies = payloads(groups, per_group, per_webhook)
    url = f"http://127.0.0.1:{port}/alerts/alertmanager"
    warmup = [
        json.dumps(
            notification([alert("QueueHighLag", queue="warmup")], group=f"warmup-{n}")
        ).encode()
        for n in range(3 * concurrency)
    ]
    await storm(
        url, warmup, concurrency
    )  # every pooled connection used once, to another channel; not counted
    started = time.monotonic()
    samples = await storm(url, bodies, concurrency)
    sent = time.monotonic() - started
    while not all_shown(double, groups, per_group) and time.monotonic() - started < 600:
        await asyncio.sleep(0.05)
    visible = time.monotonic() - started
    latencies = sorted(ms for ms, _ in samples)
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
    to_channel = [c for c in double.calls if c.args.get("channel") == "C0ALERTS"]
    methods = Counter(c.method for c in to_channel)
    gaps = [b.at - a.at for a, b in zip(to_channel, to_channel[1:], strict=False)]
    print(
        f"{len(bodies)} webhooks, {groups * per_group:,} alerts, {concurrency} at a time, "
        f"sent in {sent:.2f} s; "
        f"answers: {dict(Counter(status for _, status in samples))}"
    )
    print(
        f"webhook response: p50 {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms, "
        f"max {latencies[-1]:.1f} ms"
        f" (target p99 < {TARGET_P99_MS:.0f} ms) -> {'met' if p99 < TARGET_P99_MS else 'MISSED'}"
    )
    print(
        f"Slack calls to the channel: {dict(methods)}; "
        f"cards posted: {methods['chat.postMessage']} for {groups} groups"
    )
    print(f"smallest gap between two calls to the channel: {min(gaps):.2f} s (pacing: 1 a second)")
    print(
        f"every alert visible in Slack after {visible:.1f} s"
        f"{'' if all_shown(double, groups, per_group) else ' (NOT all shown after 600 s)'}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--per-group", type=int, default=100)
    parser.add_argument("--per-webhook", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=10)
    options = parser.parse_args()
    asyncio.run(main(options.groups, options.per_group, options.per_webhook, options.concurrency))

"""Replicas behind HAProxy: throughput and ack latency with 1, 2 and 3 replicas, the failover time
of background work after kill -9, and what a rolling restart under 1,000 requests loses.

Run from the repository root: `.venv/bin/python bench/replicas.py` (needs haproxy, PostgreSQL on
127.0.0.1:5432 and Redis; FORGE_TEST_REDIS_SERVER picks the Redis). Each run gets a fresh state
store and a Slack double; requests are `/forge whoami` slash commands and Run-button clicks, each
in a channel of its own, 50 at a time. RSS and CPU of every replica are read from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import sys
import time
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import PG_ADMIN, SECRET, dsn_for  # noqa: E402
from tests.fakes.slack_delivery import SlackDelivery  # noqa: E402
from tests.fakes.slack_double import SlackDouble  # noqa: E402
from tests.support import burst  # noqa: E402
from tests.support.replicas import Cluster, Replica  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
# below what one replica serves on this machine: during a restart one replica takes it all
ROLLING_RATE = 20.0
DEFAULT_LEASE = {"replicas": {"lease_seconds": 15, "deregister_seconds": 2, "drain_seconds": 20}}


async def database() -> str:
    """A fresh, empty database; forge serve migrates it."""
    name = f"forge_bench_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(PG_ADMIN)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return name


async def drop(name: str) -> None:
    """Drop a bench database."""
    conn = await asyncpg.connect(PG_ADMIN)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


def usage(replica: Replica) -> tuple[float, int]:
    """CPU seconds so far and RSS in bytes of a replica's process."""
    pid = replica.process.pid  # type: ignore[union-attr]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK
    rss = next(
        int(line.split()[1]) * 1024
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmRSS:")
    )
    return cpu, rss


async def sample(replicas: list[Replica], peaks: dict[str, int], stop: asyncio.Event) -> None:
    """Keep each replica's peak RSS until stopped."""
    while not stop.is_set():
        for replica in replicas:
            peaks[replica.name] = max(peaks.get(replica.name, 0), usage(replica)[1])
        await asyncio.sleep(0.2)


async def throughput(count: int, requests: int) -> dict[str, float]:
    """A burst of `requests` through HAProxy to `count` replicas: rate, ack p50/p99, resources."""
    name = await database()
    try:
        async with SlackDouble() as slack, Cluster(count, dsn_for(name), slack.url) as cluster:
            idle = {r.name: usage(r) for r in cluster.replicas}
            peaks: dict[str, int] = {}
            stop = asyncio.Event()
            sampler = asyncio.create_task(sample(cluster.replicas, peaks, stop))
            async with SlackDelivery(cluster.url, SECRET, slack) as client:
                sent = await burst.send(
                    client, "CBENCH", count=requests, rate=10_000, concurrency=50
                )
            assert await burst.settled(slack, sent.channels, timeout=300)
            done = time.monotonic()
            stop.set()
            await sampler
            cpu = {r.name: usage(r)[0] - idle[r.name][0] for r in cluster.replicas}
            ran = await burst.executions(dsn_for(name), "CBENCH")
        return {
            "commands_per_s": requests / (done - sent.started),
            "ack_p50_ms": sent.ack_p(0.50),
            "ack_p99_ms": sent.ack_p(0.99),
            "non_2xx": sum(1 for s in sent.statuses.values() if s != 200),
            "duplicates": sum(1 for c in sent.channels if ran[c] > 1),
            "cpu_s_per_replica": max(cpu.values()),
            "cpu_cores_per_replica": max(cpu.values()) / (done - sent.started),
            "peak_rss_mb": max(peaks.values()) / 2**20,
            "idle_rss_mb": max(rss for _, rss in idle.values()) / 2**20,
        }
    finally:
        await drop(name)


async def rolling(requests: int) -> dict[str, float]:
    """`requests` commands and clicks while each of 2 replicas is restarted in turn."""
    name = await database()
    try:
        async with SlackDouble() as slack:
            async with Cluster(2, dsn_for(name), slack.url, config=DEFAULT_LEASE) as cluster:
                async with SlackDelivery(cluster.url, SECRET, slack) as client:
                    sending = asyncio.create_task(
                        burst.send(client, "CROLL", count=requests, rate=ROLLING_RATE)
                    )
                    await asyncio.sleep(3.0)
                    started = time.monotonic()
                    codes = await cluster.rolling_restart()
                    restart_s = time.monotonic() - started
                    sent = await sending
                settled = await burst.settled(slack, sent.channels, timeout=120)
            ran = await burst.executions(dsn_for(name), "CROLL")
            answered = burst.answers(slack, sent.channels)
        return {
            "sent": len(sent.channels),
            "restart_s": restart_s,
            "exit_codes_ok": int(codes == [0, 0]),
            "non_2xx": sum(1 for s in sent.statuses.values() if s != 200),
            "lost": sum(1 for c in sent.channels if not ran[c] or not answered[c]),
            "duplicated": sum(1 for c in sent.channels if ran[c] > 1 or answered[c] > 1),
            "settled": int(settled),
        }
    finally:
        await drop(name)


async def failover() -> dict[str, float]:
    """kill -9 of the background lease's holder (default 15 s lease): until another holds it."""
    name = await database()
    try:
        async with SlackDouble() as slack:
            config = DEFAULT_LEASE
            async with Cluster(2, dsn_for(name), slack.url, balanced=False, config=config) as c:
                conn = await asyncpg.connect(dsn_for(name))
                query = "SELECT holder FROM forge.leases WHERE expires_at > now()"
                while not (holder := await conn.fetchval(query)):
                    await asyncio.sleep(0.1)
                [victim] = [r for r in c.replicas if r.replica_id == holder]
                killed = time.monotonic()
                await victim.stop(signal.SIGKILL)
                while (heir := await conn.fetchval(query)) in (None, holder):
                    await asyncio.sleep(0.05)
                took = time.monotonic() - killed
                await conn.close()
        return {"failover_s": took, "heir_is_other": int(heir != holder)}
    finally:
        await drop(name)


async def main(requests: int) -> None:
    """Run every measurement and print the figures."""
    for count in (1, 2, 3):
        figures = await throughput(count, requests)
        print(f"{count} replica(s), {requests} requests: " + fmt(figures), flush=True)
    print("failover after kill -9: " + fmt(await failover()), flush=True)
    print(f"rolling restart, {requests} requests: " + fmt(await rolling(requests)), flush=True)


def fmt(figures: dict[str, float]) -> str:
    """One line of figures."""
    return ", ".join(
        f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items()
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    asyncio.run(main(parser.parse_args().requests))

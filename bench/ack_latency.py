"""Acknowledgement latency of `forge serve` beside a bare Bolt app, under the same signed load.

Run from the repository root: `.venv/bin/python bench/ack_latency.py`. It starts a Slack double,
a fresh state-store database, `forge serve` and bench/bare_bolt.py, then sends 200 concurrent and
1,000 sequential signed `/forge help` requests to each and prints the figures side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import statistics
import sys
import time
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.slack_client import sign, slash_body  # noqa: E402

SECRET = "bench-signing-secret"
PG_ADMIN = os.environ.get("FORGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
TARGETS = {"concurrent_p99_ms": 100.0, "sequential_p50_ms": 5.0}


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def admin(sql: str) -> None:
    """Run one statement as the PostgreSQL admin."""
    conn = await asyncpg.connect(PG_ADMIN)
    await conn.execute(sql)
    await conn.close()


async def start(argv: list[str], env: dict[str, str], port: int) -> asyncio.subprocess.Process:
    """Start a server process and wait until its port accepts connections."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return process
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{argv[0]} did not start on port {port}")


def signed_requests(count: int, double_url: str) -> list[tuple[str, dict[str, str]]]:
    """Signed `/forge help` bodies, made before the clock starts."""
    bodies = [
        slash_body("help", user="U0BENCH", response_url=f"{double_url}response/bench")
        for _ in range(count)
    ]
    return [(body, sign(SECRET, body)) for body in bodies]


class Connection:
    """One keep-alive HTTP/1.1 connection speaking raw bytes, so the client adds almost nothing."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> Connection:
        """Connect before the clock starts."""
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def send(self, request: bytes) -> tuple[float, int]:
        """Write one request and read its whole response; latency in ms and the status code."""
        assert self.reader and self.writer
        started = time.perf_counter()
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        if length:
            await self.reader.readexactly(length)
        return (time.perf_counter() - started) * 1000, int(head.split(b" ", 2)[1])

    def close(self) -> None:
        """Close the socket."""
        if self.writer:
            self.writer.close()


def http_request(body: str, headers: dict[str, str], port: int) -> bytes:
    """The exact bytes of a POST /slack/events."""
    data = body.encode()
    lines = [
        "POST /slack/events HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        f"Content-Length: {len(data)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


async def measure(
    port: int, double_url: str, concurrent: int, sequential: int
) -> dict[str, dict[str, float]]:
    """The concurrent burst (on pre-opened connections), then the sequential run, on one server."""

    def requests(n: int) -> list[bytes]:
        return [
            http_request(body, headers, port) for body, headers in signed_requests(n, double_url)
        ]

    warmup, burst_requests, series_requests = (
        requests(20),
        requests(concurrent),
        requests(sequential),
    )
    single = await Connection(port).open()
    for request in warmup:
        await single.send(request)
    pool = [await Connection(port).open() for _ in range(concurrent)]
    await asyncio.sleep(0.5)
    started = time.perf_counter()
    burst = await asyncio.gather(*(c.send(r) for c, r in zip(pool, burst_requests, strict=True)))
    burst_seconds = time.perf_counter() - started
    await asyncio.sleep(2.0)
    started = time.perf_counter()
    series = [await single.send(r) for r in series_requests]
    series_seconds = time.perf_counter() - started
    for connection in [single, *pool]:
        connection.close()
    return {
        "concurrent": summarize(burst, burst_seconds),
        "sequential": summarize(series, series_seconds),
    }


def summarize(samples: list[tuple[float, int]], seconds: float) -> dict[str, float]:
    """p50, p99, max, requests per second and how many answered 200."""
    latencies = sorted(ms for ms, _ in samples)
    return {
        "p50": statistics.median(latencies),
        "p99": latencies[max(0, int(len(latencies) * 0.99) - 1)],
        "max": latencies[-1],
        "rps": len(samples) / seconds,
        "ok": sum(1 for _, status in samples if status == 200),
        "n": len(samples),
    }


def report(results: dict[str, dict[str, dict[str, float]]]) -> None:
    """Print both servers side by side, and the targets."""
    print(
        f"{'server':<10} {'phase':<11} {'n':>5} {'200s':>5} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'req/s':>8}"
    )
    for server, phases in results.items():
        for phase, s in phases.items():
            print(
                f"{server:<10} {phase:<11} {s['n']:>5.0f} {s['ok']:>5.0f} "
                f"{s['p50']:>8.2f} {s['p99']:>8.2f} "
                f"{s['max']:>8.2f} {s['rps']:>8.0f}"
            )
    forge, bolt = results["forge"], results["bare-bolt"]
    p99, p50 = forge["concurrent"]["p99"], forge["sequential"]["p50"]
    all_ok = forge["concurrent"]["ok"] == forge["concurrent"]["n"]
    print(
        f"\nconcurrent p99: forge {p99:.1f} ms vs bare Bolt {bolt['concurrent']['p99']:.1f} ms "
        f"(target < {TARGETS['concurrent_p99_ms']:.0f} ms, "
        f"every request 200: {'yes' if all_ok else 'NO'}) "
        f"-> {'met' if p99 < TARGETS['concurrent_p99_ms'] and all_ok else 'MISSED'}"
    )
    print(
        f"sequential p50: forge {p50:.2f} ms vs bare Bolt {bolt['sequential']['p50']:.2f} ms "
        f"(target < {TARGETS['sequential_p50_ms']:.0f} ms) "
        f"-> {'met' if p50 < TARGETS['sequential_p50_ms'] else 'MISSED'}"
    )


async def main(concurrent: int, sequential: int) -> None:
    """Run both servers under the same load, one after the other."""
    database = f"forge_bench_{secrets.token_hex(4)}"
    await admin(f'CREATE DATABASE "{database}"')
    results: dict[str, dict[str, dict[str, float]]] = {}
    try:
        double_port = free_port()
        double_url = f"http://127.0.0.1:{double_port}/api/"
        double = await start(
            [sys.executable, str(ROOT / "bench" / "slack_double_server.py"), str(double_port)],
            dict(os.environ),
            double_port,
        )
        try:
            env = {
                **os.environ,
                "SLACK_BOT_TOKEN": "xoxb-bench",
                "SLACK_SIGNING_SECRET": SECRET,
                "SLACK_API_URL": double_url,
                "FORGE_HTTP_HOST": "127.0.0.1",
                "FORGE_STATE_DATABASE_URL": PG_ADMIN.rsplit("/", 1)[0] + "/" + database,
                "FORGE_CONFIG": str(ROOT / "forge.example.yml"),
            }
            env.pop("SLACK_APP_TOKEN", None)
            servers = {
                "forge": [str(Path(sys.executable).with_name("forge")), "serve"],
                "bare-bolt": [sys.executable, str(ROOT / "bench" / "bare_bolt.py")],
            }
            for name, argv in servers.items():
                port = free_port()
                argv = [*argv, str(port)] if name == "bare-bolt" else argv
                process = await start(argv, {**env, "FORGE_HTTP_PORT": str(port)}, port)
                try:
                    results[name] = await measure(port, double_url, concurrent, sequential)
                finally:
                    process.terminate()
                    await process.wait()
        finally:
            double.terminate()
            await double.wait()
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    report(results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrent", type=int, default=200)
    parser.add_argument("--sequential", type=int, default=1000)
    options = parser.parse_args()
    asyncio.run(main(options.concurrent, options.sequential))

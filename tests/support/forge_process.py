"""The real `forge serve` as a subprocess: started, timed until /healthz answers, stopped."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.conftest import PG_ADMIN, REDIS_URL, SECRET

ROOT = Path(__file__).resolve().parents[2]
FORGE = str(Path(sys.executable).with_name("forge"))


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_env(slack_url: str, port: int, **extra: str) -> dict[str, str]:
    """A clean environment for `forge serve`: local services, Slack at the double, closed ports."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "FORGE_", "DATABASE_", "REDIS_"))
    }
    env.update(
        {
            "DATABASE_URL": PG_ADMIN,
            "REDIS_URL": REDIS_URL,
            "ELASTICSEARCH_URL": "http://127.0.0.1:9",
            "CLIENTFORGE_API_URL": "http://127.0.0.1:9",
            "PROMETHEUS_URL": "http://127.0.0.1:9",
            "GRAFANA_URL": "http://127.0.0.1:9",
            "FORGE_CONFIG": str(ROOT / "forge.example.yml"),
            "PYTHONPATH": str(ROOT),
            "SLACK_BOT_TOKEN": "xoxb-degraded",
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack_url,
            "FORGE_HTTP_HOST": "127.0.0.1",
            "FORGE_HTTP_PORT": str(port),
        }
    )
    env.update(extra)
    return env


@dataclass
class ServedForge:
    """A running `forge serve`: its base URL and how long it took to answer /healthz."""

    url: str
    process: asyncio.subprocess.Process
    start_s: float

    async def get(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        """GET one of forge's routes."""
        limit = aiohttp.ClientTimeout(total=timeout)
        async with aiohttp.ClientSession(timeout=limit) as session:
            async with session.get(self.url + path) as response:
                return response.status, await response.text()

    async def ready_within(self, seconds: float) -> float:
        """Seconds until /readyz says 200; fails the test after `seconds`."""
        started = time.monotonic()
        while (await self.get("/readyz"))[0] != 200:
            assert self.process.returncode is None, "forge serve exited"
            assert time.monotonic() - started < seconds, f"not ready within {seconds} s"
            await asyncio.sleep(0.2)
        return time.monotonic() - started


async def _healthy(url: str, process: asyncio.subprocess.Process, limit: float) -> float:
    started = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() - started < limit:
            assert process.returncode is None, f"forge serve exited with {process.returncode}"
            try:
                async with session.get(url + "/healthz") as response:
                    if response.status == 200:
                        return time.monotonic() - started
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.05)
    raise AssertionError(f"forge serve did not answer /healthz within {limit} s")


@asynccontextmanager
async def forge_serve(
    cwd: Path, slack_url: str, limit: float = 60.0, **env: str
) -> AsyncIterator[ServedForge]:
    """Start `forge serve` with these variables; yield once /healthz answers; SIGTERM it after."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        FORGE,
        "serve",
        cwd=cwd,
        env=serve_env(slack_url, port, **env),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=(cwd / "forge.log").open("wb"),
    )
    try:
        url = f"http://127.0.0.1:{port}"
        yield ServedForge(url, process, await _healthy(url, process, limit))
    finally:
        if process.returncode is None:
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()

"""`forge playground --demo` as a real process tree, at a test's pace, and what it leaves behind."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import aiohttp
import asyncpg

from tests.conftest import PG_ADMIN
from tests.support.services import redis_url

ROOT = Path(__file__).resolve().parents[2]
FORGE = str(Path(sys.executable).with_name("forge"))
DEMO_REDIS = redis_url(15)
THRESHOLD = 4
OUTPUT = "playground.out"


def demo_env(state_dsn: str | None, port: int, **extra: str) -> dict[str, str]:
    """The environment `make playground` would see, with the demo's rates made test-fast;
    without `state_dsn`, forge keeps its state where the demo puts it (forge_demo_state)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "FORGE_", "DATABASE_", "REDIS_"))
    }
    closed = "http://127.0.0.1:9"
    env.update(
        {
            "DATABASE_URL": PG_ADMIN,
            "REDIS_URL": redis_url(0),
            "FORGE_DEMO_REDIS_URL": DEMO_REDIS,
            "FORGE_DEMO_JOBS_PER_SECOND": "8",
            "FORGE_DEMO_BACKOFF_SCALE": "0.05",
            "FORGE_DEMO_DLQ_THRESHOLD": str(THRESHOLD),
            "ELASTICSEARCH_URL": closed,
            "CLIENTFORGE_API_URL": closed,
            "PROMETHEUS_URL": closed,
            "GRAFANA_URL": closed,
            "FORGE_HTTP_PORT": str(port),
            "PYTHONPATH": str(ROOT),
            **extra,
        }
    )
    if state_dsn is not None:
        env["FORGE_STATE_DATABASE_URL"] = state_dsn
    return env


async def start_demo(cwd: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    """`forge playground --demo`, as the Makefile's playground target runs it; output to a file
    (a pipe nobody reads would stall it)."""
    with (cwd / OUTPUT).open("ab") as out:
        return await asyncio.create_subprocess_exec(
            FORGE, "playground", "--demo", cwd=cwd, env=env, stdout=out, stderr=out
        )


def output(cwd: Path) -> str:
    """What the playground and its child printed."""
    path = cwd / OUTPUT
    return path.read_text(errors="replace") if path.exists() else ""


async def run_forge(cwd: Path, env: dict[str, str], *args: str) -> tuple[int, str]:
    """A forge command to its end: exit code and what it printed (stdout and stderr)."""
    process = await asyncio.create_subprocess_exec(
        FORGE,
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(errors="replace")


async def wait_up(
    base: str, process: asyncio.subprocess.Process, cwd: Path, seconds: float = 60
) -> None:
    """Wait for /healthz, or fail with what the process said."""
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline and process.returncode is None:
            try:
                async with session.get(base + "/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"the demo did not come up: {output(cwd)[-2000:]}")


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def wait_gone(pid: int, seconds: float = 15) -> bool:
    """Whether the process is gone within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        await asyncio.sleep(0.1)
    return False


async def demo_database_exists(name: str = "forge_demo_crm") -> bool:
    """Whether the demo's database (the CRM, or `forge_demo_state`) is on the server."""
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        return bool(await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await admin.close()


async def stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM the playground and wait for it."""
    if process.returncode is None:
        process.terminate()
    await asyncio.wait_for(process.wait(), 30)

"""The playground in a real browser: Debian's Chromium, headless, driven by Node's playwright-core.

`forge serve` with no Slack credentials starts the playground; the page runs `/forge help`,
`/forge health`, `/forge dlq list email --limit 2` (drawn from its table block; Next shows page 2
in place) and `/forge dlq clear email` as the operator, confirms in the modal, switches to the
approver and approves, and the card turns to done; an incident report's timeline PNG, uploaded
by forge, shows as a picture; then it declares an incident from the shortcuts menu (its component
picked from forge's options), opens the Home tab and runs `queue health email` from its "Run a
command" modal. Screenshots land in test-artifacts/playground/.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis
from bullmq import Queue, Worker

from tests.conftest import PG_ADMIN, empty_redis
from tests.scenario.test_playground import free_port
from tests.support.services import redis_url

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "tests" / "node"
SCRIPT = NODE_DIR / "playground_browser.js"
ARTIFACTS = ROOT / "test-artifacts" / "playground"
CHROMIUM = os.environ.get("FORGE_CHROMIUM", "/usr/bin/chromium")
REDIS_URL = redis_url(6)
FORGE = str(Path(sys.executable).with_name("forge"))
DLQ_JOBS = 4


def unavailable() -> str | None:
    """Why the browser test cannot run here, or None."""
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if shutil.which("node") is None:
        return "node is not installed"
    if not (NODE_DIR / "node_modules" / "playwright-core").is_dir():
        return "playwright-core is not installed (cd tests/node && npm ci)"
    return None


_why = unavailable()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(_why is not None, reason=f"playground browser test: {_why}"),
]


@pytest.fixture
async def rdb() -> AsyncIterator[aioredis.Redis]:
    """Redis db 6, empty before and after the test."""
    async with empty_redis(REDIS_URL) as client:
        yield client


async def fail_jobs(queue: str, count: int) -> None:
    """Dead letters: jobs with three attempts that a Python bullmq worker fails every time."""
    q = Queue(queue, {"connection": REDIS_URL})
    await q.addBulk(
        [
            {
                "name": "sync-account",
                "data": {"n": i},
                "opts": {"attempts": 3, "backoff": 0, "removeOnFail": False},
            }
            for i in range(count)
        ]
    )

    async def process(job, token):
        raise RuntimeError(f"Email account not found for {job.id}")

    worker = Worker(queue, process, {"connection": REDIS_URL, "concurrency": 10})
    try:
        async with asyncio.timeout(60):
            while (await q.getJobCounts("failed"))["failed"] < count:
                await asyncio.sleep(0.05)
    finally:
        await worker.close(force=True)
        await q.close()


def serve_env(tmp_path: Path, state_dsn: str, port: int) -> dict[str, str]:
    """`forge serve` with no Slack credentials or config file: the playground, demo config."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "FORGE_", "DATABASE_", "REDIS_"))
    }
    closed = "http://127.0.0.1:9"
    env.update(
        {
            "FORGE_STATE_DATABASE_URL": state_dsn,
            "DATABASE_URL": PG_ADMIN,
            "REDIS_URL": REDIS_URL,
            "ELASTICSEARCH_URL": closed,
            "CLIENTFORGE_API_URL": closed,
            "PROMETHEUS_URL": closed,
            "GRAFANA_URL": closed,
            "FORGE_HTTP_HOST": "127.0.0.1",
            "FORGE_HTTP_PORT": str(port),
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


async def wait_healthy(url: str, process: asyncio.subprocess.Process) -> None:
    """Wait for /healthz, or fail with what the process said."""
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline and process.returncode is None:
            try:
                async with session.get(url + "/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    stderr = await process.stderr.read() if process.returncode is not None else b""  # type: ignore[union-attr]
    raise AssertionError(f"forge did not come up: {stderr.decode(errors='replace')[-2000:]}")


async def drive_browser(url: str) -> dict:
    """Run the Node scenario against the page; its JSON report."""
    node = await asyncio.create_subprocess_exec(
        "node",
        str(SCRIPT),
        url,
        str(ARTIFACTS),
        cwd=NODE_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(node.communicate(), 150)
    lines = out.decode().strip().splitlines()
    assert lines, f"the browser script printed nothing: {err.decode()[-2000:]}"
    return json.loads(lines[-1])


@pytest.mark.timeout(240)
async def test_dlq_clear_is_confirmed_and_approved_in_the_browser(tmp_path, state_dsn, rdb):
    """help, health, `dlq list email` as a table block, `dlq clear email`: typed confirmation,
    another's approval, card says done; the timeline picture of `incident report` shows."""
    await fail_jobs("email", DLQ_JOBS)
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = await asyncio.create_subprocess_exec(
        FORGE,
        "serve",
        cwd=tmp_path,
        env=serve_env(tmp_path, state_dsn, port),
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_healthy(base, process)
        report = await drive_browser(base + "/playground")
        print("browser timings (ms):", report.get("timings"))
    finally:
        process.terminate()
        _, stderr = await asyncio.wait_for(process.communicate(), 20)

    assert report["ok"], f"{report.get('error')}\nscreenshots: {report.get('shots')}"
    assert "Approved by @lead · done" in report["card"] and report["consoleErrors"] == []
    header, *rows = report["tableRows"]
    assert header == ["TH:id", "TH:name", "TH:attempts", "TH:failed at", "TH:reason"]
    assert len(rows) == 2 and all(r[1] == "TD:sync-account" for r in rows)
    _, *more = report["nextRows"]
    assert len(more) == 2 and {r[0] for r in rows}.isdisjoint(r[0] for r in more)
    assert report["listings"] == 1, "Next edits the listing, it posts no other"
    assert sorted(Path(s).name for s in report["shots"]) == [
        "01-help.png",
        "02-health.png",
        "02-table.png",
        "03-confirm.png",
        "04-requested.png",
        "05-approved.png",
        "06-declare-shortcut.png",
        "06-picture.png",
        "07-home.png",
        "08-run-arguments.png",
    ]
    assert report["pictureWidth"] == 1600, "the uploaded timeline PNG did not show"
    assert "queue health" in report["ran"] and "email" in report["ran"]
    assert "Open incidents" in report["home"] and "Search results are stale" in report["home"]
    assert "operator; you may not approve" in report["home"]
    assert "Add to incident" in report["onMessage"]
    logged = stderr.decode()
    assert (
        "serving_playground" in logged
        and "no Slack credentials" in logged
        and "playground_ready" in logged
    )
    assert await rdb.zcard("bull:email:failed") == 0
    db = await asyncpg.connect(state_dsn)
    try:
        row = await db.fetchrow("SELECT requester_id, decided_by, status FROM forge.approvals")
    finally:
        await db.close()
    assert (row["requester_id"], row["decided_by"], row["status"]) == (
        "U0OPS",
        "U0LEAD",
        "succeeded",
    )

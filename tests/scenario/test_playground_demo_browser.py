"""The demo in a real browser, started as `make playground` starts it: `forge playground --demo`.

The email DLQ passes the threshold, the alert card arrives in #alerts, @ops requests
`dlq clear email`, @lead approves, and the card resolves. Screenshots land in
test-artifacts/demo/ (the README's docs/demo-*.png are copies of them).
"""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest

from tests.scenario.test_playground import free_port
from tests.scenario.test_playground_browser import NODE_DIR, ROOT, unavailable
from tests.scenario.test_playground_demo import demo_redis  # noqa: F401 (a fixture)
from tests.support.demo_process import demo_env, output, start_demo, stop, wait_up

SCRIPT = NODE_DIR / "demo_browser.js"
ARTIFACTS = ROOT / "test-artifacts" / "demo"

_why = unavailable()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(_why is not None, reason=f"demo browser test: {_why}"),
]


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
    out, err = await asyncio.wait_for(node.communicate(), 240)
    lines = out.decode().strip().splitlines()
    assert lines, f"the browser script printed nothing: {err.decode()[-2000:]}"
    return json.loads(lines[-1])


@pytest.mark.timeout(300)
async def test_the_demo_alerts_and_a_two_person_clear_resolves_it(tmp_path, state_dsn, demo_redis):
    """Alert in #alerts, two-person `dlq clear email`, the card resolved: all from the demo."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = await start_demo(tmp_path, demo_env(state_dsn, port))
    try:
        await wait_up(base, process, tmp_path)
        report = await drive_browser(base + "/playground")
        print("browser timings (ms):", report.get("timings"))
    finally:
        await stop(process)
    logged = output(tmp_path)
    assert report["ok"], (
        f"{report.get('error')}\nscreenshots: {report.get('shots')}\n{logged[-3000:]}"
    )
    assert "RESOLVED: QueueDLQJobsPresent" in report["card"] and report["consoleErrors"] == []
    assert [s.rsplit("/", 1)[-1] for s in report["shots"]] == [
        "demo-1-health.png",
        "demo-2-alert.png",
        "demo-3-requested.png",
        "demo-4-approved.png",
        "demo-5-resolved.png",
    ]
    assert await demo_redis.zcard("bull:email:failed") == 0

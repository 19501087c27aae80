"""The playground's doors: never in production, loopback unless --public, acts from its page."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import PG_ADMIN
from tests.scenario.test_playground import free_port, page_session, playground, state  # noqa: F401

FORGE = str(Path(sys.executable).with_name("forge"))
WHOAMI = {"kind": "slash", "user": "U0OPS", "channel": "C0OPS", "text": "/forge whoami"}


def forge_env(tmp_path: Path, state_dsn: str | None = None, **extra: str) -> dict[str, str]:
    """A clean environment for a `forge` subprocess: no Slack credentials, a free port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "FORGE_"))}
    env |= {
        "FORGE_HTTP_PORT": str(free_port()),
        "FORGE_CONFIG": str(tmp_path / "forge.yml"),
        "DATABASE_URL": PG_ADMIN,
        "REDIS_URL": "redis://127.0.0.1:9/0",
        "ELASTICSEARCH_URL": "http://127.0.0.1:9",
    }
    if state_dsn:
        env["FORGE_STATE_DATABASE_URL"] = state_dsn
    (tmp_path / "forge.yml").write_text(extra.pop("config", "{}\n"))
    return env | extra


def run_forge(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `forge …` to its end (a forge that starts serving instead fails the test by timeout)."""
    return subprocess.run(
        [FORGE, *args], env=env, capture_output=True, text=True, timeout=30, cwd=env["HOME"]
    )


@pytest.mark.parametrize("where", ["FORGE_ENVIRONMENT", "config"])
def test_the_playground_refuses_production_with_one_line_and_exit_2(tmp_path, where):
    """`forge playground` in production (variable or config file) exits 2 with a one-line reason;
    `forge serve` without credentials there names them instead of falling back."""
    if where == "config":
        env = forge_env(tmp_path, config="environment: production\n")
    else:
        env = forge_env(tmp_path, FORGE_ENVIRONMENT="production")
    env["HOME"] = str(tmp_path)
    refused = run_forge(["playground"], env)
    assert refused.returncode == 2, refused.stderr[-500:]
    [line] = refused.stderr.strip().splitlines()
    assert "never runs in production" in line
    serve = run_forge(["serve"], env)
    assert serve.returncode == 2 and "SLACK_BOT_TOKEN" in serve.stderr
    assert "playground" not in serve.stderr


async def started(tmp_path: Path, state_dsn: str, args: list[str], **env: str) -> list[dict]:
    """Start `forge …` until it serves; its log lines up to then (it is stopped after)."""
    environment = forge_env(tmp_path, state_dsn, **env) | {"HOME": str(tmp_path)}
    process = await asyncio.create_subprocess_exec(
        FORGE, *args, env=environment, cwd=tmp_path, stderr=asyncio.subprocess.PIPE
    )
    lines: list[dict] = []
    try:
        async with asyncio.timeout(30):
            while not any(line.get("event") == "forge_serving" for line in lines):
                raw = await process.stderr.readline()  # type: ignore[union-attr]
                assert raw, f"forge ended before serving: {lines}"
                if raw.startswith(b"{"):
                    lines.append(json.loads(raw))
    finally:
        process.terminate()
        await process.wait()
    return lines


def logged(lines: list[dict], event: str) -> dict | None:
    """The first log line of this event."""
    return next((line for line in lines if line.get("event") == event), None)


async def test_the_playground_listens_on_loopback_even_with_forge_http_host(tmp_path, state_dsn):
    """FORGE_HTTP_HOST=0.0.0.0 (as the Dockerfile sets it) is not an opt-in: 127.0.0.1, no
    warning; `--public` listens on FORGE_HTTP_HOST and warns at start."""
    quiet = await started(tmp_path, state_dsn, ["playground"], FORGE_HTTP_HOST="0.0.0.0")
    assert logged(quiet, "forge_serving")["host"] == "127.0.0.1"  # type: ignore[index]
    assert logged(quiet, "playground_public") is None
    loud = await started(tmp_path, state_dsn, ["playground", "--public"], FORGE_HTTP_HOST="0.0.0.0")
    assert logged(loud, "forge_serving")["host"] == "0.0.0.0"  # type: ignore[index]
    warning = logged(loud, "playground_public")
    assert warning is not None and warning["level"] == "warning"


async def post_act(http: aiohttp.ClientSession, base: str, **how: object) -> int:
    """POST /playground/act with these headers and data; the status."""
    async with http.post(f"{base}/playground/act", **how) as response:  # type: ignore[arg-type]
        return response.status


async def test_only_the_page_itself_may_act(playground):
    """Another origin, a cross-site fetch, no Origin, a text or form body, no token, a wrong token
    or another session's token: 403 or 415, and nothing runs; the page's own request runs."""
    async with page_session() as http, page_session() as other:
        async with http.get(f"{playground}/playground/session") as response:
            token = (await response.json())["csrf"]
        async with other.get(f"{playground}/playground/session") as response:
            foreign = (await response.json())["csrf"]
        good = {"Origin": playground, "Sec-Fetch-Site": "same-origin", "X-Forge-CSRF": token}
        body = json.dumps(WHOAMI)
        json_type = {"Content-Type": "application/json"}
        tries = {
            "other origin": (good | {"Origin": "http://evil.example"} | json_type, body),
            "cross-site": (good | {"Sec-Fetch-Site": "cross-site"} | json_type, body),
            "no origin": ({"X-Forge-CSRF": token} | json_type, body),
            "text body": (good | {"Content-Type": "text/plain"}, body),
            "form body": (good | {"Content-Type": "application/x-www-form-urlencoded"}, "a=b"),
            "no token": ({"Origin": playground} | json_type, body),
            "wrong token": (good | {"X-Forge-CSRF": "0" * 64} | json_type, body),
            "other session": (good | {"X-Forge-CSRF": foreign} | json_type, body),
        }
        statuses = {
            name: await post_act(http, playground, headers=headers, data=data)
            for name, (headers, data) in tries.items()
        }
        await asyncio.sleep(0.5)
        assert (await state(http, playground, "U0OPS"))["items"] == []
        assert statuses == {name: 403 for name in tries} | {"text body": 415, "form body": 415}
        assert await post_act(http, playground, headers=good, json=WHOAMI) == 200


async def test_a_rebound_host_and_a_browser_at_the_stand_in_are_refused(playground):
    """A Host that is not loopback (DNS rebinding) gets 403 even for the session and its token;
    the stand-in's Slack API refuses a request a browser sent, and answers forge's client."""
    rebound = {"Host": "evil.example:80"}
    async with page_session() as http:
        async with http.get(f"{playground}/playground/session", headers=rebound) as response:
            assert response.status == 403 and "csrf" not in await response.text()
        api = f"{playground}/playground/api/chat.postMessage"
        browser = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
        async with http.post(api, data={"channel": "C0OPS"}, headers=browser) as response:
            assert response.status == 403
        async with http.post(api, data={"channel": "C0OPS"}) as response:
            assert (await response.json())["error"] == "not_authed"

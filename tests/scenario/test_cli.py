"""`forge` as a terminal user runs it: run, --json, exit codes, migrate, check, serve."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import PG_ADMIN, REDIS_URL, SECRET
from tests.fakes.slack_client import SlackClient

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
FORGE = [str(Path(sys.executable).with_name("forge"))]


def forge_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A clean environment for the console script: local services, closed ports for the rest."""
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
        }
    )
    env.update(extra)
    return env


def forge(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run the console script from a scratch directory."""
    return subprocess.run(
        [*FORGE, *args],
        cwd=tmp_path,
        env=forge_env(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_run_health_prints_text_and_exits_1_when_services_are_down(tmp_path, state_dsn):
    """`forge run health` prints the readable result and exits 1 because the API is down."""
    done = forge(tmp_path, "run", "health", FORGE_STATE_DATABASE_URL=state_dsn)
    assert done.returncode == 1, done.stderr
    assert "health — critical · production" in done.stdout and "PostgreSQL" in done.stdout
    assert "connection refused" in done.stdout


def test_run_json_is_machine_readable(tmp_path, state_dsn):
    """`--json` prints one JSON document with the status, checks and exit code."""
    done = forge(tmp_path, "run", "--json", "health", FORGE_STATE_DATABASE_URL=state_dsn)
    doc = json.loads(done.stdout)
    assert doc["command"] == "health" and doc["status"] == "critical" and doc["exit_code"] == 1
    names = {c["name"]: c["status"] for c in doc["data"]["checks"]}
    assert names["postgres"] == "ok" and names["api"] == "critical"


def test_run_ok_exits_0_and_usage_error_exits_2(tmp_path, state_dsn):
    """An ok result exits 0; a typo or bad argument exits 2 with the reason."""
    assert forge(tmp_path, "run", "whoami", FORGE_STATE_DATABASE_URL=state_dsn).returncode == 0
    typo = forge(tmp_path, "run", "helth", FORGE_STATE_DATABASE_URL=state_dsn)
    assert typo.returncode == 2 and "Did you mean health?" in typo.stdout
    bad = forge(tmp_path, "run", "audit --limit nope", FORGE_STATE_DATABASE_URL=state_dsn)
    assert bad.returncode == 2 and "usage: forge run" in bad.stdout


def test_the_terminal_shows_people_and_code_plainly_never_as_slack_markup(tmp_path, state_dsn):
    """Text output names the user as the terminal knows them; JSON keeps the ID as the value."""
    text = forge(tmp_path, "run", "whoami", FORGE_STATE_DATABASE_URL=state_dsn).stdout
    doc = json.loads(forge(tmp_path, "run", "--json", "whoami").stdout)
    helped = forge(tmp_path, "run", "help dlq clear", FORGE_STATE_DATABASE_URL=state_dsn).stdout
    assert "<@" not in text and "is admin" in text and text.count("cli:") >= 2
    assert "<@" not in doc["summary"] and doc["fields"]["User"].startswith("cli:")
    assert "`" not in helped and "*" not in helped and "dlq clear <queue>" in helped


def test_run_as_a_slack_user_takes_their_role(tmp_path, state_dsn):
    """`--as` narrows the terminal to that user's role; the audit names the terminal user."""
    denied = forge(tmp_path, "run", "--as", "U0VIEWER", "audit", FORGE_STATE_DATABASE_URL=state_dsn)
    assert denied.returncode == 1 and "needs the admin role" in denied.stdout
    trail = forge(tmp_path, "run", "--json", "audit --limit 1", FORGE_STATE_DATABASE_URL=state_dsn)
    row = json.loads(trail.stdout)["data"]["rows"][0]
    assert (
        row["event"] == "authz_fail"
        and row["actor_id"].startswith("cli:")
        and row["source"] == "cli"
    )


def test_bad_config_exits_2_naming_the_key(tmp_path):
    """A broken config file is refused before anything runs, naming the key."""
    (tmp_path / "bad.yml").write_text("roles:\n  admin: [root]\n")
    done = forge(tmp_path, "run", "help", FORGE_CONFIG=str(tmp_path / "bad.yml"))
    assert done.returncode == 2 and "roles.admin" in done.stderr


def test_migrate_applies_once(tmp_path, template_db):
    """`forge migrate` applies the schema to an empty database, then reports it up to date."""
    import asyncpg

    from tests.conftest import dsn_for

    name = f"forge_m_{os.getpid()}"

    async def database(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN)
        await conn.execute(sql)
        await conn.close()

    asyncio.run(database(f'CREATE DATABASE "{name}"'))
    try:
        first = forge(tmp_path, "migrate", FORGE_STATE_DATABASE_URL=dsn_for(name))
        second = forge(tmp_path, "migrate", FORGE_STATE_DATABASE_URL=dsn_for(name))
    finally:
        asyncio.run(database(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    assert first.returncode == 0 and "0001_audit.sql" in first.stdout
    assert second.returncode == 0 and "up to date" in second.stdout


def test_check_reports_every_backend_and_fails_when_one_is_unreachable(tmp_path, state_dsn):
    """`forge check` validates config, reaches each backend once, and exits 1 when any is down."""
    done = forge(tmp_path, "check", FORGE_STATE_DATABASE_URL=state_dsn)
    assert done.returncode == 1
    for line in (
        "config: ok",
        "state store: ok",
        "postgres: ok",
        "redis: ok",
        "api: critical",
        "slack: not configured",
    ):
        assert line in done.stdout, done.stdout


def test_manifest_check_matches_the_committed_file(tmp_path):
    """`forge manifest --check manifest.yml` agrees with the committed manifest."""
    done = forge(tmp_path, "manifest", "--check", str(ROOT / "manifest.yml"))
    assert done.returncode == 0 and "up to date" in done.stdout


def test_serve_without_slack_credentials_names_the_variables(tmp_path):
    """`forge serve` refuses to start without credentials and says which variables are missing."""
    done = forge(tmp_path, "serve")
    assert (
        done.returncode == 2
        and "SLACK_BOT_TOKEN" in done.stderr
        and "SLACK_SIGNING_SECRET" in done.stderr
    )


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_serve_answers_slack_end_to_end(tmp_path, state_dsn, slack):
    """The real `forge serve` process acks a signed /forge whoami and posts the answer to Slack."""
    port = free_port()
    env = forge_env(
        tmp_path,
        FORGE_STATE_DATABASE_URL=state_dsn,
        SLACK_BOT_TOKEN="xoxb-e2e",
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=slack.url,
        FORGE_HTTP_HOST="127.0.0.1",
        FORGE_HTTP_PORT=str(port),
    )
    process = await asyncio.create_subprocess_exec(
        *FORGE, "serve", cwd=tmp_path, env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with SlackClient(f"http://127.0.0.1:{port}", SECRET, slack) as client:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                try:
                    response = await client.slash("whoami", user="U0OPS")
                    break
                except OSError:
                    await asyncio.sleep(0.1)
            assert response.status == 200
            [post] = await slack.wait_for("chat.postMessage", timeout=5)
            assert "operator" in json.dumps(post.args)
    finally:
        process.terminate()
        _, stderr = await asyncio.wait_for(process.communicate(), 15)
    assert process.returncode == 0
    assert (
        b"forge_serving" in stderr and b"xoxb-e2e" not in stderr and SECRET.encode() not in stderr
    )

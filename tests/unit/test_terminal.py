"""A fast terminal: `forge run help` loads no backend client; logs read well on a terminal."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import structlog

from bot.cli import logs
from bot.text.redact import Redactor

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = (
    "asyncpg",
    "redis",
    "elasticsearch",
    "slack_bolt",
    "slack_sdk",
    "httpx",
    "aiobotocore",
    "matplotlib",
    "numpy",
    "PIL",
)
PROBE = """
import json, sys
from bot.cli.main import main
code = main(["run", "help"])
print(json.dumps({"code": code, "loaded": sorted(m for m in sys.modules if m in CLIENTS)}))
"""


def test_run_help_imports_no_backend_client(tmp_path: Path):
    """In a fresh interpreter, `forge run help` prints the commands and never imports a client."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FORGE_", "SLACK_"))}
    env |= {
        "PYTHONPATH": str(ROOT),
        # unreachable on purpose: help must not even try the state store
        "FORGE_STATE_DATABASE_URL": "postgresql://forge@127.0.0.1:9/none",
    }
    done = subprocess.run(
        [sys.executable, "-c", f"CLIENTS = {CLIENTS!r}" + PROBE],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"code": 0, "loaded": []}, done.stderr
    assert "dlq clear" in done.stdout and "state store" not in done.stderr


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        """Yes."""
        return True


def test_logs_are_for_people_on_a_terminal_and_json_elsewhere():
    """structlog's console renderer when stderr is a terminal, JSON lines otherwise; redacted."""
    seen = {}
    for name, stream in (("tty", Terminal()), ("pipe", io.StringIO())):
        logs.configure(Redactor(), "INFO", stream)
        structlog.get_logger("t").info("command_done", dsn="postgres://u:hunter2-pw@db/x")
        logging.getLogger("lib").warning("library says %s", "token=abc123def")
        seen[name] = stream.getvalue()
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()
    tty, pipe = seen["tty"], seen["pipe"]
    assert "command_done" in tty and not tty.lstrip().startswith("{")
    assert [json.loads(line)["event"] for line in pipe.splitlines()] == [
        "command_done",
        "library says token=[redacted]",
    ]
    assert "hunter2-pw" not in tty + pipe and "abc123def" not in tty + pipe

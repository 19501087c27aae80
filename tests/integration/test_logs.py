"""`logs`: allowlisted FORGE_LOG_DIR files only; redaction, time-bounded regexes, attachments."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

import commands.logs  # noqa: F401  (registers the command)
from bot.core.registry import Role
from bot.slack.mrkdwn import mrkdwn
from bot.slack.render import Meta, to_message
from bot.text.redact import redact
from commands import logs as logs_module
from tests.support.ops_support import run as run_as
from tests.support.ops_support import started_forge

DSN_PASSWORD, JWT = (
    "S3cr3t-Pg-Pw",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJlLXZhbHVl",
)
LINES = [
    "2025-11-13T02:00:00Z INFO server listening on 3000",
    (
        "2025-11-13T02:00:01Z ERROR pool: connect "
        f"postgresql://crm_admin:{DSN_PASSWORD}@db:5432/clientforge refused"
    ),
    f"2025-11-13T02:00:02Z INFO login ok Authorization: Bearer {JWT}",
    f'2025-11-13T02:00:03Z DEBUG response {{"accessToken":"{JWT}","user":"ann"}}',
    "2025-11-13T02:00:04Z WARN slow request GET /api/v1/contacts 1320 ms <!channel> ```",
    "2025-11-13T02:00:05Z ERROR elasticsearch timeout after 30000 ms",
    (
        "2025-11-13T02:00:06Z INFO OPENAI_API_KEY=sk-test-abcdefghijklmnopqrstu loaded, "
        "REDIS_PASSWORD=hunter2"
    ),
]


async def run(forge, text: str):
    """Run as an operator: logs may hold customers' personal data, so viewers may not read them."""
    return await run_as(forge, text, "U0OPS", Role.OPERATOR)


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    """FORGE_LOG_DIR with ClientForge's backend.log, and a secret file beside the directory."""
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "backend.log").write_text("\n".join(LINES) + "\n")
    (tmp_path / "secret.txt").write_text("root:x:0:0\n")
    return tmp_path / "logs"


@pytest.fixture
async def forge(state_dsn, log_dir):
    """forge reading logs from the test directory."""
    async with started_forge(state_dsn, forge_log_dir=log_dir) as started:
        yield started


async def test_tail_shows_the_last_lines_with_secrets_redacted(forge):
    """Token, JWT, DSN password, API key, JSON token fields masked; Slack mentions defused."""
    outcome = await run(forge, "logs backend --tail 6")
    assert outcome.kind == "result", outcome.message
    result = outcome.result
    assert len(result.data["lines"]) == 6 and result.data["lines"][0].startswith(
        "2025-11-13T02:00:01Z ERROR"
    )
    everything = repr(result)
    for secret in (DSN_PASSWORD, JWT, "hunter2", "sk-test-abcdefghijklmnopqrstu"):
        assert secret not in everything
    assert "postgresql://crm_admin:[redacted]@db" in result.data["lines"][0]
    shown = mrkdwn(result.text)  # escaped where Slack meets it, by the renderer
    assert "&lt;!channel&gt;" in shown and "<!channel>" not in shown
    assert shown.count("```") == 2 and dict(result.fields)["Error-looking lines"] == "2"


async def test_viewers_may_not_read_logs(forge):
    """A viewer is refused before any file is opened."""
    outcome = await run_as(forge, "logs backend")
    assert outcome.kind == "denied" and "operator" in outcome.message


async def test_names_outside_the_allowlist_are_refused(forge):
    """Only allowlisted names are read: a path never reaches the file system."""
    for name in (
        "../../etc/passwd",
        "../secret.txt",
        "/etc/passwd",
        "backend.log",
        "..",
        "backend/../../secret.txt",
    ):
        outcome = await run(forge, f"logs {name}")
        assert outcome.kind == "usage" and "is not a log forge reads" in outcome.message, name
        assert "root:x" not in outcome.message


async def test_a_symlink_out_of_the_directory_is_refused(forge, log_dir):
    """An allowlisted name that is a link to a file outside FORGE_LOG_DIR is not followed."""
    (log_dir / "app.log").symlink_to(log_dir.parent / "secret.txt")
    outcome = await run(forge, "logs app")
    assert outcome.kind == "failed" and "outside FORGE_LOG_DIR" in outcome.message


async def test_a_fifo_is_refused_without_hanging(forge, log_dir):
    """A named pipe under an allowlisted name is not a regular file: refused at once."""
    os.mkfifo(log_dir / "error.log")
    outcome = await run(forge, "logs error")
    assert outcome.kind == "failed" and "not a regular file" in outcome.message


async def test_grep_filters_and_only_sees_redacted_text(forge):
    """`--grep` keeps matching lines; a secret's value cannot be searched for."""
    outcome = await run(forge, "logs backend --grep 'ERROR|timeout'")
    assert [line[21:26] for line in outcome.result.data["lines"]] == ["ERROR", "ERROR"]
    assert (await run(forge, "logs backend --grep hunter2")).result.data["lines"] == []
    assert (await run(forge, "logs backend --grep 'REDIS_PASSWORD=h'")).result.data["lines"] == []


async def test_exponential_or_invalid_patterns_are_refused_up_front(forge):
    """Nested repeats, backreferences, invalid and empty patterns are usage errors."""
    for pattern in ("'(a+)+$'", "'(\\w+\\s?)*$'", "'(x)\\1'", "'('", "''", "'(a|b+)*'"):
        outcome = await run(forge, f"logs backend --grep {pattern}")
        assert outcome.kind == "usage" and "grep" in outcome.message, pattern


async def test_a_slow_pattern_is_stopped_at_the_deadline(forge, log_dir, monkeypatch):
    """A backtracking pattern that passes the static check is killed after the deadline."""
    monkeypatch.setattr(logs_module, "GREP_DEADLINE_S", 0.5)
    (log_dir / "backend.log").write_text("a" * 60 + "\n")
    started = time.monotonic()
    outcome = await run(forge, "logs backend --grep '(a|aa)*c'")
    assert outcome.kind == "failed" and "took longer than 0.5 s" in outcome.message
    assert time.monotonic() - started < 3


async def test_long_output_is_attached_with_a_short_inline_tail(forge, log_dir):
    """500 lines: the last 30 inline, all 500 (redacted) in an attached file."""
    (log_dir / "backend.log").write_text("".join(f"line {i} token=abc{i}\n" for i in range(500)))
    outcome = await run(forge, "logs backend --tail 500")
    result = outcome.result
    assert result.attachments and result.attachments[0].filename == "backend-tail.log"
    content = result.attachments[0].content.decode()
    assert content.count("\n") == 500 and "abc" not in content and "token=[redacted]" in content
    assert "line 499" in result.text and "line 469 " not in result.text
    message = to_message(outcome, Meta("U0VIEW", datetime.now(UTC), 5, "development"))
    assert [a.filename for a in message.attachments] == ["backend-tail.log"] and len(
        message.blocks
    ) < 10
    assert "abc4" not in str(message.blocks)


async def test_only_the_last_megabytes_of_a_big_file_are_read(forge, log_dir, monkeypatch):
    """A file over the read limit is read from its end, and the reply says so."""
    monkeypatch.setattr(logs_module, "READ_BYTES", 4096)
    (log_dir / "backend.log").write_text("".join(f"{i:06d} ERROR x\n" for i in range(2000)))
    outcome = await run(forge, "logs backend --grep ERROR --tail 5")
    assert (
        outcome.result.data["truncated_read"] is True
        and outcome.result.data["lines"][-1] == "001999 ERROR x"
    )
    assert outcome.result.data["matched"] < 400


async def test_missing_file_and_directory_are_one_line_errors(forge, state_dsn, tmp_path):
    """An allowlisted file not written yet, and a FORGE_LOG_DIR that does not exist."""
    outcome = await run(forge, "logs backup")
    assert (
        outcome.kind == "failed"
        and mrkdwn(outcome.message) == "`backup.log` does not exist in FORGE_LOG_DIR (yet)."
    )
    async with started_forge(state_dsn, forge_log_dir=tmp_path / "nope") as other:
        outcome = await run(other, "logs backend")
    assert outcome.kind == "failed" and "does not exist on forge's host" in outcome.message


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("connect redis://:r3d1s-pw@redis:6379 failed", "r3d1s-pw"),
        ("DATABASE_URL=postgresql://crm:pg-pw-9@db/clientforge", "pg-pw-9"),
        ('{"refreshToken": "rt-123456", "email": "a@b.c"}', "rt-123456"),
        ("GET /api/v1/export?access_token=at-98765&format=csv", "at-98765"),
        ("JWT_SECRET=jwt-s3cret SESSION_SECRET: sess-s3cret", "s3cret"),
        ("aws key AKIAABCDEFGHIJKLMNOP used", "AKIAABCDEFGHIJKLMNOP"),
    ],
)
def test_log_line_secrets_are_redacted(line, secret):
    """Tokens and DSN passwords in the shapes ClientForge logs them are masked."""
    assert secret not in redact(line) and "[redacted]" in redact(line)


def test_ordinary_log_words_are_left_alone():
    """Words that only look like secret names, without a value, stay readable."""
    for line in (
        "tokens processed: 5",
        "token refresh scheduled",
        "password reset email sent to user 42",
    ):
        assert redact(line) == line

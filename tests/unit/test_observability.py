"""Logs, metrics, packaging: JSON logs without secrets, Slack API errors counted, a safe image."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
import structlog
import yaml

from bot.cli import logs
from bot.text.redact import Redactor

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def json_logs():
    """forge's real log configuration writing to a buffer, restored afterwards."""
    stream = io.StringIO()
    logs.configure(Redactor(["forge-test-signing-secret"]), "INFO", stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


def test_log_lines_are_json_with_the_bound_request_id(json_logs):
    """Each line is one JSON object carrying the request id bound for the request."""
    structlog.contextvars.bind_contextvars(request_id="abc123")
    structlog.get_logger("t").info("command_done", command="health")
    structlog.contextvars.clear_contextvars()
    [line] = json_logs()
    assert (
        line["event"] == "command_done"
        and line["request_id"] == "abc123"
        and line["level"] == "info"
    )


def test_secrets_are_redacted_from_every_log_line(json_logs):
    """Tokens, the signing secret, DSN passwords never reach the logs, even via stdlib logging."""
    structlog.get_logger("t").warning(
        "oops",
        dsn="postgresql://forge:hunter2@db/x",
        nested={"token": "xoxb-1-2-abc"},
        text="secret forge-test-signing-secret",
    )
    logging.getLogger("slack_sdk").error("Authorization: Bearer xoxb-999-aaa failed")
    output = json.dumps(json_logs())
    for secret in ("hunter2", "xoxb-1-2-abc", "forge-test-signing-secret", "xoxb-999-aaa"):
        assert secret not in output


async def test_slack_api_errors_are_counted(slack):
    """A failing Slack call increments forge_slack_api_errors_total by method and error."""
    from bot.http import metrics
    from bot.slack.outbox import Outbox, close_client, make_client
    from bot.slack.render import Message
    from tests.conftest import make_settings

    client = make_client(make_settings(slack_api_url=slack.url))
    slack.fail("chat.update", status=200, error="message_not_found")
    assert await Outbox(client, 5).update("C0OPS", "1.2", Message("x", [])) is False
    await close_client(client)
    body = metrics.exposition()[0].decode()
    assert 'forge_slack_api_errors_total{error="message_not_found",method="chat.update"}' in body


async def test_slack_client_honours_retry_after():
    """The Slack client appends the rate-limit retry handler (default ones do not retry 429s)."""
    from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler

    from bot.slack.outbox import close_client, make_client
    from tests.conftest import make_settings

    client = make_client(make_settings())
    assert any(isinstance(h, AsyncRateLimitErrorRetryHandler) for h in client.retry_handlers)
    assert client.timeout == 10
    await close_client(client)


def test_dockerfile_is_slim_non_root_with_a_healthcheck():
    """The image runs `forge serve` as a non-root user and checks /healthz."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "FROM python:3.11-slim" in text and "USER forge" in text
    assert "HEALTHCHECK" in text and "/healthz" in text and 'CMD ["forge", "serve"]' in text


def test_compose_runs_clientforges_stack():
    """docker-compose: forge beside PostgreSQL 15 with pg_stat_statements, Redis 7 and ES 8.11."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))["services"]
    assert set(services) == {"forge", "postgres", "redis", "elasticsearch"}
    assert "pg15" in services["postgres"]["image"] and "pg_stat_statements" in " ".join(
        services["postgres"]["command"]
    )
    assert (
        services["redis"]["image"].startswith("redis:7")
        and "noeviction" in services["redis"]["command"]
    )
    assert services["elasticsearch"]["image"].endswith(":8.11.0")

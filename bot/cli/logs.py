"""structlog as JSON lines on stderr, request-scoped context, and every value redacted."""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

from bot.core.redact import Redactor


def redaction(redactor: Redactor) -> Any:
    """A processor that masks secrets in every string value of an event."""

    def process(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
        return {k: _scrub(v, redactor) for k, v in event.items()}

    return process


def _scrub(value: Any, redactor: Redactor) -> Any:
    if isinstance(value, str):
        return redactor(value)
    if isinstance(value, dict):
        return {k: _scrub(v, redactor) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, redactor) for v in value]
    return value


def configure(redactor: Redactor, level: str = "INFO", stream: TextIO | None = None) -> None:
    """Configure structlog (JSON lines on stderr) and route the stdlib's logging through it."""
    stream = stream or sys.stderr
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redaction(redactor),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("slack_bolt").setLevel("WARNING")
    logging.getLogger("aiohttp.access").setLevel("WARNING")
    logging.getLogger("elastic_transport").setLevel("ERROR")

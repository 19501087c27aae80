"""structlog on stderr (JSON lines, or a console view on a terminal), every value redacted."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any, TextIO

import structlog

from bot.text.redact import Redactor

# Bolt's request verification logs the raw body of a refused request at INFO
# (`_debug_log_error`): the slash text, response_url, the legacy token, the whole payload.
REQUEST_BODY = re.compile(r"(?s)\bbody:.*")


def redaction(redactor: Redactor) -> Any:
    """A processor that masks secrets in every value of an event, secret-named keys whole."""

    def process(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
        return redactor.value(event)

    return process


class NoRequestBodies(logging.Filter):
    """Drops request bodies from library log records before anything formats them."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep the record, with any `body: …` cut from Slack libraries' messages."""
        if record.name.startswith(("slack_bolt", "slack_sdk")):
            message = REQUEST_BODY.sub("body: (not logged)", record.getMessage())
            record.msg, record.args = message, None
        return True


def renderer(stream: TextIO) -> Any:
    """structlog's console renderer for a person at a terminal; JSON for everything else."""
    if stream.isatty():
        return structlog.dev.ConsoleRenderer(colors=True)
    return structlog.processors.JSONRenderer()


def configure(redactor: Redactor, level: str = "INFO", stream: TextIO | None = None) -> None:
    """Configure structlog on stderr and route the stdlib's logging through it."""
    stream = stream or sys.stderr
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redaction(redactor),
    ]
    structlog.configure(
        processors=[*shared, renderer(stream)],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.addFilter(NoRequestBodies())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer(stream),
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

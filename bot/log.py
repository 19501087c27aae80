"""forge's loggers: structlog's, imported on a module's first message, so `forge run help` never
loads it. bot.cli.logs configures where the messages go."""

from __future__ import annotations

from typing import Any


class Logger:
    """Stands for `structlog.get_logger(name)` and becomes it on the first message."""

    __slots__ = ("_logger", "_name")

    def __init__(self, name: str) -> None:
        self._name, self._logger = name, None

    def __getattr__(self, method: str) -> Any:
        if self._logger is None:
            import structlog

            self._logger = structlog.get_logger(self._name)
        return getattr(self._logger, method)


def get_logger(name: str) -> Any:
    """A logger named after its module, as structlog.get_logger(__name__) gives."""
    return Logger(name)

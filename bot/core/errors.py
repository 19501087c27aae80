"""forge's exception tree; every user-facing failure is one of these.

ForgeError
├── UsageError            bad input: the caller sees the command's usage
├── UnknownCommand        no such command: the caller sees "did you mean …"
├── PermissionDenied      the caller lacks the role, or the check itself failed
├── CommandError          the command ran and failed for a reason meant for users
└── BackendError          a backend failed; one line, never a stack trace
    ├── BackendUnavailable    refused, unreachable, or not configured
    └── BackendTimeout        no answer within its timeout
"""

from __future__ import annotations

from bot.text.cells import Code, Text, plain, rich


def _check(what: str, variable: str) -> str:
    return f"check that {what} runs and that {variable} points at it (`health` shows all)"


HINTS = {
    "postgres": _check("PostgreSQL", "DATABASE_URL"),
    "redis": _check("Redis", "REDIS_URL"),
    "elasticsearch": _check("Elasticsearch", "ELASTICSEARCH_URL"),
    "api": _check("the ClientForge API", "CLIENTFORGE_API_URL"),
    "prometheus": _check("Prometheus", "PROMETHEUS_URL"),
    "grafana": _check("Grafana", "GRAFANA_URL"),
    "state store": "check forge's own PostgreSQL (FORGE_STATE_DATABASE_URL); "
    "write commands are refused until it is back",
}
"""What an operator does when a backend fails, by the backend's name in messages."""


class ForgeError(Exception):
    """Base of every error whose message is safe to show to a user: `text` holds its cells."""

    def __init__(self, message: Text = "") -> None:
        super().__init__(plain(message))
        self.text = message


class UsageError(ForgeError):
    """The input could not be parsed into the command's arguments."""

    def __init__(self, message: Text, usage: str | None = None) -> None:
        super().__init__(message)
        self.usage = usage


class UnknownCommand(ForgeError):
    """The words name no registered command."""

    def __init__(self, words: str, suggestions: list[str]) -> None:
        hint = rich(" Did you mean ", Code(suggestions[0]), "?") if suggestions else ""
        super().__init__(
            rich("Unknown command ", Code(words), ".", hint, " Try ", Code("help"), ".")
        )
        self.words = words
        self.suggestions = suggestions


class PermissionDenied(ForgeError):
    """The actor may not do this."""


class CommandError(ForgeError):
    """The command failed for a reason the user can act on."""


class BackendError(ForgeError):
    """A backend call failed: which backend, what happened, and (`hint`) what to do about it."""

    def __init__(self, backend: str, detail: str, hint: str = "") -> None:
        hint = hint or HINTS.get(backend, "")
        super().__init__(f"{backend}: {detail}" + (f"; {hint}" if hint else ""))
        self.backend = backend
        self.detail = detail
        self.hint = hint


class BackendUnavailable(BackendError):
    """The backend refused the connection, is unreachable, or is not configured."""


class BackendTimeout(BackendError):
    """The backend did not answer within its timeout."""

    def __init__(self, backend: str, seconds: float, hint: str = "") -> None:
        super().__init__(backend, f"timed out after {seconds:g} s", hint)
        self.seconds = seconds

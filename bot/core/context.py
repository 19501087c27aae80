"""What a command handler gets: settings, backends, the actor, a clock and a progress reporter."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from bot.core.registry import Registry, Role

if TYPE_CHECKING:
    from bot.backends.clients import Backends
    from bot.config.settings import Settings
    from bot.core.audit import AuditLog
    from bot.core.scope import Scope
    from bot.state.archive import Archive
    from bot.state.store import StateStore
    from bot.text.cells import Text


class Clock(Protocol):
    """Wall time and a monotonic timer, injectable for tests."""

    def now(self) -> datetime:
        """The current UTC time."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary start, never going back."""


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """time.monotonic()."""
        return time.monotonic()


@dataclass(frozen=True)
class Actor:
    """Who runs the command, as resolved for this one request."""

    user_id: str
    role: Role | None
    approver: bool = False
    source: str = "slack"
    doubt: str | None = None

    def may(self, needed: Role) -> bool:
        """True when the actor's role covers the needed one."""
        return self.role is not None and self.role >= needed


async def no_progress(_: Text) -> None:
    """A progress reporter that reports nowhere (the terminal, tests)."""
    return None


@dataclass
class Context:
    """Everything a handler may use; handlers never see Slack.

    `incident_id` is the incident whose thread the request was made in, as the Slack layer found
    it; handlers never see Slack's thread timestamps. `scope` is what the approved dry run showed,
    when an approved destructive command runs: the handler acts on it only (bot.core.scope).
    """

    settings: Settings
    backends: Backends
    registry: Registry
    actor: Actor
    store: StateStore
    audit: AuditLog
    channel_id: str | None = None
    request_id: str = ""
    clock: Clock = field(default_factory=SystemClock)
    progress: Callable[[Text], Awaitable[None]] = no_progress
    archive: Archive | None = None
    incident_id: int | None = None
    scope: Scope | None = None

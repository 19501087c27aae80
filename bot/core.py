"""Wires one forge: settings, redaction, backends, state store, audit, permissions, dispatcher."""

from __future__ import annotations

from bot.alert_store import AlertStore
from bot.approval_flow import ApprovalEngine
from bot.approvals import ApprovalStore
from bot.archive import Archive
from bot.audit import AuditLog
from bot.backends import Backends
from bot.context import Clock, SystemClock
from bot.dispatch import Dispatcher
from bot.incident_store import IncidentStore
from bot.redact import Redactor
from bot.registry import REGISTRY, Registry
from bot.roles import GroupDirectory, NoGroups, Permissions
from bot.settings import Settings
from bot.store import StateStore


class Forge:
    """Everything but the transport; Slack, the terminal and tests all drive this."""

    def __init__(self, settings: Settings, *, groups: GroupDirectory | None = None, clock: Clock | None = None,
                 registry: Registry | None = None) -> None:
        import commands  # noqa: F401  (registers the commands)

        self.settings = settings
        self.clock = clock or SystemClock()
        self.redactor = Redactor(settings.secrets())
        self.backends = Backends(settings)
        self.store = StateStore(settings.state_database_url, settings.config.timeouts.backend)
        self.audit = AuditLog(self.store, self.redactor, self.clock, settings.config.timeouts.backend)
        self.archive = Archive(self.store)
        self.permissions = Permissions(settings.config, groups or NoGroups())
        self.dispatcher = Dispatcher(settings, registry or REGISTRY, self.backends, self.store, self.audit,
                                     self.permissions, self.redactor, self.clock, self.archive)
        self.approvals = ApprovalEngine(self.dispatcher, ApprovalStore(self.store, settings.config.timeouts.backend))
        self.alerts = AlertStore(self.store, settings.config.timeouts.backend)
        self.incidents = IncidentStore(self.store, settings.config.timeouts.backend)

    async def start(self) -> bool:
        """Connect and migrate the state store; False when it is down (read commands still work)."""
        return await self.store.start()

    async def aclose(self) -> None:
        """Close every client."""
        await self.backends.aclose()
        await self.store.aclose()

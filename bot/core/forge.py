"""Wires one forge: settings, redaction, backends, state store, audit, permissions, dispatcher."""

from __future__ import annotations

from bot.alerts.store import AlertStore
from bot.approvals.engine import ApprovalEngine
from bot.approvals.store import ApprovalStore
from bot.backends.clients import Backends
from bot.background.lease import replica_id
from bot.config.settings import Settings
from bot.core.audit import AuditLog
from bot.core.context import Clock, SystemClock
from bot.core.dispatch import Dispatcher
from bot.core.permissions import GroupDirectory, NoGroups, Permissions
from bot.core.registry import REGISTRY, Registry
from bot.incidents.store import IncidentStore
from bot.state.archive import Archive
from bot.state.store import StateStore
from bot.text.redact import remember


class Forge:
    """Everything but the transport; Slack, the terminal and tests all drive this."""

    def __init__(
        self,
        settings: Settings,
        *,
        groups: GroupDirectory | None = None,
        clock: Clock | None = None,
        registry: Registry | None = None,
    ) -> None:
        import commands  # noqa: F401  (registers the commands)

        self.settings = settings
        self.replica_id = replica_id(settings.env.forge_replica_id)
        self.clock = clock or SystemClock()
        self.redactor = remember(settings.secrets())
        self.backends = Backends(settings)
        self.store = StateStore(settings.state_database_url, settings.config.timeouts.backend)
        self.audit = AuditLog(
            self.store, self.redactor, self.clock, settings.config.timeouts.backend
        )
        self.archive = Archive(self.store)
        self.permissions = Permissions(settings.config, groups or NoGroups())
        self.dispatcher = Dispatcher(
            settings,
            registry or REGISTRY,
            self.backends,
            self.store,
            self.audit,
            self.permissions,
            self.redactor,
            self.clock,
            self.archive,
        )
        self.approvals = ApprovalEngine(
            self.dispatcher, ApprovalStore(self.store, settings.config.timeouts.backend)
        )
        self.alerts = AlertStore(self.store, settings.config.timeouts.backend)
        self.incidents = IncidentStore(self.store, settings.config.timeouts.backend)

    async def start(self, keep_trying: bool = False) -> bool:
        """Connect and migrate the state store; False when it is down (read commands still work).

        `keep_trying` (serve): reconnect in the background until it is up, never blocking; and
        keep the diagnostic connection to ClientForge's PostgreSQL open for when it is full."""
        if keep_trying:
            self.backends.keep_warm()
        return await self.store.start(keep_trying)

    async def aclose(self) -> None:
        """Close every client."""
        await self.backends.aclose()
        await self.store.aclose()

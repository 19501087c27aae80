"""Every background loop of `forge serve`, as jobs the background lease's holder runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.alerts.publisher import IDLE_POLL, AlertPublisher
from bot.approvals.break_glass import COURIER_EVERY, Courier, NoticeQueue
from bot.background.backups import TICK_SECONDS, BackupScheduler
from bot.background.leader import LEASE_NAME, Job, Leader
from bot.background.lease import Lease, Presence
from bot.background.recovery import RECOVERY_EVERY, Recovery
from bot.background.schedules import TICK_SECONDS as REPORT_TICK
from bot.background.schedules import ReportScheduler
from bot.home.slack import REFRESH_EVERY
from bot.incidents.board import POLL, IncidentBoard

if TYPE_CHECKING:
    from bot.core.forge import Forge
    from bot.slack.app import SlackSurface

PRUNE_EVERY = 600.0


def jobs(
    forge: Forge, surface: SlackSurface, publisher: AlertPublisher, board: IncidentBoard
) -> list[Job]:
    """The alert cards, incident board, backup and report schedules, approval sweep, pruning,
    recovery, the break-glass notices' courier and the Home tabs."""
    recovery = Recovery(
        surface.tracker.inflight,
        surface.outbox,
        surface.resume,
        forge.redactor,
        forge.settings.config.replicas.lease_seconds,
    )
    courier = Courier(
        NoticeQueue(forge.store, forge.settings.config.timeouts.backend), surface.outbox
    )
    return [
        Job("alert_publish", publisher.publish_once, IDLE_POLL, publisher.until_woken),
        Job("incident_board", board.render_once, POLL),
        Job("backup_schedule", BackupScheduler(forge, surface.outbox).tick, TICK_SECONDS),
        Job("report_schedule", ReportScheduler(forge, surface.outbox).tick, REPORT_TICK),
        Job(
            "approval_sweep",
            surface.approval_ui.sweep,
            forge.settings.config.approvals.sweep_seconds,
        ),
        Job("delivery_prune", forge.store.prune_deliveries, PRUNE_EVERY),
        Job("inflight_recovery", recovery.tick, RECOVERY_EVERY),
        Job("break_glass_notices", courier.tick, COURIER_EVERY),
        Job("home_refresh", surface.home.tick, REFRESH_EVERY),
    ]


def leader(forge: Forge, job_list: list[Job]) -> Leader:
    """The background lease of this replica, running `job_list` while held."""
    timeout = forge.settings.config.timeouts.backend
    ttl = forge.settings.config.replicas.lease_seconds
    return Leader(
        Lease(forge.store, LEASE_NAME, forge.replica_id, ttl, timeout),
        Presence(forge.store, forge.replica_id, timeout),
        job_list,
    )

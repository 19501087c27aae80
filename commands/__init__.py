"""Command families: plain async functions registered with `bot.core.registry.command`; no Slack."""

from commands import (  # noqa: F401
    alerts,
    approvals,
    cache,
    health,
    incident_actions,
    incidents,
    logs,
    meta,
    perf,
    schedules,
    verify,
)
from commands.backup import handlers, nightly, recovery  # noqa: F401
from commands.db import activity, indexes, maint, queries, signals, space  # noqa: F401
from commands.queues import archive, browse, dlq, graph, queue, retry  # noqa: F401
from commands.search import es, reindex, telemetry  # noqa: F401  (importing registers them)

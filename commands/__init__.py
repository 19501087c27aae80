"""Command families: plain async functions registered with `bot.core.registry.command`; no Slack here."""

from commands import alerts, approvals, cache, health, incidents, logs, meta, perf, verify  # noqa: F401
from commands.backup import handlers  # noqa: F401
from commands.db import activity, indexes, maint, queries, space  # noqa: F401
from commands.queues import dlq, queue  # noqa: F401
from commands.search import es, reindex, telemetry  # noqa: F401  (importing registers them)

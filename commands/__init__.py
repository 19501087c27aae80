"""Command families: plain async functions registered with `bot.registry.command`; no Slack here."""

from commands import (alerts, approvals, backup, cache, db_activity, db_indexes, db_maint, db_queries,  # noqa: F401
                      db_space, dlq, es, es_reindex, health, incidents, logs, meta, perf, queues,
                      search, verify)  # importing registers them

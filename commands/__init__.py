"""Command families: plain async functions registered with `bot.registry.command`; no Slack here."""

from commands import (approvals, db_activity, db_indexes, db_maint, db_queries, db_space, dlq, es,  # noqa: F401
                      es_reindex, health, meta, queues)  # importing registers the commands

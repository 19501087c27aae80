"""Command families: plain async functions registered with `bot.registry.command`; no Slack here."""

from commands import (approvals, db_activity, db_indexes, db_maint, db_queries, db_space, dlq, health,  # noqa: F401
                      meta, queues)  # importing registers the commands

"""Command families: plain async functions registered with `bot.registry.command`; no Slack here."""

from commands import approvals, dlq, health, meta, queues  # noqa: F401  (importing registers the commands)

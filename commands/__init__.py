"""Command families: plain async functions registered with `bot.registry.command`; no Slack here."""

from commands import approvals, health, meta  # noqa: F401  (importing registers the commands)

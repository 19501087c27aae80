"""The runbook catalog: remediation steps and diagnostic commands per alert, config-extensible."""

from __future__ import annotations

import re
import shlex
import string
from collections.abc import Mapping

from bot.config.settings import Config, RunbookEntry
from bot.core.errors import UnknownCommand
from bot.core.registry import Registry
from bot.text.cells import Code, Text, rich

QUEUE_STEPS = [
    "Look at the queue: `queue health {queue}` shows waiting, active, failed, lag and connected "
    "workers."
]
CATALOG: dict[str, RunbookEntry] = {
    "QueueDLQJobsPresent": RunbookEntry(
        summary="Jobs of a queue failed every attempt and sit in its dead-letter set.",
        steps=[
            "See what failed: `dlq list {queue}`, then `dlq show {queue} <id>` for one job's "
            "reason and stack.",
            "Fix the cause the reasons name, then put the jobs back with `dlq retry {queue}`.",
            "Jobs that can never succeed: `dlq clear {queue}` removes them, each archived first "
            "(needs approval).",
        ],
        commands=["queue health {queue}", "dlq list {queue}", "dlq clear {queue}"],
    ),
    "QueueHighWaitingCount": RunbookEntry(
        summary="More than 1,000 jobs are waiting.",
        steps=[
            *QUEUE_STEPS,
            "No worker connected or none active: restart the workers of this queue.",
            "Workers busy but slow: check the backends they call (`health`), then scale the "
            "workers.",
        ],
        commands=["queue health {queue}", "health"],
    ),
    "QueueCriticalWaitingCount": RunbookEntry(
        summary="More than 5,000 jobs are waiting.",
        steps=[
            *QUEUE_STEPS,
            "Restart or scale the workers now; declare an incident if users are affected.",
        ],
        commands=["queue health {queue}", "health", "incident declare P1 Queue {queue} backlog"],
    ),
    "QueueHighLag": RunbookEntry(
        summary="The oldest waiting job has waited more than 5 minutes.",
        steps=[*QUEUE_STEPS, "A paused queue also lags: resume it if nobody paused it on purpose."],
        commands=["queue health {queue}"],
    ),
    "QueueUnexpectedPause": RunbookEntry(
        summary="A queue is paused.",
        steps=[
            "Check the audit trail for who paused it: `audit --command queue`.",
            "If nobody meant to, `queue resume {queue}`.",
        ],
        commands=["queue health {queue}", "queue resume {queue}", "audit --command queue"],
    ),
    "QueueNoActiveWorkers": RunbookEntry(
        summary="Jobs are waiting and nothing processes them.",
        steps=[
            *QUEUE_STEPS,
            "Workers run inside the API process on ClientForge: check it with `health` and "
            "restart it if it is down.",
        ],
        commands=["queue health {queue}", "health"],
    ),
    "QueueHighFailureRate": RunbookEntry(
        summary="More than 0.1 jobs a second are failing.",
        steps=[
            "Read the reasons: `dlq list {queue}` (failed jobs that used every attempt).",
            "A backend the jobs call may be down: `health`.",
        ],
        commands=["queue health {queue}", "dlq list {queue}", "health"],
    ),
    "QueueHighActiveCount": RunbookEntry(
        summary="More than 100 jobs are active at once.",
        steps=QUEUE_STEPS,
        commands=["queue health {queue}"],
    ),
    "QueueLowThroughput": RunbookEntry(
        summary="Almost nothing completes.", steps=QUEUE_STEPS, commands=["queue health {queue}"]
    ),
    "BackendDown": RunbookEntry(
        summary="Prometheus cannot scrape the ClientForge API.",
        steps=[
            "Check every dependency at once: `health`.",
            "Read the API's recent errors: `logs backend --grep ERROR --tail 200`.",
            "Restart the API; declare an incident if it stays down.",
        ],
        commands=["health", "logs backend --grep ERROR --tail 200", "incident declare P0 API down"],
    ),
    "PostgreSQLSlowQueries": RunbookEntry(
        summary="Queries take longer than they should.",
        steps=[
            "Find them: `db slow` (mean above 100 ms) and `db top` (most total time).",
            "Look for missing indexes (`db indexes`) and for blocking (`db locks`, `db long`).",
            "Refresh statistics of a table whose plans went bad: `db analyze <table>`.",
        ],
        commands=["db slow", "db top", "db indexes", "db locks"],
    ),
    "HighCacheMissRate": RunbookEntry(
        summary="The Redis cache hit rate is under 60 %.",
        steps=[
            "Check hit rate, memory and evictions: `cache stats` (BullMQ traffic counts in the "
            "rate too).",
            "Evictions mean maxmemory is too small; keys expiring early mean TTLs are too short.",
        ],
        commands=["cache stats"],
    ),
    "ElasticsearchHealthRed": RunbookEntry(
        summary="A primary shard of an Elasticsearch index is unassigned.",
        steps=[
            "See which indices are red: `es status`, `es indices`.",
            "Search falls back to PostgreSQL meanwhile; restore the node or the index.",
        ],
        commands=["es status", "es indices"],
    ),
    "HighErrorRate": RunbookEntry(
        summary="More than 5 % of API requests fail.",
        steps=["`perf` shows the 5xx ratio and latency; `logs backend --grep ERROR` the errors."],
        commands=["perf", "logs backend --grep ERROR --tail 200", "health"],
    ),
    "HighLatencyP95": RunbookEntry(
        summary="The API's p95 latency is above its threshold.",
        steps=["`perf` shows latency, CPU and event-loop lag; `db slow` the queries behind it."],
        commands=["perf", "db slow"],
    ),
    "RedisMemoryHigh": RunbookEntry(
        summary="Redis uses more than 90 % of maxmemory.",
        steps=["`cache stats` shows memory, policy and evictions."],
        commands=["cache stats", "queue health"],
    ),
    "PostgreSQLConnectivityLost": RunbookEntry(
        summary="PostgreSQL does not answer.",
        steps=["`health` shows which dependency is down."],
        commands=["health", "db connections"],
    ),
}
ALIASES = {
    "SlowDatabaseQueries": "PostgreSQLSlowQueries",
    "SlowQueryDetected": "PostgreSQLSlowQueries",
    "BullMQDeadLetterQueueHigh": "QueueDLQJobsPresent",
    "BullMQQueueBacklog": "QueueHighWaitingCount",
    "APIErrorRateHigh": "HighErrorRate",
    "APILatencyHigh": "HighLatencyP95",
    "APILatencyCritical": "HighLatencyP95",
    "ApplicationCrashed": "BackendDown",
}
SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.:@/-]{1,100}$")


def catalog(config: Config) -> dict[str, RunbookEntry]:
    """Built-in entries with the config file's added or replaced ones."""
    return {**CATALOG, **config.alerts.runbook}


def entry(config: Config, alertname: str) -> RunbookEntry | None:
    """The runbook entry of an alert, by its name or a known alias of it."""
    entries = catalog(config)
    return entries.get(alertname) or entries.get(ALIASES.get(alertname, ""))


def _fill(template: str, labels: Mapping[str, str]) -> str | None:
    """The template, each `{label}` set to the alert's value (quoted); None if one is missing."""
    names = [name for _, name, _, _ in string.Formatter().parse(template) if name]
    if any(not SAFE_VALUE.match(str(labels.get(name, ""))) for name in names):
        return None
    return template.format(**{name: shlex.quote(str(labels[name])) for name in names})


def steps(item: RunbookEntry, labels: Mapping[str, str]) -> list[Text]:
    """The entry's steps, with labels filled in where the alert has them."""
    return [marked(_fill(step, labels) or step) for step in item.steps]


def marked(step: str) -> Text:
    """A catalog step as text: its `code` spans, the catalog's own notation, as Code cells."""
    pieces = step.split("`")
    if len(pieces) % 2 == 0:
        return step
    return rich(*(Code(p) if i % 2 else p for i, p in enumerate(pieces)))


def commands(item: RunbookEntry, labels: Mapping[str, str], registry: Registry) -> list[str]:
    """The entry's commands that this forge has, with the alert's labels filled in."""
    filled = [_fill(template, labels) for template in item.commands]
    return [text for text in filled if text and known(text, registry)]


def known(text: str, registry: Registry) -> bool:
    """True when this forge has the command the text starts with."""
    try:
        registry.resolve(shlex.split(text))
    except (UnknownCommand, ValueError):
        return False
    return True

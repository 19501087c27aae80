"""Prometheus metrics of forge itself, in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

REGISTRY = CollectorRegistry()
COMMANDS = Counter(
    "forge_commands",
    "Commands run, by command and outcome.",
    ["command", "outcome"],
    registry=REGISTRY,
)
DURATION = Histogram(
    "forge_command_duration_seconds",
    "Command run time.",
    ["command"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
SLACK_ERRORS = Counter(
    "forge_slack_api_errors",
    "Slack Web API calls that failed, by method and error.",
    ["method", "error"],
    registry=REGISTRY,
)
SLACK_REQUESTS = Counter(
    "forge_slack_requests",
    "Requests received on /slack/events, by kind and outcome.",
    ["kind", "outcome"],
    registry=REGISTRY,
)


def exposition(*more: CollectorRegistry) -> tuple[bytes, str]:
    """forge's metrics (and other registries) in Prometheus text format, with its content type."""
    return b"".join(generate_latest(r) for r in (REGISTRY, *more)), CONTENT_TYPE_LATEST

"""Prometheus metrics of forge itself, in a registry of its own, made on first use.

`metrics.COMMANDS` and the rest are built the first time any is read, so a terminal command that
records none (`forge run help`) never imports prometheus_client.
"""

from __future__ import annotations

from typing import Any

_made: dict[str, Any] = {}


def _make() -> dict[str, Any]:
    from prometheus_client import CollectorRegistry, Counter, Histogram

    registry = CollectorRegistry()
    return {
        "REGISTRY": registry,
        "COMMANDS": Counter(
            "forge_commands",
            "Commands run, by command and outcome.",
            ["command", "outcome"],
            registry=registry,
        ),
        "DURATION": Histogram(
            "forge_command_duration_seconds",
            "Command run time.",
            ["command"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        ),
        "SLACK_ERRORS": Counter(
            "forge_slack_api_errors",
            "Slack Web API calls that failed, by method and error.",
            ["method", "error"],
            registry=registry,
        ),
        "SLACK_REQUESTS": Counter(
            "forge_slack_requests",
            "Requests received on /slack/events, by kind and outcome.",
            ["kind", "outcome"],
            registry=registry,
        ),
        "REQUEST_STEPS": Counter(
            "forge_request_steps",
            "Steps of the request path done: parse, role (resolution), dry_run.",
            ["step"],
            registry=registry,
        ),
        "ALERT_NOTIFICATIONS": Counter(
            "forge_alert_notifications",
            "Alertmanager notifications received, by HTTP status answered.",
            ["outcome"],
            registry=registry,
        ),
    }


def __getattr__(name: str) -> Any:
    """REGISTRY, COMMANDS, DURATION, SLACK_ERRORS, SLACK_REQUESTS, REQUEST_STEPS,
    ALERT_NOTIFICATIONS: made once, on first read."""
    if not _made:
        _made.update(_make())
    try:
        return _made[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def exposition(*more: Any) -> tuple[bytes, str]:
    """forge's metrics (and other registries) in Prometheus text format, with its content type."""
    from prometheus_client import generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    return b"".join(generate_latest(r) for r in (__getattr__("REGISTRY"), *more)), (
        CONTENT_TYPE_LATEST
    )

"""An alert card's picture: its rule's expression over the last hour, with the threshold, the
moment it started firing and (once resolved) the recovery marked.

The expression comes from the rule catalog (deploy/prometheus's rules, or `expr` of a runbook
entry in the config), else from the alert's `generatorURL` (`g0.expr`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bot.alerts import runbook
from bot.backends.prometheus import Series, step_for
from bot.config.settings import Config
from bot.graphs.spec import Figure, Line, Mark, Panel

WINDOW = timedelta(hours=1)
RULES = {  # deploy/prometheus/queue-alerts.yml (a unit test keeps them equal)
    "QueueDLQJobsPresent": "crm_queue_jobs_dlq_total > 0",
    "QueueHighWaitingCount": "crm_queue_waiting > 1000",
    "QueueCriticalWaitingCount": "crm_queue_waiting > 5000",
    "QueueUnexpectedPause": "crm_queue_paused == 1",
    "QueueHighLag": "crm_queue_lag_seconds > 300",
    "QueueNoActiveWorkers": "crm_queue_waiting > 10 and crm_queue_active == 0",
    "QueueHighFailureRate": "clamp_min(delta(crm_queue_failed[5m]), 0) / 300 > 0.1",
    "QueueHighActiveCount": "crm_queue_active > 100",
    "QueueMetricsDown": "forge_queue_metrics_up == 0 or absent(forge_queue_metrics_up)",
}
THRESHOLD = re.compile(r"^(?P<query>.+?)\s*(?:>=|<=|>|<|==|!=)\s*(?P<value>-?[0-9.]+(?:e-?\d+)?)$")
SET_OPERATORS = re.compile(r"\b(?:and|or|unless)\b")


def _labels(alert: Mapping[str, Any]) -> dict[str, str]:
    value = alert["labels"]
    return json.loads(value) if isinstance(value, str) else dict(value)


def expression(config: Config, alert: Mapping[str, Any]) -> str | None:
    """The alert rule's PromQL: the catalog's, else the generatorURL's `g0.expr`."""
    name = str(alert["alertname"])
    item = runbook.entry(config, name)
    found = (item.expr if item else "") or RULES.get(runbook.ALIASES.get(name, name))
    if found:
        return found
    query = parse_qs(urlsplit(str(alert.get("generator_url") or "")).query)
    return next(iter(query.get("g0.expr") or []), None)


def split(expr: str) -> tuple[str, float | None]:
    """`crm_queue_lag_seconds > 300` -> the plotted query and its threshold; a compound rule is
    plotted whole, without one."""
    match = THRESHOLD.match(expr.strip())
    if match is None or SET_OPERATORS.search(expr):
        return expr, None
    return match["query"], float(match["value"])


def matching(series: Sequence[Series], labels: Mapping[str, str]) -> list[Series]:
    """The series whose labels agree with the alert's on every label they share."""
    return [
        s
        for s in series
        if all(labels.get(k, v) == v for k, v in s.labels.items() if k != "__name__")
    ]


def span(alerts: Sequence[Mapping[str, Any]]) -> tuple[float, float | None]:
    """When the group started firing, and when it resolved (None while any alert fires)."""
    start = min(a["starts_at"] for a in alerts).timestamp()
    if any(a["status"] == "firing" for a in alerts):
        return start, None
    return start, max(a["ends_at"] or a["starts_at"] for a in alerts).timestamp()


def figure(
    title: str,
    unit: str,
    series: Sequence[Series],
    threshold: float | None,
    alerts: Sequence[Mapping[str, Any]],
    end: float,
) -> Figure:
    """The panel: each matching series, the threshold, firing start and recovery marked."""
    severity = next((a["severity"] for a in alerts if a["severity"]), "warning")
    level = "critical" if severity == "critical" else "warning"
    lines = tuple(
        Line(_legend(s.labels), tuple(s.times), tuple(s.values), level) for s in series[:6]
    )
    started, resolved = span(alerts)
    marks = [Mark(started, "started firing", level)]
    if resolved is not None:
        marks.append(Mark(resolved, "resolved", "ok"))
    start = end - WINDOW.total_seconds()
    return Figure(
        "alert",
        title,
        start,
        end,
        (Panel(title, unit, lines, threshold=threshold),),
        tuple(m for m in marks if start <= m.at <= end),
    )


def _legend(labels: Mapping[str, str]) -> str:
    shown = [f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("__name__", "job")]
    return ", ".join(shown)[:60] or "value"


async def card_figure(
    backends: Any, config: Config, alerts: Sequence[Mapping[str, Any]], common: Mapping[str, str]
) -> Figure | None:
    """The card's figure from Prometheus, or None when the alert has no expression or no data."""
    first = alerts[0]
    expr = expression(config, first)
    if not expr:
        return None
    query, threshold = split(expr)
    end = time.time()
    step = step_for(WINDOW, config.graphs.sample_seconds)
    found = await backends.prom.range(query, _at(end - WINDOW.total_seconds()), _at(end), step)
    wanted = _labels(first) if len(alerts) == 1 else common
    series = [s for s in matching(found, wanted) if s.values]
    if not series:
        return None
    title = f"{first['alertname']}: {query}"[:90]
    return figure(title, unit_of(query), series, threshold, alerts, end)


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def unit_of(query: str) -> str:
    """The y axis's unit, from the metric's name."""
    for part, unit in (("seconds", "seconds"), ("bytes", "bytes"), ("crm_queue_", "jobs")):
        if part in query:
            return unit
    return "value"

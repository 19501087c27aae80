"""Prometheus's HTTP API: instant and range queries, each within the backend timeout.

value = await ctx.backends.prom.query("max(crm_process_resident_memory_bytes)")
series = await ctx.backends.prom.range(expr, start, end, step)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.core.errors import BackendUnavailable

if TYPE_CHECKING:
    from bot.backends.clients import Backends

MAX_POINTS = 11_000  # Prometheus refuses a range query of more points per series
PICTURE_POINTS = 720  # enough for a 1,600-pixel-wide plot; fewer is faster to fetch and draw


@dataclass(frozen=True)
class Series:
    """One labelled series of a range query: unix times and values (NaN where none)."""

    labels: dict[str, str]
    times: list[float]
    values: list[float]


def step_for(window: timedelta, finest: float, points: int = PICTURE_POINTS) -> float:
    """A step no finer than the scrape interval, giving at most `points` (≤ 11,000) per series."""
    seconds = window.total_seconds()
    step = max(finest, seconds / (min(points, MAX_POINTS) - 1))
    return float(math.ceil(step * 10) / 10)


def points_of(window: timedelta, step: float) -> int:
    """How many points a range query over the window at this step returns per series."""
    return int(window.total_seconds() // step) + 1


class Prometheus:
    """PROMETHEUS_URL's query API through the shared HTTP client and the backend timeout."""

    def __init__(self, backends: Backends) -> None:
        self.backends = backends
        self.service = backends.web.named("prometheus", "PROMETHEUS_URL")

    async def query(self, expr: str) -> float | None:
        """One instant query: the first sample's value, or None when the result is empty."""
        data = await self._get("/api/v1/query", {"query": expr})
        if data.get("resultType") == "scalar":
            return float(data["result"][1])
        result = data.get("result") or []
        return float(result[0]["value"][1]) if result else None

    async def range(self, expr: str, start: datetime, end: datetime, step: float) -> list[Series]:
        """A range query; refuses a step that would ask for more than 11,000 points."""
        if points_of(end - start, step) > MAX_POINTS:
            raise ValueError(f"step {step} s over {end - start} exceeds {MAX_POINTS} points")
        params = {
            "query": expr,
            "start": f"{start.timestamp():.3f}",
            "end": f"{end.timestamp():.3f}",
            "step": f"{step:g}",
        }
        data = await self._get("/api/v1/query_range", params)
        return [_series(item) for item in data.get("result") or []]

    async def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        timeout = self.backends.timeouts.backend
        url = self.backends.settings.env.prometheus_url.rstrip("/") + path
        params = {**params, "timeout": f"{int(timeout * 1000)}ms"}
        resp = await self.service.call(self.backends.http().get(url, params=params), timeout)
        try:
            body = resp.json()
        except ValueError:
            raise BackendUnavailable(
                "prometheus", f"HTTP {resp.status_code}, not the Prometheus API"
            ) from None
        if not isinstance(body, dict) or body.get("status") != "success":
            why = body.get("error", "") if isinstance(body, dict) else ""
            raise BackendUnavailable(
                "prometheus", f"HTTP {resp.status_code}: {str(why)[:160] or 'query failed'}"
            )
        data = body.get("data")
        return data if isinstance(data, dict) else {}


def _series(item: dict[str, Any]) -> Series:
    """A matrix entry as times and float values."""
    pairs = item.get("values") or []
    return Series(
        {str(k): str(v) for k, v in (item.get("metric") or {}).items()},
        [float(t) for t, _ in pairs],
        [float(v) for _, v in pairs],
    )


def label_value(text: str) -> str:
    """A string quoted for a PromQL label matcher."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

"""The one-line trend under a queue graph: "DLQ 0 → 1,520 in 40 min; lag 15 min and rising"."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from bot.text.units import duration


def _known(times: Sequence[float], values: Sequence[float]) -> list[tuple[float, float]]:
    return [(t, v) for t, v in zip(times, values, strict=False) if not math.isnan(v)]


def change(
    label: str, times: Sequence[float], values: Sequence[float], fmt: Callable[[float], str]
) -> str | None:
    """`DLQ 0 → 1,520 in 40 min`: first to last value and how long the move took; None if flat."""
    points = _known(times, values)
    if len(points) < 2 or points[0][1] == points[-1][1]:
        return None
    first, last = points[0][1], points[-1][1]
    moved = next(i for i, (_, v) in enumerate(points) if v != first)
    settled = max(i for i, (_, v) in enumerate(points) if v != last) + 1
    start, end = points[moved - 1][0], points[settled][0]
    return f"{label} {fmt(first)} → {fmt(last)} in {duration(max(0.0, end - start))}"


def direction(times: Sequence[float], values: Sequence[float]) -> str:
    """`rising`, `falling` or `steady`: the last value against the one a sixth of the way back."""
    points = _known(times, values)
    if len(points) < 2:
        return "steady"
    back = points[max(0, len(points) - 1 - max(1, len(points) // 6))][1]
    last = points[-1][1]
    return "rising" if last > back else "falling" if last < back else "steady"


def jobs(value: float) -> str:
    """A job count as `1,520`."""
    return f"{value:,.0f}"

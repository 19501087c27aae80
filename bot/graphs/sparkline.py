"""Unicode sparklines, the picture's stand-in in a terminal or when Prometheus cannot answer."""

from __future__ import annotations

import math
from collections.abc import Sequence

BARS = "▁▂▃▄▅▆▇█"
WIDTH = 40


def sparkline(values: Sequence[float], width: int = WIDTH) -> str:
    """A bar per bucket of values (its highest), scaled from the lowest to the highest value."""
    buckets = _buckets(values, width)
    known = [v for v in buckets if v is not None]
    if not known:
        return "(no data)"
    low, high = min(known), max(known)
    span = high - low
    return "".join(
        " " if v is None else BARS[0 if span == 0 else round((v - low) / span * (len(BARS) - 1))]
        for v in buckets
    )


def _buckets(values: Sequence[float], width: int) -> list[float | None]:
    """At most `width` buckets, each the highest known value in it, None where all are NaN."""
    clean = [None if math.isnan(v) else v for v in values]
    if len(clean) <= width:
        return clean
    size = len(clean) / width
    out: list[float | None] = []
    for i in range(width):
        part = [v for v in clean[int(i * size) : int((i + 1) * size)] if v is not None]
        out.append(max(part) if part else None)
    return out

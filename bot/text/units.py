"""How sizes and durations read in messages: one place, so `db tables` and `backup list` agree."""

from __future__ import annotations

from datetime import datetime


def size(n: float | None) -> str:
    """Bytes as `812 B`, `12.3 kB`, `4.1 MB`, `1.2 GB`; an em dash when unknown."""
    if n is None:
        return "—"
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{int(n)} B"


def ms(value: float | None) -> str:
    """Milliseconds as `0.42 ms`, `130 ms`, `2.4 s`, `3.1 min`."""
    if value is None:
        return "—"
    if value < 10:
        return f"{value:.2f} ms"
    if value < 10_000:
        return f"{value:,.0f} ms"
    return f"{value / 1000:.1f} s" if value < 120_000 else f"{value / 60_000:.1f} min"


def duration(seconds: float | None) -> str:
    """`42 s`, `5 min`, `3.2 h`, `2.0 d`; an em dash when unknown."""
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h" if seconds < 172800 else f"{seconds / 86400:.1f} d"


def between(start: datetime, end: datetime | None) -> str:
    """How long from start to end (`4 min`); an em dash while it has no end."""
    return "—" if end is None else duration(max(0.0, (end - start).total_seconds()))

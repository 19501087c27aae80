"""What a picture shows, as plain data a worker process can draw: no plotting library here.

Levels are forge's statuses, worst first: critical 🔴, warning ⚠️, ok ✅, then plain info.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LEVELS = ("critical", "warning", "ok", "info")


@dataclass(frozen=True)
class Line:
    """One plotted series: its legend label, unix times and values (NaN where none)."""

    label: str
    times: tuple[float, ...]
    values: tuple[float, ...]
    level: str = "info"


@dataclass(frozen=True)
class Panel:
    """One plot: a title, the y axis's unit, its lines and an optional threshold."""

    title: str
    unit: str
    lines: tuple[Line, ...]
    threshold: float | None = None


@dataclass(frozen=True)
class Mark:
    """A moment marked across every panel (firing started, resolved) or on a timeline."""

    at: float
    label: str
    level: str = "info"


@dataclass(frozen=True)
class Figure:
    """A picture: panels over [start, end] with marks, or (no panels) a timeline of marks."""

    kind: str
    title: str
    start: float
    end: float
    panels: tuple[Panel, ...] = ()
    marks: tuple[Mark, ...] = field(default_factory=tuple)

"""Draw a Figure as a PNG with matplotlib's Agg backend; imported only in the worker processes.

2× resolution (1,600 pixels wide), a white card with dark text so it reads on Slack's light and
dark themes, UTC times, units on every axis, a legend worst first.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

import matplotlib.dates as mdates
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as Canvas

from bot.graphs.spec import LEVELS, Figure, Panel

WIDTH_IN, DPI = 8.0, 200  # 1,600 px: twice an 800-point Slack preview
COLOURS = {"critical": "#E01E5A", "warning": "#E8A317", "ok": "#2EB67D"}
INFO = ("#1D6FB8", "#7A4FBF", "#5F6B7A", "#00A3A3")
INK, GRID = "#1D1C1D", "#D9D9D9"


def render(figure: Figure, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes."""
    if figure.panels:
        fig = _panels(figure)
    else:
        fig = _timeline(figure)
    buffer = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="white", metadata=_metadata(figure))
    return buffer.getvalue()


def _metadata(figure: Figure) -> dict[str, str | None]:
    """PNG text chunks: the title, and each mark as `ISO time  label` (what the picture shows)."""
    marks = "\n".join(f"{_when(m.at):%Y-%m-%dT%H:%M:%SZ}  {m.label}" for m in figure.marks)
    return {"Software": None, "Title": figure.title, "Description": marks or None}


def _when(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _x(t: float) -> float:
    """A unix time as matplotlib's date number (days since 1970), without making datetimes."""
    return t / 86400.0


def _panels(figure: Figure):
    count = len(figure.panels)
    panel_in = 2.1 if count <= 2 else 1.6
    height = 1.1 + panel_in * count
    fig = Canvas(figsize=(WIDTH_IN, height))
    # fixed margins: tight_layout would cost a whole extra draw
    fig.subplots_adjust(
        left=0.09, right=0.98, top=1 - 0.6 / height, bottom=0.5 / height, hspace=0.45
    )
    axes = fig.subplots(count, 1, sharex=True, squeeze=False)
    fig.suptitle(figure.title, color=INK, fontsize=11, x=0.02, y=1 - 0.12 / height, ha="left")
    for ax, panel in zip(axes[:, 0], figure.panels, strict=True):
        _panel(ax, panel, figure)
    _time_axis(axes[-1, 0], figure)
    return fig


def _panel(ax, panel: Panel, figure: Figure) -> None:
    ranked = sorted(panel.lines, key=lambda line: LEVELS.index(line.level))
    spare = iter(INFO)
    for line in ranked:
        colour = COLOURS.get(line.level) or next(spare, INFO[-1])
        on_top = 10 - LEVELS.index(line.level)  # the legend lists worst first; worst drawn last
        ax.plot(
            [_x(t) for t in line.times],
            line.values,
            color=colour,
            lw=1.6,
            label=line.label,
            zorder=on_top,
        )
    if panel.threshold is not None:
        ax.axhline(panel.threshold, color=COLOURS["critical"], lw=1, ls="--", label="threshold")
    for mark in figure.marks:
        colour = COLOURS.get(mark.level, INFO[2])
        ax.axvline(_x(mark.at), color=colour, lw=1.2, ls=":", label=mark.label)
    if panel.title != figure.title:
        ax.set_title(panel.title, color=INK, fontsize=9, loc="left")
    ax.set_ylabel(panel.unit, color=INK, fontsize=8)
    ax.set_ylim(bottom=0)
    ax.grid(True, color=GRID, lw=0.6)
    ax.tick_params(colors=INK, labelsize=7)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize=7, frameon=True, framealpha=0.9)


def _time_axis(ax, figure: Figure) -> None:
    ax.set_xlim(_x(figure.start), _x(figure.end))
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(tz=UTC, maxticks=8))
    hours = (figure.end - figure.start) / 3600
    ax.xaxis.set_major_formatter(
        mdates.DateFormatter("%H:%M" if hours <= 24 else "%d %b %H:%M", tz=UTC)
    )
    ax.set_xlabel("time (UTC)", color=INK, fontsize=8)


def _timeline(figure: Figure):
    height = 1.6 + 0.22 * len(figure.marks)
    fig = Canvas(figsize=(WIDTH_IN, height))
    ax = fig.subplots()
    fig.suptitle(figure.title, color=INK, fontsize=11, x=0.02, ha="left")
    rows = max(1, len(figure.marks))
    for row, mark in enumerate(figure.marks):
        colour = COLOURS.get(mark.level, INFO[0])
        y = rows - row
        ax.plot([_x(mark.at)], [y], "o", color=colour, ms=6)
        late = mark.at > (figure.start + figure.end) / 2  # label on the side with room
        ax.annotate(
            mark.label,
            (_x(mark.at), y),
            xytext=(-6 if late else 6, -3),
            textcoords="offset points",
            ha="right" if late else "left",
            fontsize=7,
            color=INK,
        )
    ax.set_ylim(0, rows + 1)
    ax.set_yticks([])
    ax.grid(True, axis="x", color=GRID, lw=0.6)
    ax.tick_params(colors=INK, labelsize=7)
    _time_axis(ax, figure)
    fig.subplots_adjust(left=0.02, right=0.98, top=1 - 0.6 / height, bottom=0.5 / height)
    return fig

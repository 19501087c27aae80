"""Draw a Figure as a PNG with matplotlib's Agg backend; imported only in the worker processes.

2× resolution (1,600 pixels wide), a white card with dark text so it reads on Slack's light and
dark themes, UTC times, units on every axis, a legend worst first.
"""

from __future__ import annotations

import functools
import io
from datetime import UTC, datetime

import matplotlib
import matplotlib.dates as mdates
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as Canvas
from matplotlib.ticker import FixedLocator
from PIL import Image, ImageColor
from PIL.PngImagePlugin import PngInfo

from bot.graphs.spec import LEVELS, Figure, Panel

WIDTH_IN, DPI = 8.0, 200  # 1,600 px: twice an 800-point Slack preview
COLOURS = {"critical": "#E01E5A", "warning": "#E8A317", "ok": "#2EB67D"}
INFO = ("#1D6FB8", "#7A4FBF", "#5F6B7A", "#00A3A3")
INK, GRID = "#1D1C1D", "#D9D9D9"
# This process draws nothing else, so its defaults are forge's: text from alerts, incidents and
# queues is drawn as written (a `$…$` would otherwise be parsed as TeX math, and a broken one
# cost the picture), and titles sit at a fixed height instead of every tick label being measured
# to place them.
matplotlib.rcParams.update({"text.parse_math": False, "axes.titley": 1.0})


def render(figure: Figure, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes."""
    fig = _panels(figure) if figure.panels else _timeline(figure)
    fig.set_dpi(dpi)
    # a reused figure keeps its canvas, and with it the pixel buffer of that size
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return _png(canvas, figure, dpi)


def _png(canvas: FigureCanvasAgg, figure: Figure, dpi: int) -> bytes:
    """The drawing as an 8-bit palette PNG: half the bytes and a fifth of the time of true colour
    (zlib's level 3: level 6 would save a quarter of the bytes for three times the time)."""
    width, height = canvas.get_width_height(physical=True)
    rgba = Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    info = PngInfo()
    for key, value in _metadata(figure).items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    picture = rgba.convert("RGB").quantize(palette=_palette(), dither=Image.Dither.NONE)
    picture.save(buffer, "png", compress_level=3, pnginfo=info, dpi=(dpi, dpi))
    return buffer.getvalue()


@functools.cache
def _palette() -> Image.Image:
    """White first, then every colour forge draws with and its shades towards the white card (the
    shades of anti-aliased edges and text), at least 12 levels apart: Pillow matches a pixel by
    the centre of its 8-level box, so a closer palette would pull white and ink off their value."""
    shades: list[int] = [255, 255, 255]
    for ink in (INK, GRID, "#000000", *COLOURS.values(), *INFO):
        rgb = ImageColor.getrgb(ink)[:3]
        steps = max(1, round(max(255 - c for c in rgb) / 12))
        for step in range(steps, 0, -1):
            shades.extend(round(255 + (c - 255) * step / steps) for c in rgb)
    palette = Image.new("P", (1, 1))
    palette.putpalette(shades + [255] * (768 - len(shades)))
    return palette


def _metadata(figure: Figure) -> dict[str, str]:
    """PNG text chunks: the title, and each mark as `ISO time  label` (what the picture shows)."""
    marks = "\n".join(f"{_when(m.at):%Y-%m-%dT%H:%M:%SZ}  {m.label}" for m in figure.marks)
    return {"Title": figure.title} | ({"Description": marks} if marks else {})


def _when(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _x(t: float) -> float:
    """A unix time as matplotlib's date number (days since 1970), without making datetimes."""
    return t / 86400.0


def _panels(figure: Figure) -> Canvas:
    """The panels, drawn into this process's figure of as many panels (made once, then reused:
    building axes and their ticks is a third of a picture's time)."""
    count = len(figure.panels)
    fig = _layout(count)
    height = fig.get_figheight()
    fig.suptitle(figure.title, color=INK, fontsize=11, x=0.02, y=1 - 0.12 / height, ha="left")
    for ax, panel in zip(fig.axes, figure.panels, strict=True):
        _clear(ax)
        _panel(ax, panel, figure)
    _time_axis(fig.axes[-1], figure)
    return fig


@functools.cache  # one per panel count, for the life of the worker
def _layout(count: int) -> Canvas:
    """An empty figure of `count` panels sharing one time axis, with fixed margins."""
    height = 1.1 + (2.1 if count <= 2 else 1.6) * count
    fig = Canvas(figsize=(WIDTH_IN, height))
    # fixed margins: tight_layout would cost a whole extra draw
    fig.subplots_adjust(
        left=0.09, right=0.98, top=1 - 0.6 / height, bottom=0.5 / height, hspace=0.45
    )
    axes = fig.subplots(count, 1, sharex=True, squeeze=False)[:, 0]
    for ax in axes:
        ax.grid(True, color=GRID, lw=0.6)
        ax.tick_params(colors=INK, labelsize=7)
        # units in one column left of tick labels of up to six characters (larger go to 1e6
        # notation), instead of measuring every label on every picture to place them
        ax.yaxis.set_label_coords(-0.07, 0.5)
    for ax in axes[:-1]:  # no time label above the last panel: nothing to place by tick sizes
        ax.xaxis.set_label_coords(0.5, 0)
    return fig


def _clear(ax) -> None:
    """Take the previous picture's lines, legend and title off a reused panel."""
    for line in list(ax.lines):
        line.remove()
    if legend := ax.get_legend():
        legend.remove()
    ax.set_title("", loc="left")


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
    ax.relim()  # this picture's lines only, on a reused panel
    ax.set_autoscaley_on(True)
    ax.autoscale_view(scalex=False)
    ax.set_ylim(bottom=0)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize=7, frameon=True, framealpha=0.9)


def _time_axis(ax, figure: Figure) -> None:
    ax.set_xlim(_x(figure.start), _x(figure.end))
    # the panels share one time axis: find its ticks once, not once per panel and tick kind
    automatic = mdates.AutoDateLocator(tz=UTC, maxticks=8)
    automatic.set_axis(ax.xaxis)
    ax.xaxis.set_major_locator(FixedLocator(automatic()))
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

"""The graphs' arithmetic: range-query steps, sparklines, the trend line, alert expressions."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from bot.alerts.graph import RULES, expression, split
from bot.backends.prometheus import MAX_POINTS, label_value, points_of, step_for
from bot.config.settings import Config
from bot.graphs.sparkline import BARS, sparkline
from bot.graphs.spec import Figure, Line, Mark, Panel
from bot.text.trend import change, direction, jobs

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("window", [timedelta(minutes=5), timedelta(hours=6), timedelta(days=7)])
@pytest.mark.parametrize("finest", [0.1, 1.0, 15.0])
def test_a_step_never_asks_for_more_than_11000_points_nor_finer_than_the_scrape(window, finest):
    """Every window from 5 minutes to 7 days at every scrape interval stays within both limits."""
    step = step_for(window, finest)
    assert step >= finest
    assert points_of(window, step) <= MAX_POINTS
    assert points_of(window, step_for(window, finest, points=50_000)) <= MAX_POINTS


def test_a_label_value_is_quoted_for_promql():
    """Quotes and backslashes in a queue name cannot end the matcher."""
    assert label_value('a"b\\c') == '"a\\"b\\\\c"'


def test_a_sparkline_rises_where_the_data_rises_and_keeps_gaps():
    """Lowest value to the lowest bar, highest to the highest; NaN is a blank."""
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == BARS
    assert sparkline([5, 5, 5]) == BARS[0] * 3
    assert sparkline([0, math.nan, 7]) == BARS[0] + " " + BARS[-1]
    assert sparkline([]) == "(no data)"
    wide = sparkline([0.0] * 300 + [9.0] * 100, width=40)
    assert len(wide) == 40 and wide.startswith(BARS[0] * 29) and wide.endswith(BARS[-1] * 10)


def test_the_trend_says_from_what_to_what_in_how_long():
    """`DLQ 0 → 1,520 in 40 min`: the move's start and end, not the whole window."""
    times = [i * 60.0 for i in range(121)]
    values = [0.0] * 60 + [38.0 * i for i in range(1, 41)] + [1520.0] * 21
    assert change("DLQ", times, values, jobs) == "DLQ 0 → 1,520 in 40 min"
    assert change("waiting", times, [3.0] * 121, jobs) is None
    assert direction(times, values) == "steady"
    assert direction(times, [float(i) for i in range(121)]) == "rising"
    assert direction(times, [float(-i) for i in range(121)]) == "falling"


def test_the_card_graphs_rules_are_deploys_rules():
    """The catalog's expressions are deploy/prometheus/queue-alerts.yml's, rule for rule."""
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "queue-alerts.yml").read_text())
    deployed = {r["alert"]: r["expr"].strip() for g in rules["groups"] for r in g["rules"]}
    assert RULES == deployed


def test_an_alert_expression_comes_from_the_catalog_or_the_generator_url():
    """The catalog first; an unknown alert's `g0.expr`; a threshold split off a simple rule."""
    config = Config()
    alert = {"alertname": "BullMQDeadLetterQueueHigh", "generator_url": ""}
    assert expression(config, alert) == "crm_queue_jobs_dlq_total > 0"
    url = "http://prom:9090/graph?g0.expr=up%7Bjob%3D%22api%22%7D+%3C+1&g0.tab=1"
    assert expression(config, {"alertname": "Custom", "generator_url": url}) == 'up{job="api"} < 1'
    assert expression(config, {"alertname": "Custom", "generator_url": "not a url"}) is None
    assert split("crm_queue_lag_seconds > 300") == ("crm_queue_lag_seconds", 300.0)
    compound = "crm_queue_waiting > 10 and crm_queue_active == 0"
    assert split(compound) == (compound, None)


def _two_panels(title: str, top: float, threshold: float | None, marks: int) -> Figure:
    start = 1_800_000_000.0
    times = tuple(start + 60 * i for i in range(61))
    rising = Line(title, times, tuple(top * i / 60 for i in range(61)), "critical")
    flat = Line("waiting", times, tuple(top / 3 for _ in times))
    return Figure(
        "queue",
        title,
        start,
        start + 3600,
        (Panel("Jobs", "jobs", (rising, flat)), Panel("Lag", "s", (flat,), threshold)),
        tuple(Mark(start + 600 * (n + 1), f"mark {n}", "warning") for n in range(marks)),
    )


def test_a_reused_figure_draws_exactly_what_a_new_one_draws():
    """A worker redraws one figure per panel count: nothing of the previous picture (lines,
    threshold, marks, legend, scale, title) may remain in the next."""
    pytest.importorskip("matplotlib")
    from bot.graphs import draw

    second = _two_panels("second", 40.0, None, 0)
    draw._layout.cache_clear()
    fresh = draw.render(second)
    draw._layout.cache_clear()
    draw.render(_two_panels("first", 9000.0, 120.0, 2))
    assert draw.render(second) == fresh


def test_text_from_alerts_and_incidents_is_drawn_as_written_never_as_tex():
    """A title or label holding `$…$` (an alert label, an incident title) is plain text: a broken
    formula must not cost the picture, and a whole one is not typeset."""
    pytest.importorskip("matplotlib")
    from bot.graphs import draw

    hostile = _two_panels(r"$\frac{1}{$ and $x^{2}$", 10.0, 5.0, 1)
    png = draw.render(hostile)
    assert png.startswith(b"\x89PNG") and r"$\frac{1}{$" in png.decode("latin-1")

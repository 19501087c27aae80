"""Alertmanager poison: an alert the state store would choke on is cleaned or refused alone, 503
means only a state store that is down, and the body cap fits what deploy/ lets Alertmanager send."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bot.alerts.webhook import NOTIFICATION_CAP
from tests.conftest import running_forge
from tests.scenario.test_alerts import posts, settled, shown, stored
from tests.support.alert_fixtures import alert, bot, notification, send, settings_for  # noqa: F401

pytestmark = pytest.mark.integration
NUL = "\x00"


async def annotations(bot, name: str) -> dict:
    """The stored annotations of the alert with this name."""
    pool = await bot.forge.store.pool()
    value = await pool.fetchval("SELECT annotations FROM forge.alerts WHERE alertname = $1", name)
    return json.loads(value)


async def test_a_nul_character_is_cleaned_recorded_and_said_on_the_card(bot):
    """NUL in a label and an annotation: 200 (not 503), recorded with U+FFFD, the answer and the
    card say forge cleaned it."""
    poisoned = alert(description=f"disk{NUL}full")
    poisoned["labels"]["instance"] = f"db{NUL}1"
    status, body = await send(bot, notification([poisoned]))
    assert status == 200 and body["alerts"] == 1
    [cleaned] = body["cleaned"]
    assert cleaned["index"] == 0 and "annotations.description" in " ".join(cleaned["notes"])
    notes = await annotations(bot, "QueueDLQJobsPresent")
    assert notes["description"] == "disk\ufffdfull" and "labels.instance" in notes["forge.cleaned"]
    [card] = await settled(bot)
    assert "forge cleaned this alert" in shown(card)


async def test_one_unreadable_alert_is_refused_by_name_and_the_others_recorded(bot):
    """Three alerts: one fine, one starting at an instant that exists only east of UTC (clamped,
    noted), one whose start is year 0 (refused, named); 200, two recorded."""
    clamped = alert("QueueHighLag", queue="email")
    clamped["startsAt"] = "0001-01-01T00:00:00+01:00"
    unreadable = alert("QueuePaused", queue="email")
    unreadable["startsAt"] = "0000-06-01T00:00:00Z"
    status, body = await send(bot, notification([alert(), clamped, unreadable], group="g"))
    assert status == 200 and body["alerts"] == 2
    [refused] = body["refused"]
    assert (refused["index"], refused["alertname"]) == (2, "QueuePaused")
    assert "startsAt" in refused["reason"]
    [cleaned] = body["cleaned"]
    assert cleaned["alertname"] == "QueueHighLag" and "out of range" in cleaned["notes"][0]
    pool = await bot.forge.store.pool()
    start = await pool.fetchval(
        "SELECT starts_at FROM forge.alerts WHERE alertname = 'QueueHighLag'"
    )
    assert start == datetime(1, 1, 1, 0, 0, 1, tzinfo=UTC) and await stored(bot) == 2


async def test_the_only_503_is_a_state_store_that_is_down(state_dsn, slack):
    """The same poisoned notification: 503 while the state store is really down (so Alertmanager
    retries), 200 once it is up."""
    poisoned = notification([alert(description=f"x{NUL}y"), alert("QueueHighLag")], group="g")
    down = "postgresql://postgres@127.0.0.1:9/nowhere"
    async with running_forge(settings_for(down, slack.url), slack) as bot:
        status, body = await send(bot, poisoned)
        assert status == 503 and "state store" in body["error"]
    async with running_forge(settings_for(state_dsn, slack.url), slack) as bot:
        status, body = await send(bot, poisoned)
        assert status == 200 and body["alerts"] == 2


def worst_alert(n: int) -> dict:
    """An alert at deploy/'s limits: 19 labels of 64-character names and 128-byte values, four
    280-byte annotations, every value byte one JSON writes as a six-byte escape."""
    escaped = "\x01"
    labels = {"alertname": f"Storm{n}", "queue": "email", "severity": "warning"}
    labels |= {f"l{i:02d}".ljust(64, "x"): escaped * 128 for i in range(16)}
    notes = {k: escaped * 280 for k in ("summary", "description", "runbook", "dashboard")}
    return alert(f"Storm{n}", **notes) | {"labels": labels, "fingerprint": f"{n:016x}"}


async def test_the_largest_notification_deploy_allows_is_recorded_and_a_larger_one_is_413(
    state_dsn, slack
):
    """1,000 alerts at deploy/'s limits (over 20 MB, five times the old 4 MB cap) are recorded; one
    byte past the cap is 413, which Alertmanager does not retry, and records nothing."""
    settings = settings_for(state_dsn, slack.url, config={"channels": {}})
    async with running_forge(settings, slack) as bot:
        body = json.dumps(notification([worst_alert(n) for n in range(1000)])).encode()
        assert 20_000_000 < len(body) <= NOTIFICATION_CAP
        status, answer = await send(bot, body)
        assert status == 200 and answer["alerts"] == 1000 and await stored(bot) == 1000
        too_large = json.dumps(notification([alert("Other")], group="other")).encode()
        too_large += b" " * (NOTIFICATION_CAP + 1 - len(too_large))
        status, answer = await send(bot, too_large)
        assert status == 413 and "larger than" in answer["error"]
        assert await stored(bot) == 1000 and not posts(bot)

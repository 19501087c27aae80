"""The real Alertmanager (deploy/'s config) against forge's webhook: a poisoned alert is delivered
once and shown cleaned, a 5 MB storm is recorded whole, and past the cap Alertmanager gets a 413 it
does not retry."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta

import httpx
import pytest

from tests.conftest import running_forge
from tests.integration.test_alerts_live import cards, until
from tests.support.alert_fixtures import TOKEN, settings_for
from tests.support.alertmanager_fixture import SKIP_REASON, Alertmanager, now, unavailable

pytestmark = [pytest.mark.integration, pytest.mark.skipif(unavailable(), reason=SKIP_REASON)]


def push_all(manager: Alertmanager, alerts: list[dict]) -> None:
    """Post many alerts to Alertmanager's API in one request, as one Prometheus evaluation would."""
    httpx.post(manager.url + "/api/v2/alerts", json=alerts, timeout=30).raise_for_status()


def webhook_counts(manager: Alertmanager) -> dict[str, float]:
    """Alertmanager's own counters for its webhook integration: flushes and HTTP requests."""
    text = httpx.get(manager.url + "/metrics", timeout=5).text
    counts = {}
    for name in (
        "alertmanager_notifications_total",
        "alertmanager_notifications_failed_total",
        "alertmanager_notification_requests_total",
        "alertmanager_notification_requests_failed_total",
    ):
        found = re.search(rf'^{name}{{[^}}]*integration="webhook"[^}}]*}} (\S+)$', text, re.M)
        counts[name.removeprefix("alertmanager_")] = float(found.group(1)) if found else 0.0
    return counts


def lag_alert(instance: str, **annotations: str) -> dict:
    """A QueueHighLag alert on `email` for one instance, started three minutes ago."""
    return {
        "labels": {"alertname": "QueueHighLag", "queue": "email", "instance": instance},
        "annotations": {"summary": "late", **annotations},
        "startsAt": (now() - timedelta(minutes=3)).isoformat(),
    }


async def recorded(bot) -> int:
    """Alerts in the state store."""
    pool = await bot.forge.store.pool()
    return await pool.fetchval("SELECT count(*) FROM forge.alerts")


async def test_a_nul_alert_is_delivered_once_and_its_card_says_it_was_cleaned(state_dsn, slack):
    """An annotation with NUL, pushed to Alertmanager: forge answers 200 on the first request (no
    retry), and the card shows the alert and that forge cleaned it."""
    async with running_forge(settings_for(state_dsn, slack.url), slack) as bot:
        manager = Alertmanager(bot.url, TOKEN)
        try:
            await asyncio.to_thread(manager.wait_ready)
            await asyncio.to_thread(push_all, manager, [lag_alert("db1", description="a\x00b")])
            await until(lambda: len(cards(slack)) == 1, 15, "a card")
            counts = await asyncio.to_thread(webhook_counts, manager)
        finally:
            manager.stop()
    card = json.dumps(cards(slack)[0].args, ensure_ascii=False)
    assert "QueueHighLag" in card and "forge cleaned this alert" in card
    assert counts["notification_requests_total"] == 1
    assert counts["notification_requests_failed_total"] == 0


async def test_a_storm_larger_than_four_megabytes_is_recorded_whole(state_dsn, slack):
    """1,000 alerts with 5 KB annotations: Alertmanager sends one notification of about 5.5 MB,
    and forge records all of it."""
    settings = settings_for(state_dsn, slack.url, config={"channels": {}})
    async with running_forge(settings, slack) as bot:
        manager = Alertmanager(bot.url, TOKEN)
        try:
            await asyncio.to_thread(manager.wait_ready)
            storm = [lag_alert(f"db{n}", description="d" * 5000) for n in range(1000)]
            await asyncio.to_thread(push_all, manager, storm)
            deadline = asyncio.get_running_loop().time() + 30
            while await recorded(bot) < 1000:
                assert asyncio.get_running_loop().time() < deadline, await recorded(bot)
                await asyncio.sleep(0.2)
            counts = await asyncio.to_thread(webhook_counts, manager)
        finally:
            manager.stop()
    assert counts["notification_requests_failed_total"] == 0


async def test_past_the_cap_alertmanager_gets_a_413_and_does_not_retry_it(state_dsn, slack):
    """With a 64 KiB cap, notifications of alerts over 70 KB each are answered 413: one request
    per flush (no retries), nothing recorded."""
    settings = settings_for(
        state_dsn, slack.url, config={"alerts": {"max_notification_bytes": 65536}}
    )
    async with running_forge(settings, slack) as bot:
        manager = Alertmanager(bot.url, TOKEN)
        try:
            await asyncio.to_thread(manager.wait_ready)
            large = [lag_alert(f"db{n}", description="d" * 70_000) for n in range(3)]
            await asyncio.to_thread(push_all, manager, large)
            deadline = asyncio.get_running_loop().time() + 20
            while (await asyncio.to_thread(webhook_counts, manager))[
                "notifications_failed_total"
            ] < 2:
                assert asyncio.get_running_loop().time() < deadline, "no failed flush"
                await asyncio.sleep(0.2)
            counts = await asyncio.to_thread(webhook_counts, manager)
            assert await recorded(bot) == 0 and not cards(slack)
        finally:
            manager.stop()
    # each failed flush made exactly one request: a 503 would have been retried within the flush
    assert counts["notification_requests_failed_total"] == counts["notifications_failed_total"]

"""Alertmanager's webhook into alert cards: authentication, one card per group, repeats, resolution,
routing, the runbook's buttons run for the clicker, storms paced and lossless."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.conftest import running_forge
from tests.support.alert_fixtures import T0, alert, bot, later, notification, send, settings_for  # noqa: F401
from tests.support.services import redis_url
from tests.support.slack_flow import private

pytestmark = pytest.mark.integration


async def stored(bot, sql: str = "SELECT count(*) FROM forge.alerts"):
    """One value from the state store."""
    pool = await bot.forge.store.pool()
    return await pool.fetchval(sql)


def posts(bot, channel: str = "C0ALERTS") -> list:
    """Top-level messages forge posted in a channel."""
    return [
        c
        for c in bot.slack.calls_to("chat.postMessage")
        if c.args.get("channel") == channel and not c.args.get("thread_ts")
    ]


def shown(call) -> str:
    """Everything a posted or edited card shows."""
    return json.dumps(call.args.get("blocks"), ensure_ascii=False) + call.args.get("text", "")


async def settled(bot, method: str = "chat.postMessage", count: int = 1) -> list:
    """Wait for the publisher, then a little more so nothing further is on its way."""
    calls = await bot.slack.wait_for(method, count, timeout=5)
    await asyncio.sleep(0.3)
    return calls


@pytest.mark.parametrize("token", [None, "wrong-token", "am-test-token-4f9c2"])
async def test_webhook_refuses_anything_but_the_bearer_token(bot, token):
    """No token, a wrong one or a prefix of the right one: 401, nothing recorded, nothing posted."""
    status, _ = await send(bot, notification([alert()]), token=token)
    assert status == 401 and await stored(bot) == 0 and not bot.slack.calls


async def test_webhook_refuses_what_is_not_a_v4_payload(bot):
    """Version 3, missing alerts, garbage: 400 with the field named, nothing recorded."""
    for payload in (
        {**notification([alert()]), "version": "3"},
        {"version": "4", "groupKey": "g"},
        b"{not json",
    ):
        status, body = await send(bot, payload)
        assert status == 400 and "Alertmanager v4" in body["error"]
    assert await stored(bot) == 0


async def test_firing_alert_gets_a_card_with_runbook_and_buttons(bot):
    """QueueDLQJobsPresent on `email`: name, severity, summary, queue, start, links, steps, and
    buttons for `queue health email`, `dlq list email` and `dlq clear email` (danger)."""
    status, body = await send(bot, notification([alert(runbook_url="https://wiki/dlq")]))
    assert status == 200 and body == {"status": "accepted", "alerts": 1}
    [card] = await settled(bot)
    text = shown(card)
    assert (
        card.args["channel"] == "C0ALERTS"
        and "FIRING: QueueDLQJobsPresent on `email` — warning" in text
    )
    assert (
        "QueueDLQJobsPresent on email" in text
        and "dlq retry" in text
        and "https://wiki/dlq|Runbook" in text
    )
    buttons = [e for b in card.args["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [(b["value"], b.get("style")) for b in buttons] == [
        ("queue health email", None),
        ("dlq list email", None),
        ("dlq clear email", "danger"),
    ]


async def test_repeats_update_resolution_closes_and_refiring_opens_a_new_card(bot):
    """The same alert again changes nothing; a new description edits the card; resolved edits it
    with the duration; firing again (a new start) is a new card."""
    await send(bot, notification([alert()]))
    [card] = await settled(bot)
    ts = card.response["ts"]
    await send(bot, notification([alert()]))
    await asyncio.sleep(0.5)
    assert len(posts(bot)) == 1 and not bot.slack.calls_to("chat.update")

    await send(bot, notification([alert(description="now 12 jobs")]))
    [edit] = await settled(bot, "chat.update")
    assert edit.args["ts"] == ts and "now 12 jobs" in shown(edit)

    await send(bot, notification([alert(status="resolved", end=later(12))]))
    edits = await settled(bot, "chat.update", 2)
    assert "RESOLVED: QueueDLQJobsPresent on `email` after 12 min" in shown(edits[-1])
    assert not [
        b for b in edits[-1].args["blocks"] if b["type"] == "actions"
    ]  # no buttons on a resolved card

    await send(
        bot, notification([alert(status="resolved", end=later(12))])
    )  # Alertmanager repeats it
    await asyncio.sleep(0.5)
    assert len(bot.slack.calls_to("chat.update")) == 2

    await send(bot, notification([alert(start=later(30))]))
    cards = await settled(bot, "chat.postMessage", 2)
    assert len(posts(bot)) == 2 and cards[-1].response["ts"] != ts
    assert await stored(bot) == 2


async def test_a_resolution_never_seen_firing_posts_nothing(bot):
    """forge was down while it fired: the resolution alone opens no card and records nothing."""
    status, _ = await send(bot, notification([alert(status="resolved", end=later(5))]))
    await asyncio.sleep(0.5)
    assert status == 200 and await stored(bot) == 0 and not bot.slack.calls


async def test_routes_pick_the_channel_by_label(bot):
    """severity=critical goes to C0PAGE by the config's route; the rest to channels.alerts."""
    await send(
        bot, notification([alert("QueueCriticalWaitingCount", severity="critical")], group="g-crit")
    )
    await settled(bot)
    assert len(posts(bot, "C0PAGE")) == 1 and not posts(bot, "C0ALERTS")


async def test_card_buttons_run_with_the_clickers_own_permissions(bot):
    """`queue health email` runs for a viewer; `dlq clear email` is refused to a viewer and opens
    the typed confirmation for an operator; the button's text is the command, checked like a typed
    one."""
    await send(bot, notification([alert()]))
    [card] = await settled(bot)
    await bot.client.click(
        "forge_run:2",
        "dlq clear email",
        user="U0VIEW",
        channel="C0ALERTS",
        message_ts=card.response["ts"],
    )
    await bot.settle()
    assert "needs the operator role" in private(bot) and not bot.slack.calls_to("views.open")
    await bot.client.click(
        "forge_run:2",
        "dlq clear email",
        user="U0OPS",
        channel="C0ALERTS",
        message_ts=card.response["ts"],
    )
    await bot.settle()
    [dialog] = bot.slack.calls_to("views.open")
    view = dialog.args["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert view["callback_id"] == "forge_confirm" and "dlq clear email" in json.dumps(
        view, ensure_ascii=False
    )


async def test_a_storm_of_500_alerts_is_one_card_and_a_file(bot):
    """500 alerts in one webhook: one card listing the first ten and saying how many more, every
    alert in the file in its thread, all 500 recorded."""
    alerts = [alert("QueueHighWaitingCount", queue=f"q{i}") for i in range(500)]
    status, _ = await send(bot, notification(alerts, group="storm"))
    assert status == 200
    [card] = await settled(bot)
    assert "and 490 more" in shown(card) and "FIRING: QueueHighWaitingCount" in shown(card)
    [upload] = await bot.slack.wait_for("files.completeUploadExternal", timeout=5)
    assert upload.args.get("thread_ts") == card.response["ts"] or "thread_ts" in json.dumps(
        upload.args
    )
    assert await stored(bot) == 500 and len(posts(bot)) == 1


async def test_200_webhooks_in_a_burst_post_one_card_per_group_paced_and_lose_nothing(
    state_dsn, slack
):
    """Four groups, 200 webhooks (Alertmanager re-sending growing groups): four cards, Slack calls
    to the channel at most about two a second as configured, and every one of the 200 alerts on its
    card in the end."""
    settings = settings_for(state_dsn, slack.url, config={"alerts": {"messages_per_second": 2}})
    async with running_forge(settings, slack) as bot:
        sent: dict[str, list[dict]] = {f"g{n}": [] for n in range(4)}
        for i in range(200):
            group = f"g{i % 4}"
            sent[group].append(alert("QueueHighLag", queue=f"{group}-q{i}"))
            status, _ = await send(bot, notification(sent[group], group=group))
            assert status == 200
        await asyncio.sleep(0.2)
        assert await stored(bot) == 200
        pool = await bot.forge.store.pool()
        for _ in range(100):
            if not await pool.fetchval(
                "SELECT count(*) FROM forge.alert_cards WHERE version > rendered"
            ):
                break
            await asyncio.sleep(0.1)
        to_channel = [
            c
            for c in slack.calls
            if c.args.get("channel") == "C0ALERTS"
            and c.method in ("chat.postMessage", "chat.update", "files.completeUploadExternal")
        ]
        assert len(posts(bot)) == 4
        gaps = [b.at - a.at for a, b in zip(to_channel, to_channel[1:], strict=False)]
        assert min(gaps) >= 0.45, gaps
        last = {}
        for c in to_channel:
            if c.method in ("chat.postMessage", "chat.update"):
                last[c.args.get("ts") or c.response["ts"]] = shown(c)
        assert (
            sum(" more: every alert" in text and "(50 firing)" in text for text in last.values())
            == 4
        )


async def test_state_store_down_answers_503_so_alertmanager_retries(slack):
    """Nothing can be recorded: 503 (Alertmanager retries on 5xx), never a silent 200."""
    settings = settings_for("postgresql://postgres@127.0.0.1:9/none", slack.url)
    async with running_forge(settings, slack) as bot:
        status, body = await send(bot, notification([alert()]))
    assert status == 503 and "retry" in body["error"]


async def test_alerts_and_runbook_commands(bot):
    """`alerts` lists what fires (no Prometheus: said, not fatal); `runbook X` gives the steps."""
    await send(bot, notification([alert()]))
    await settled(bot)
    outcome = await bot.forge.dispatcher.run(_cli("alerts"))
    assert outcome.result.data["firing"][0]["alertname"] == "QueueDLQJobsPresent"
    assert "Prometheus is not reachable" in outcome.result.text
    entry = (await bot.forge.dispatcher.run(_cli("runbook QueueDLQJobsPresent"))).result
    assert "dlq clear {queue}" in entry.data["commands"] and entry.summary
    listing = (await bot.forge.dispatcher.run(_cli("runbook"))).result
    assert {
        "QueueDLQJobsPresent",
        "BackendDown",
        "PostgreSQLSlowQueries",
        "HighCacheMissRate",
        "ElasticsearchHealthRed",
        "QueueNoActiveWorkers",
    } <= set(listing.data["alerts"])
    missing = await bot.forge.dispatcher.run(_cli("runbook QueueDLQ"))
    assert missing.kind == "failed" and "QueueDLQJobsPresent" in missing.message


def _cli(text: str):  # type: ignore[no-untyped-def]
    from bot.core.dispatch import Invocation

    return Invocation(text, "U0VIEW", "C0OPS", source="cli")


async def test_metrics_export_the_queue_gauges_clientforge_rules_expect(state_dsn, slack):
    """`/metrics` has crm_queue_* from Redis: a DLQ job shows in a gauge that drops once gone."""
    from tests.conftest import empty_redis

    url = redis_url(9)
    settings = settings_for(
        state_dsn,
        slack.url,
        redis_url=url,
        config={"queues": ["email"], "alerts": {"gauge_cache_seconds": 0}},
    )
    async with empty_redis(url) as rdb, running_forge(settings, slack) as bot:
        await rdb.hset(
            "bull:email:7", mapping={"name": "send", "data": "{}", "atm": 3, "timestamp": 1}
        )
        await rdb.zadd("bull:email:failed", {"7": 1})
        await rdb.rpush("bull:email:wait", "8")
        await rdb.set("bull:email:id", 8)
        status, text = await bot.get("/metrics")
        assert status == 200 and 'crm_queue_jobs_dlq_total{queue="email"} 1.0' in text
        assert (
            'crm_queue_waiting{queue="email"} 1.0' in text and "forge_queue_metrics_up 1.0" in text
        )
        await rdb.delete("bull:email:failed", "bull:email:7")
        _, text = await bot.get("/metrics")
        assert 'crm_queue_jobs_dlq_total{queue="email"} 0.0' in text

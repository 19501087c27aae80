"""The mission's example over Slack HTTP: Node BullMQ 5 fails 30 `email` jobs,
`/forge dlq clear email` needs a typed confirmation and a second person, then removes them once;
hostile arguments change nothing."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from bot.config.settings import Config
from commands.queues import bullmq as bullmq_redis
from tests.conftest import empty_redis, make_settings, running_forge
from tests.fakes.bullmq_node import NodeBullMQ, node_unavailable_reason
from tests.support.services import redis_url
from tests.support.slack_flow import click, confirm, open_dialog, private, rows

URL = redis_url(12)
_why = node_unavailable_reason()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(_why is not None, reason=f"Node BullMQ harness: {_why}"),
]
NODE = NodeBullMQ(5, URL)
CONFIG = Config.model_validate(
    {
        "roles": {"viewer": ["*"], "operator": ["U0OPS"], "admin": ["U0ADMIN"]},
        "approvers": ["U0LEAD"],
        "channels": {"destructive": ["C0OPS"]},
        "queues": ["email", "data-sync", "notifications"],
    }
)
INJECTIONS = [
    "queue health 'bull:*'",
    "queue pause 'bull:email'",
    "queue resume 'email; FLUSHALL'",
    "queue inject-failure 'email*' 3",
    "queue inject-failure email 1000",
    "queue inject-failure email '3; FLUSHALL'",
    "dlq list '*'",
    "dlq list email --page '1;DEL x'",
    "dlq list email --limit 1000",
    "dlq show email '../../etc'",
    "dlq show 'email*' 1",
    "dlq export 'email:failed'",
    "dlq retry email --job '1 2'",
    "dlq retry 'email\"; FLUSHALL'",
    'dlq clear email --older-than "1 day\'; DROP"',
    "dlq archive 'x*'",
    'dlq archive-export "\'; DROP TABLE forge.approvals; --"',
]


@pytest.fixture
async def rdb() -> AsyncIterator[aioredis.Redis]:
    """Redis db 12, empty before and after the test."""
    async with empty_redis(URL) as client:
        yield client


@pytest.fixture
async def bot(state_dsn, slack, rdb):
    """forge over HTTP on db 12 with the Slack double; two people, one destructive channel."""
    bullmq_redis._discovered.pop(URL, None)  # queue discovery is cached per Redis URL
    settings = make_settings(
        CONFIG, redis_url=URL, forge_state_database_url=state_dsn, slack_api_url=slack.url
    )
    async with running_forge(settings, slack) as harness:
        yield harness


async def listing(rdb: aioredis.Redis) -> tuple[int, list[str]]:
    """DBSIZE and every key of the db, sorted."""
    return await rdb.dbsize(), sorted([k async for k in rdb.scan_iter(count=1000)])


async def failed(queue: str = "email") -> int:
    return (await NODE.counts(queue))["counts"]["failed"]


def health_row(blocks: list[dict], queue: str) -> dict[str, str]:
    """One queue's row of the `queue health` table block, by column name."""
    [table] = [b for b in blocks if b["type"] == "table"]
    header, *rows = [[cell.get("text", "") for cell in row] for row in table["rows"]]
    [row] = [r for r in rows if r[0] == queue]
    return dict(zip(header, row, strict=True))


async def test_dlq_clear_email_needs_the_typed_name_and_a_second_person(bot, rdb):
    """The dialog's dry run says 30 jobs; `emial` and self-approval are refused with nothing
    changed; U0LEAD's approval removes the 30 jobs once, the card says done, the result is in its
    thread, all of it audited."""
    await NODE.fail("email", 30, attempts=3)
    before = await listing(rdb)
    view = await open_dialog(bot, "dlq clear email")
    said = json.dumps(view["blocks"], ensure_ascii=False)
    assert "Would remove 30 DLQ jobs from `email`" in said and "Type email to confirm" in said

    wrong = await confirm(bot, view, "emial")
    assert wrong.json() == {
        "response_action": "errors",
        "errors": {"confirm": "Type `email` exactly to confirm."},
    }
    assert (
        await failed() == 30
        and await rows(bot) == []
        and not bot.slack.calls_to("chat.postMessage")
    )
    assert await listing(rdb) == before

    await confirm(bot, view, "email")
    [request] = await rows(bot)
    [card] = bot.slack.calls_to("chat.postMessage")
    card_ts = card.response["ts"]
    shown = json.dumps(card.args["blocks"], ensure_ascii=False)
    assert (
        request["status"] == "pending"
        and "dlq clear email" in shown
        and "Would remove 30 DLQ jobs" in shown
    )

    await click(bot, request["id"], "U0OPS", card_ts)
    assert "can't approve your own request" in private(bot)
    assert (
        await failed() == 30
        and (await rows(bot))[0]["status"] == "pending"
        and await listing(rdb) == before
    )

    await click(bot, request["id"], "U0LEAD", card_ts)
    assert await failed() == 0
    [done] = await rows(bot)
    assert (done["status"], done["decided_by"]) == ("succeeded", "U0LEAD")
    assert await rdb.keys("bull:email:[0-9]*") == [] and await rdb.zcard("bull:email:failed") == 0
    gone = {f"bull:email:{i}" for i in range(1, 31)} | {
        "bull:email:failed"
    }  # an emptied zset is no key
    assert (await listing(rdb))[1] == sorted(set(before[1]) - gone)
    updates = [
        c.args["text"] for c in bot.slack.calls_to("chat.update") if c.args.get("ts") == card_ts
    ]
    assert "done" in updates[-1]
    thread = [
        c.args["text"]
        for c in bot.slack.calls_to("chat.postMessage")
        if c.args.get("thread_ts") == card_ts
    ]
    assert len(thread) == 1 and "Removed 30 DLQ jobs from `email`" in thread[0]

    await click(bot, request["id"], "U0LEAD", card_ts)  # a second click runs nothing
    assert "already approved" in private(bot)
    assert await rows(bot, "SELECT count(*) AS n FROM forge.job_archive") == [(30,)]
    events = [r["event"] for r in await rows(bot, "SELECT event FROM forge.audit_log ORDER BY id")]
    assert {"approval_requested", "approved", "intent", "outcome"} <= set(events)
    assert events.count("intent") == events.count("outcome") == 1

    bot.slack.clear()
    await bot.client.slash("queue health", user="U0VIEW")
    await bot.settle()
    [post] = bot.slack.calls_to("chat.postMessage")
    row = health_row(post.args["blocks"], "email")
    assert (row["DLQ"], row["failed"], row["waiting"]) == ("0", "0", "0")


async def test_injection_in_every_argument_changes_nothing(bot, rdb):
    """Hostile args to queue and dlq commands: a short private error, no key changed, no request."""
    await NODE.fail("email", 3, attempts=3)
    await rdb.delete(
        "bull:email:stalled-check"
    )  # a worker throttle key with a 30 s TTL; it would expire midway
    before = await listing(rdb)
    for text in INJECTIONS:
        bot.slack.clear()
        await bot.client.slash(text, user="U0OPS", channel="C0OPS")
        await bot.settle()
        # slow commands (dlq export) post a ⏳ first and delete it when the error comes: nothing
        # stays in the channel
        assert bot.slack.messages("C0OPS") == [] and not bot.slack.calls_to("views.open"), text
        [reply] = bot.slack.responses
        assert len(reply["text"]) < 200 and re.match(
            r"❌ `.*` is not a (queue name|job id|batch id)|❓ Bad `", reply["text"]
        ), (text, reply["text"])
        assert reply.get("response_type", "ephemeral") == "ephemeral", text
    assert await listing(rdb) == before

    # Destructive: the queue is checked by the dry run, so the dialog opens with the error and no
    # field to type into; a forged submission of the exact text is refused too, before any request
    # is stored.
    bot.slack.clear()
    view = await open_dialog(bot, "dlq clear 'email; FLUSHALL'")
    assert "is not a queue name" in json.dumps(view["blocks"]) and "submit" not in view
    await confirm(bot, view, "email; FLUSHALL")
    assert "The dry run failed, so nothing was requested" in private(bot)
    assert not bot.slack.calls_to("chat.postMessage") and await rows(bot) == []
    assert await listing(rdb) == before and await failed() == 3

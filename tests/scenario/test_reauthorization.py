"""Re-authorization when an approved `dlq clear` is about to run: the approver's rights, the
requester's role, the channel rule and the environment are checked again at the click. A rule that
no longer holds refuses it with the reason on the card, audited, and the queue is untouched."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import redis.asyncio as aioredis

from bot.config.settings import Config
from commands.queues import bullmq as bullmq_redis
from tests.conftest import Harness, empty_redis, make_settings, running_forge
from tests.fakes.bullmq_node import NodeBullMQ, node_unavailable_reason
from tests.support.services import redis_url
from tests.support.slack_flow import click, confirm, open_dialog, private, rows

URL = redis_url(13)
_why = node_unavailable_reason()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(_why is not None, reason=f"Node BullMQ harness: {_why}"),
]
NODE = NodeBullMQ(5, URL)
RULES = {
    "roles": {"viewer": ["*"], "operator": ["S0ONCALL"], "admin": ["U0ADMIN"]},
    "approvers": ["U0LEAD", "S0LEADS"],
    "channels": {"destructive": ["C0OPS"]},
    "queues": ["email", "data-sync", "notifications"],
}


@pytest.fixture
async def rdb() -> AsyncIterator[aioredis.Redis]:
    """Redis db 13 with 4 failed `email` jobs; empty after the test."""
    async with empty_redis(URL) as client:
        await NODE.fail("email", 4, attempts=3)
        yield client


@asynccontextmanager
async def forge(state_dsn, slack, environment="staging", **changed) -> AsyncIterator[Harness]:
    """forge over HTTP on db 13 with the rules above (some `changed`), in `environment`."""
    bullmq_redis._discovered.pop(URL, None)  # queue discovery is cached per Redis URL
    settings = make_settings(
        Config.model_validate(RULES | changed),
        redis_url=URL,
        forge_state_database_url=state_dsn,
        slack_api_url=slack.url,
        forge_environment=environment,
    )
    async with running_forge(settings, slack) as harness:
        yield harness


@pytest.fixture
def groups(slack):
    """U0OPS is on call (operator); U0LEAD2 is an approver through the leads group."""
    slack.usergroups = {"S0ONCALL": ["U0OPS"], "S0LEADS": ["U0LEAD2"]}
    return slack.usergroups


async def request(bot) -> tuple[dict, str]:
    """U0OPS asks for `dlq clear email` in C0OPS; the pending row and its card's ts."""
    view = await open_dialog(bot, "dlq clear email")
    await confirm(bot, view, "email")
    [row] = await rows(bot)
    [card] = bot.slack.calls_to("chat.postMessage")
    assert row["status"] == "pending"
    return row, card.response["ts"]


async def refused_at_run(bot, row, card_ts: str, reason: str) -> None:
    """The request is closed unrun: the reason on its card and in the audit trail, queue as it
    was, no intent recorded."""
    [done] = await rows(bot)
    assert (done["status"], done["decided_by"]) == ("failed", "U0LEAD")
    assert done["outcome"].startswith("Not run: refused when it was to run:")
    assert reason in done["outcome"]
    card = [c for c in bot.slack.calls_to("chat.update") if c.args.get("ts") == card_ts][-1]
    shown = json.dumps(card.args["blocks"], ensure_ascii=False)
    assert "Not run: refused when it was to run" in shown and reason in shown
    assert not any(e["type"] == "actions" for e in card.args["blocks"]), "no buttons left"
    audit = await rows(
        bot,
        "SELECT event, outcome, actor_id, detail::text AS detail FROM forge.audit_log "
        "WHERE event IN ('authz_fail', 'intent', 'outcome') ORDER BY id",
    )
    [refusal] = audit
    detail = json.loads(refusal["detail"])
    assert (refusal["event"], refusal["outcome"], refusal["actor_id"]) == (
        "authz_fail",
        "denied",
        "U0OPS",
    )
    assert detail["approval_id"] == str(row["id"]) and reason in detail["reason"]
    assert (await NODE.counts("email"))["counts"]["failed"] == 4
    assert "Not run: refused when it was to run" in private(bot), "the approver is told too"


async def test_requester_who_left_the_on_call_group_is_refused(state_dsn, slack, groups, rdb):
    """U0OPS leaves S0ONCALL between request and approval: Slack says so at the click, though
    forge's group cache still remembers the old members; nothing runs."""
    async with forge(state_dsn, slack) as bot:
        row, card_ts = await request(bot)
        groups["S0ONCALL"] = []
        await click(bot, row["id"], "U0LEAD", card_ts)
        await refused_at_run(bot, row, card_ts, "no longer holds the operator role (now viewer)")


async def test_channel_taken_out_of_destructive_is_refused(state_dsn, slack, groups, rdb):
    """forge restarts with a config where C0OPS is no longer a destructive channel: the request
    made there is refused at the click."""
    async with forge(state_dsn, slack) as before:
        row, card_ts = await request(before)
    async with forge(state_dsn, slack, channels={"destructive": ["C0INCIDENTS"]}) as after:
        await click(after, row["id"], "U0LEAD", card_ts)
        await refused_at_run(after, row, card_ts, "may only be run in #C0INCIDENTS")


async def test_request_from_another_environment_is_refused(state_dsn, slack, groups, rdb):
    """A request made while forge ran as staging does not run once forge runs as production."""
    async with forge(state_dsn, slack) as before:
        row, card_ts = await request(before)
    async with forge(state_dsn, slack, environment="production") as after:
        await click(after, row["id"], "U0LEAD", card_ts)
        await refused_at_run(
            after, row, card_ts, "it was requested in staging, and forge now runs in production"
        )


async def test_approver_who_left_the_leads_group_cannot_approve(state_dsn, slack, groups, rdb):
    """U0LEAD2 leaves S0LEADS after the request: the click is refused and the request waits for
    a real approver, who then runs it once."""
    async with forge(state_dsn, slack) as bot:
        row, card_ts = await request(bot)
        groups["S0LEADS"] = []
        await click(bot, row["id"], "U0LEAD2", card_ts)
        assert "Only approvers may approve" in private(bot)
        assert (await rows(bot))[0]["status"] == "pending"
        assert (await NODE.counts("email"))["counts"]["failed"] == 4
        await click(bot, row["id"], "U0LEAD", card_ts)
        assert (await rows(bot))[0]["status"] == "succeeded"
        assert (await NODE.counts("email"))["counts"]["failed"] == 0

"""One path per request: a real `dlq clear email`, from slash command to approved execution, parses
its text once, resolves each person's role once per delivery and runs the dry run once, as counted
by `forge_request_steps_total` on /metrics."""

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
from tests.support.slack_flow import click, confirm, rows

URL = redis_url(13)
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
STEPS = ("parse", "role", "dry_run")


@pytest.fixture
async def rdb() -> AsyncIterator[aioredis.Redis]:
    """Redis db 13, empty before and after the test."""
    async with empty_redis(URL) as client:
        yield client


@pytest.fixture
async def bot(state_dsn, slack, rdb):
    """forge over HTTP on db 13 with the Slack double; one operator, one approver."""
    bullmq_redis._discovered.pop(URL, None)  # queue discovery is cached per Redis URL
    settings = make_settings(
        CONFIG, redis_url=URL, forge_state_database_url=state_dsn, slack_api_url=slack.url
    )
    async with running_forge(settings, slack) as harness:
        yield harness


async def steps(bot) -> dict[str, float]:
    """forge_request_steps_total by step, as /metrics says now."""
    status, body = await bot.get("/metrics")
    assert status == 200
    found = dict(re.findall(r'^forge_request_steps_total\{step="(\w+)"\} (\S+)$', body, re.M))
    return {step: float(found.get(step, 0)) for step in STEPS}


class Counted:
    """The steps each delivery added, read from /metrics around it."""

    def __init__(self, bot) -> None:
        self.bot = bot
        self.by_delivery: dict[str, dict[str, int]] = {}

    async def __call__(self, name: str, delivery) -> object:
        """Run one delivery and record the steps it added."""
        before = await steps(self.bot)
        outcome = await delivery
        after = await steps(self.bot)
        self.by_delivery[name] = {s: int(after[s] - before[s]) for s in STEPS}
        return outcome

    def total(self) -> dict[str, int]:
        """The steps of the whole request."""
        return {s: sum(d[s] for d in self.by_delivery.values()) for s in STEPS}


async def dialog(bot) -> dict:
    """The confirmation dialog, once its dry run is in."""
    await bot.client.slash("dlq clear email", user="U0OPS", channel="C0OPS")
    await bot.slack.wait_for("views.update")
    await bot.settle()
    [view] = bot.slack.views.values()
    return view


async def test_dlq_clear_parses_once_resolves_each_role_once_and_dry_runs_once(bot, rdb):
    """Slash, confirm and approve: one parse, one dry run whose preview the card shows, and one
    role resolution per person per delivery; the 5 failed jobs are removed once."""
    await NODE.fail("email", 5, attempts=3)
    count = Counted(bot)
    view = await count("slash", dialog(bot))
    assert "Would remove 5 DLQ jobs from `email`" in json.dumps(view["blocks"], ensure_ascii=False)
    await count("confirm", confirm(bot, view, "email"))
    [request] = await rows(bot)
    [card] = bot.slack.calls_to("chat.postMessage")
    assert "Would remove 5 DLQ jobs" in json.dumps(card.args["blocks"], ensure_ascii=False)
    await count("approve", click(bot, request["id"], "U0LEAD", card.response["ts"]))
    [done] = await rows(bot)
    assert done["status"] == "succeeded" and await rdb.zcard("bull:email:failed") == 0
    print("steps per delivery:", count.by_delivery, "total:", count.total())
    assert count.by_delivery == {
        "slash": {"parse": 1, "role": 1, "dry_run": 1},
        "confirm": {"parse": 0, "role": 1, "dry_run": 0},
        "approve": {"parse": 0, "role": 2, "dry_run": 0},
    }
    assert count.total() == {"parse": 1, "role": 4, "dry_run": 1}

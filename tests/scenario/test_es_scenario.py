"""`es` commands over signed Slack HTTP against the Elasticsearch 8.11 double: the reindex-and-swap
through the approval engine, the runbook's alias trap refused in the dialog, hostile arguments, and
a read command."""

from __future__ import annotations

import json
import re

import pytest

from bot.config.settings import Config
from commands.search import reindex as es_reindex
from tests.conftest import make_settings, running_forge
from tests.support.es_fixtures import clientforge, es  # noqa: F401  (fixture)
from tests.support.slack_flow import click, confirm, open_dialog, private, rows

pytestmark = pytest.mark.integration
CONFIG = Config.model_validate(
    {
        "roles": {"viewer": ["*"], "operator": ["U0OPS"], "admin": ["U0ADMIN"]},
        "approvers": ["U0LEAD"],
        "channels": {"destructive": ["C0OPS"]},
    }
)
SWAP = "es reindex contacts contacts-v2 --alias contacts-current"
INJECTIONS = [
    "es reindex 'contacts*' contacts-v2",
    "es reindex _all contacts-v2",
    "es reindex contacts 'v2,deals'",
    "es reindex contacts v2 --alias -contacts",
    "es reindex contacts 'v2; DELETE /contacts'",
    "es reindex ../contacts v2",
    "es reindex contacts v2 --alias '<!channel>'",
    "es reindex contacts V2",
]


@pytest.fixture
async def bot(state_dsn, slack, es, monkeypatch):
    """forge over HTTP on the ES and Slack doubles; ClientForge's indices, 3,000 contacts."""
    monkeypatch.setattr(es_reindex, "POLL_SECONDS", 0.02)
    clientforge(es, 3000)
    es.cluster.reindex_rate = 12_000
    settings = make_settings(
        CONFIG,
        elasticsearch_url=es.url,
        forge_state_database_url=state_dsn,
        slack_api_url=slack.url,
    )
    async with running_forge(settings, slack) as harness:
        yield harness


def final_texts(bot, thread_ts: str) -> list[str]:
    """Each thread reply's final text after edits (a ⏳ reply edited into a result counts once)."""
    final = {
        c.response["ts"]: c.args["text"]
        for c in bot.slack.calls_to("chat.postMessage")
        if c.args.get("thread_ts") == thread_ts and c.response
    }
    for edit in bot.slack.calls_to("chat.update"):
        if edit.args.get("ts") in final:
            final[edit.args["ts"]] = edit.args["text"]
    return list(final.values())


def changes(es) -> list[str]:
    """Requests that could change the cluster."""
    return [
        f"{r.method} {r.path}"
        for r in es.requests
        if r.method not in ("GET", "HEAD") and not r.path.endswith(("/_count", "/_refresh"))
    ]


async def test_reindex_and_swap_needs_the_typed_dest_and_a_second_person(bot, es):
    """The dialog shows the dry run; a wrong name and self-approval change nothing; U0LEAD's
    approval copies the 3,000 contacts once, checks counts and moves `contacts-current` in one
    `_aliases` call; a second click is no-op."""
    view = await open_dialog(bot, SWAP)
    said = json.dumps(view["blocks"], ensure_ascii=False)
    assert "Would copy 3,000 documents from `contacts` into a new index `contacts-v2`" in said
    assert "Type contacts-v2 to confirm" in said

    wrong = await confirm(bot, view, "contacts")
    expected = {
        "response_action": "errors",
        "errors": {"confirm": "Type `contacts-v2` exactly to confirm."},
    }
    assert wrong.json() == expected
    await confirm(bot, view, "contacts-v2")
    [request] = await rows(bot)
    [card] = bot.slack.calls_to("chat.postMessage")
    card_ts = card.response["ts"]
    assert request["status"] == "pending" and "Would copy 3,000 documents" in json.dumps(
        card.args["blocks"]
    )
    await click(bot, request["id"], "U0OPS", card_ts)
    assert "can't approve your own request" in private(bot)
    assert changes(es) == []

    await click(bot, request["id"], "U0LEAD", card_ts)
    [done] = await rows(bot)
    assert (done["status"], done["decided_by"]) == ("succeeded", "U0LEAD")
    assert changes(es) == ["PUT /contacts-v2", "POST /_reindex", "POST /_aliases"]
    assert [i.name for i in es.cluster.aliases()["contacts-current"]] == ["contacts-v2"]
    assert len(es.cluster.indices["contacts-v2"].docs) == 3000
    thread = final_texts(bot, card_ts)
    assert (
        len(thread) == 1
        and "Copied 3,000 documents from `contacts` into `contacts-v2`" in thread[0]
    )
    assert "counts match" in thread[0] and "now points to `contacts-v2`" in thread[0]

    await click(bot, request["id"], "U0LEAD", card_ts)
    assert "already approved" in private(bot) and len(es.calls("POST", "/_reindex")) == 1


async def test_runbook_alias_trap_is_refused_in_the_dialog(bot, es):
    """`--alias contacts` (an index) shows why, no field to confirm; a forged submit is refused."""
    view = await open_dialog(bot, "es reindex contacts contacts_v2 --alias contacts")
    said = json.dumps(view["blocks"], ensure_ascii=False)
    assert (
        "is an index, not an alias" in said and "contacts-current" in said and "submit" not in view
    )
    await confirm(bot, view, "contacts_v2")
    assert "The dry run failed, so nothing was requested" in private(bot)
    assert await rows(bot) == [] and changes(es) == []


async def test_hostile_arguments_change_nothing(bot, es):
    """Each hostile reindex: its reason in the dialog, no request stored, ES untouched."""
    for text in INJECTIONS:
        bot.slack.clear()
        view = await open_dialog(bot, text)
        said = json.dumps(view["blocks"], ensure_ascii=False)
        assert re.search(r"is not an (index|alias) name", said) and "submit" not in view, text
        assert "<!channel>" not in said, text
    assert (
        await rows(bot) == [] and changes(es) == [] and not bot.slack.calls_to("chat.postMessage")
    )


async def test_es_status_in_the_channel(bot, es):
    """A viewer's `es status`: one message, yellow on a single node shown as ok."""
    await bot.client.slash("es status", user="U0VIEW", channel="C0OPS")
    await bot.settle()
    [post] = bot.slack.calls_to("chat.postMessage")
    assert "✅" in post.args["text"] and "es status" in post.args["text"]
    assert "yellow on a single data node" in json.dumps(post.args["blocks"], ensure_ascii=False)


async def test_approved_reindex_edits_one_progress_message(bot, es):
    """After approval, task progress (created / total) is edited into one message under the card."""
    es.cluster.reindex_rate = 6_000
    view = await open_dialog(bot, SWAP)
    await confirm(bot, view, "contacts-v2")
    [request] = await rows(bot)
    [card] = bot.slack.calls_to("chat.postMessage")
    await click(bot, request["id"], "U0LEAD", card.response["ts"])
    said = [
        c.args.get("text", "")
        for c in bot.slack.calls
        if c.method in ("chat.postMessage", "chat.update")
    ]
    assert [t for t in said if re.search(r"[\d,]+ of 3,000 documents", t)]

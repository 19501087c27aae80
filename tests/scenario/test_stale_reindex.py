"""An approved `es reindex` copies what its dry run showed, or nothing: between the request and the
approval the source index is deleted and created again (same name, same count), gains documents,
or its alias moves; each is stale and the cluster is left as it was (Elasticsearch 8.11 double over
its HTTP API, the approval path over Slack HTTP)."""

from __future__ import annotations

import json

import pytest

from bot.config.settings import Config
from commands.search import reindex as es_reindex
from tests.conftest import make_settings, running_forge
from tests.support.es_fixtures import CONTACTS, clientforge, contact, es  # noqa: F401  (fixture)
from tests.support.slack_flow import click, confirm, open_dialog, rows

pytestmark = pytest.mark.integration
CONFIG = Config.model_validate(
    {
        "roles": {"viewer": ["*"], "operator": ["U0OPS"], "admin": ["U0ADMIN"]},
        "approvers": ["U0LEAD"],
        "channels": {"destructive": ["C0OPS"]},
    }
)
SWAP = "es reindex contacts contacts-v2 --alias contacts-current"


@pytest.fixture
async def bot(state_dsn, slack, es, monkeypatch):
    """forge over HTTP on the ES and Slack doubles; ClientForge's indices, 300 contacts."""
    monkeypatch.setattr(es_reindex, "POLL_SECONDS", 0.02)
    clientforge(es, 300)
    settings = make_settings(
        CONFIG,
        elasticsearch_url=es.url,
        forge_state_database_url=state_dsn,
        slack_api_url=slack.url,
    )
    async with running_forge(settings, slack) as harness:
        yield harness


def changes(es) -> list[str]:
    """Requests that could change the cluster."""
    return [
        f"{r.method} {r.path}"
        for r in es.requests
        if r.method not in ("GET", "HEAD") and not r.path.endswith(("/_count", "/_refresh"))
    ]


async def requested(bot) -> tuple[dict, str]:  # type: ignore[type-arg]
    """U0OPS asks for the swap; the stored request and its card's ts."""
    view = await open_dialog(bot, SWAP)
    await confirm(bot, view, "contacts-v2")
    [row] = await rows(bot)
    return row, bot.slack.calls_to("chat.postMessage")[0].response["ts"]


async def approved(bot, row, card_ts: str):  # type: ignore[no-untyped-def]
    """U0LEAD approves; the stored request and the card's last text."""
    await click(bot, row["id"], "U0LEAD", card_ts)
    [after] = await rows(bot)
    edits = [c for c in bot.slack.calls_to("chat.update") if c.args.get("ts") == card_ts]
    return after, edits[-1].args["text"]


async def test_source_recreated_with_the_same_count_is_stale(bot, es):
    """contacts is deleted and created again with the same 300 documents: another UUID."""
    row, card_ts = await requested(bot)
    scope = json.loads(row["scope"])
    assert scope["source_uuid"] == es.cluster.indices["contacts"].settings["index.uuid"]
    assert (scope["source_docs"], scope["alias_on"]) == (300, "contacts")
    del es.cluster.indices["contacts"]
    es.seed("contacts", 300, body=CONTACTS, make=contact)
    es.cluster.update_aliases([{"add": {"index": "contacts", "alias": "contacts-current"}}])
    before = changes(es)

    after, card = await approved(bot, row, card_ts)
    assert after["status"] == "stale" and "deleted and created again" in after["outcome"]
    assert scope["source_uuid"] in after["outcome"] and "stale — request again" in card
    assert changes(es) == before and "contacts-v2" not in es.cluster.indices


async def test_source_that_gained_documents_is_stale(bot, es):
    """25 contacts are written after the dry run counted 300: the copy would not be what was
    approved."""
    row, card_ts = await requested(bot)
    es.seed("contacts", 25, start=1001, make=contact)
    after, card = await approved(bot, row, card_ts)
    assert after["status"] == "stale" and "325 documents now" in after["outcome"]
    assert "counted 300" in after["outcome"] and "contacts-v2" not in es.cluster.indices


async def test_alias_moved_since_the_request_is_stale(bot, es):
    """contacts-current is moved to accounts after the request: nothing is copied or moved."""
    row, card_ts = await requested(bot)
    es.cluster.update_aliases(
        [
            {"remove": {"index": "contacts", "alias": "contacts-current"}},
            {"add": {"index": "accounts", "alias": "contacts-current"}},
        ]
    )
    after, card = await approved(bot, row, card_ts)
    assert after["status"] == "stale" and "contacts-current" in after["outcome"]
    assert "stale — request again" in card and "contacts-v2" not in es.cluster.indices
    assert [i.name for i in es.cluster.aliases()["contacts-current"]] == ["accounts"]


async def test_an_unchanged_cluster_is_done_on_the_approved_scope(bot, es):
    """Nothing moved: copied, counted, alias swapped, and the card says on the approved scope."""
    row, card_ts = await requested(bot)
    after, card = await approved(bot, row, card_ts)
    assert after["status"] == "succeeded" and "done on the approved scope" in card
    assert [i.name for i in es.cluster.aliases()["contacts-current"]] == ["contacts-v2"]

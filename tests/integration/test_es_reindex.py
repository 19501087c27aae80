"""`es reindex` on the Elasticsearch 8.11 double: a task with progress edits, the count check, the
atomic alias swap, the alias-is-an-index trap of the runbook's recipe, hostile names, and
Elasticsearch failing midway."""

from __future__ import annotations

import re

import pytest

from bot.core.context import Actor
from bot.core.dispatch import Invocation
from bot.core.errors import CommandError
from bot.core.forge import Forge
from bot.core.registry import Role
from bot.slack.mrkdwn import mrkdwn
from bot.text.cells import plain
from commands.search import reindex as es_reindex
from commands.search.reindex import es_reindex as reindex
from commands.search.reindex_plan import ReindexArgs, reindex_preview
from tests.conftest import make_settings
from tests.support.es_fixtures import CONTACTS, clientforge, closed_port, contact, es, make_ctx  # noqa: F401  (fixtures)

SWAP = "es reindex contacts contacts-v2 --alias contacts-current"
HOSTILE = [
    ("contacts*", "v2", None),
    ("_all", "v2", None),
    ("contacts,deals", "v2", None),
    ("-contacts", "v2", None),
    ("contacts", "v2*", None),
    ("contacts", "_all", None),
    ("contacts", "v2", "contacts-*"),
    ("contacts", "v2", "a,b"),
    ("contacts", "v2", "-x"),
    ("contacts", "../v2", None),
    ("contacts", "v2%2F_delete", None),
    ("contacts", "V2", None),
    ("contacts", ".kibana", None),
    ("contacts", "contacts", None),
    ("contacts", "v2", "v2"),
]


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch):
    """Poll the task every 20 ms instead of every second."""
    monkeypatch.setattr(es_reindex, "POLL_SECONDS", 0.02)


def mutations(es) -> list[str]:
    """Every request that could change the cluster."""
    return [
        f"{r.method} {r.path}"
        for r in es.requests
        if r.method not in ("GET", "HEAD") and not r.path.endswith(("/_count", "/_refresh"))
    ]


async def test_reindex_copies_with_progress_checks_counts_and_swaps_atomically(es, make_ctx):
    """3,000 contacts: dest created with the source's mappings and settings, a task polled with the
    progress message edited as batches land, counts compared, then one `_aliases` call moving
    `contacts-current`."""
    clientforge(es, 3000)
    es.cluster.reindex_rate = 8_000
    ctx = make_ctx()
    result = await reindex(
        ctx, ReindexArgs(source="contacts", dest="contacts-v2", alias="contacts-current")
    )

    assert result.ok and result.data["copied"] == result.data["documents"] == 3000
    assert "counts match" in result.summary
    assert "now points to `contacts-v2`" in mrkdwn(result.summary)
    dest = es.cluster.indices["contacts-v2"]
    assert dest.mappings == CONTACTS["mappings"] and len(dest.docs) == 3000
    assert dest.settings["index.analysis.analyzer.crm.tokenizer"] == "standard"
    assert dest.settings["index.analysis.analyzer.crm.filter"] == ["lowercase"]
    assert dest.settings["index.uuid"] != es.cluster.indices["contacts"].settings["index.uuid"]
    [create] = es.calls("PUT", "/contacts-v2")
    assert set(create.body["settings"]) == {"number_of_shards", "number_of_replicas", "analysis"}
    [start] = es.calls("POST", "/_reindex")
    assert start.query["wait_for_completion"] == "false" and start.body == {
        "source": {"index": "contacts"},
        "dest": {"index": "contacts-v2"},
    }

    first = ctx.notes[0]
    assert (
        first.startswith("Reindexing `contacts` → `contacts-v2`: task `")
        and "3,000 documents" in first
    )
    done = [
        int(m.group(1).replace(",", ""))
        for n in ctx.notes[1:]
        if (m := re.search(r": ([\d,]+) of 3,000", n))
    ]
    assert len(done) >= 2 and done == sorted(set(done)), (
        ctx.notes
    )  # one edit per change, counts only grow
    assert all(d % 1000 == 0 for d in done)

    [swap] = es.calls("POST", "/_aliases")
    assert swap.body == {
        "actions": [
            {"remove": {"index": "contacts", "alias": "contacts-current", "must_exist": True}},
            {"add": {"index": "contacts-v2", "alias": "contacts-current"}},
        ]
    }
    assert es.cluster.aliases()["contacts-current"] == [dest] and result.data["alias_on"] == [
        "contacts-v2"
    ]
    assert len(es.cluster.indices["contacts"].docs) == 3000  # the source is left as it was


async def test_dry_run_says_what_would_happen_and_changes_nothing(es, make_ctx):
    """The preview (what the dialog and approvers see) reads the cluster only."""
    clientforge(es, 1200)
    preview = await reindex_preview(
        make_ctx(), ReindexArgs(source="contacts", dest="contacts-v2", alias="contacts-current")
    )
    assert mrkdwn(preview.summary) == (
        "Would copy 1,200 documents from `contacts` into a new index `contacts-v2`, created "
        "with the mappings (10 fields) and settings of `contacts`, then move alias "
        "`contacts-current` from `contacts` to `contacts-v2` in one atomic call."
    )
    assert dict(preview.fields)["Alias"] == "contacts-current: contacts → contacts-v2"
    assert "Pause data-sync first" in preview.text
    assert mutations(es) == [] and "contacts-v2" not in es.cluster.indices


@pytest.mark.parametrize("run", [reindex_preview, reindex])
async def test_alias_named_like_an_index_is_refused_with_the_runbook_explanation(es, make_ctx, run):
    """The runbook's recipe on ClientForge: alias `contacts` while `contacts` is an index. Refused
    before anything is created, copied or swapped, with the reason and the alias to use instead."""
    clientforge(es, 50)
    with pytest.raises(CommandError) as refused:
        await run(make_ctx(), ReindexArgs(source="contacts", dest="contacts_v2", alias="contacts"))
    message = mrkdwn(refused.value.text)
    assert (
        message.startswith("`contacts` is an index, not an alias")
        and "invalid_alias_name_exception" in message
    )
    assert "runbook" in message and "`--alias contacts-current`" in message
    assert mutations(es) == [] and "contacts_v2" not in es.cluster.indices


async def test_alias_on_another_index_is_not_moved(es, make_ctx):
    """forge moves an alias only from the index that was copied."""
    clientforge(es, 20)
    with pytest.raises(CommandError, match="Alias deals-current points to deals, not to contacts"):
        await reindex(
            make_ctx(), ReindexArgs(source="contacts", dest="contacts-v2", alias="deals-current")
        )
    assert mutations(es) == []


async def test_source_may_be_the_alias_being_moved(es, make_ctx):
    """`es reindex contacts-current contacts-v2 --alias …` copies `contacts` and moves its alias."""
    clientforge(es, 30)
    result = await reindex(
        make_ctx(),
        ReindexArgs(source="contacts-current", dest="contacts-v2", alias="contacts-current"),
    )
    assert (
        result.ok
        and result.data["source"] == "contacts"
        and result.data["alias_on"] == ["contacts-v2"]
    )


async def test_new_alias_is_created_on_dest(es, make_ctx):
    """An alias that does not exist yet is added to dest, with no remove action."""
    clientforge(es, 30)
    await reindex(make_ctx(), ReindexArgs(source="deals", dest="deals-v2", alias="deals-read"))
    [swap] = es.calls("POST", "/_aliases")
    assert swap.body == {"actions": [{"add": {"index": "deals-v2", "alias": "deals-read"}}]}


async def test_writes_during_the_copy_stop_the_swap(es, make_ctx):
    """data-sync keeps writing `contacts` during the copy: the counts differ, so the alias stays."""
    clientforge(es, 2000)
    es.cluster.reindex_rate = 10_000
    ctx = make_ctx()
    original = ctx.progress

    async def progress(note: str) -> None:
        if len(ctx.notes) == 1:
            es.seed("contacts", 7, start=5000, make=contact)
        await original(note)

    ctx.progress = progress
    result = await reindex(
        ctx, ReindexArgs(source="contacts", dest="contacts-v2", alias="contacts-current")
    )
    assert not result.ok and result.data == {
        "task": result.data["task"],
        "source_docs": 2007,
        "dest_docs": 2000,
        "copied": 2000,
        "moved": False,
    }
    assert "alias `contacts-current` was not moved" in mrkdwn(result.summary)
    assert (
        es.calls("POST", "/_aliases") == []
        and es.cluster.aliases()["contacts-current"][0].name == "contacts"
    )


async def test_failed_task_moves_nothing(es, make_ctx):
    """A task that ends in an error is reported with ES's error type; no alias call."""
    clientforge(es, 100)
    es.cluster.fail_reindex = "rejected execution of coordinating operation"
    with pytest.raises(
        CommandError, match="failed: es_rejected_execution_exception: rejected execution"
    ):
        await reindex(
            make_ctx(), ReindexArgs(source="contacts", dest="contacts-v2", alias="contacts-current")
        )
    assert es.calls("POST", "/_aliases") == []


async def test_elasticsearch_going_away_midway_is_reported_once(es, make_ctx):
    """The node stops while the task runs: a few polls fail, then one clear error; nothing moved."""
    clientforge(es, 3000)
    es.cluster.reindex_rate = 2_000
    ctx = make_ctx()
    original = ctx.progress

    async def progress(note: str) -> None:
        await original(note)
        if len(ctx.notes) == 2:
            await es.stop()

    ctx.progress = progress
    with pytest.raises(
        CommandError, match="Lost contact with Elasticsearch while reindex task .* may still be"
    ):
        await reindex(
            ctx, ReindexArgs(source="contacts", dest="contacts-v2", alias="contacts-current")
        )
    assert es.calls("POST", "/_aliases") == []


async def test_existing_dest_is_reused_and_checked(es, make_ctx):
    """A dest already holding other documents: the preview warns, then the counts stop the swap."""
    clientforge(es, 40)
    es.seed("contacts-v2", 5, start=9000)
    ctx = make_ctx()
    preview = await reindex_preview(
        ctx, ReindexArgs(source="contacts", dest="contacts-v2", alias="contacts-current")
    )
    assert (
        dict(preview.fields)["Dest"] == "contacts-v2 (exists, 5 docs)"
        and "exists with 5 documents" in preview.text
    )
    result = await reindex(
        ctx, ReindexArgs(source="contacts", dest="contacts-v2", alias="contacts-current")
    )
    assert (
        not result.ok and result.data["dest_docs"] == 45 and es.calls("PUT", "/contacts-v2") == []
    )


async def test_missing_source_and_alias_dest_are_refused(es, make_ctx):
    """No such source; a dest that is an alias."""
    clientforge(es, 3)
    ctx = make_ctx()
    with pytest.raises(CommandError, match="No index or alias contacts-old"):
        await reindex(ctx, ReindexArgs(source="contacts-old", dest="contacts-v2"))
    with pytest.raises(CommandError, match="deals-current is an alias"):
        await reindex(ctx, ReindexArgs(source="contacts", dest="deals-current"))
    assert mutations(es) == []


@pytest.mark.parametrize("source,dest,alias", HOSTILE)
async def test_hostile_names_never_reach_elasticsearch(es, make_ctx, source, dest, alias):
    """Wildcard, `_all`, comma, `-`-led, path, capital, dot, clashing names: refused, no request."""
    with pytest.raises(
        CommandError, match=r"is not an (index|alias) name|same index|both the new index"
    ):
        await reindex_preview(make_ctx(), ReindexArgs(source=source, dest=dest, alias=alias))
    assert es.requests == []


async def test_a_task_outliving_the_command_is_left_running_and_said_so(es, make_ctx, monkeypatch):
    """Past its own deadline forge stops watching: a warning with the task id, no alias moved."""
    monkeypatch.setattr(es_reindex, "TIMEOUT", 0.3)
    monkeypatch.setattr(es_reindex, "DEADLINE_MARGIN", 0.0)
    clientforge(es, 3000)
    es.cluster.reindex_rate = 1_000
    result = await reindex(
        make_ctx(), ReindexArgs(source="contacts", dest="contacts-v2", alias="contacts-current")
    )
    assert (
        not result.ok and "is still running" in result.summary and result.data["finished"] is False
    )
    assert (
        f"GET _tasks/{result.data['task']}" in result.text and es.calls("POST", "/_aliases") == []
    )


async def test_dry_run_flag_shows_the_preview_without_an_approval(es):
    """Via the dispatcher (terminal or Slack) `--dry-run` previews, asks nobody, changes nothing."""
    clientforge(es, 10)
    down = f"postgresql://forge@127.0.0.1:{closed_port()}/none"
    forge = Forge(make_settings(elasticsearch_url=es.url, forge_state_database_url=down))
    try:
        outcome = await forge.dispatcher.run(
            Invocation(f"{SWAP} --dry-run", "U0OPS", source="cli"),
            actor=Actor("U0OPS", Role.OPERATOR),
        )
    finally:
        await forge.aclose()
    summary = plain(outcome.result.summary)
    assert outcome.kind == "result" and summary.startswith("Would copy 10 documents")
    assert mutations(es) == []

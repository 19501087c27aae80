"""`es status|indices|aliases` on the ES 8.11 double, name checks, and Elasticsearch down."""

from __future__ import annotations

import time

import pytest

from bot.core.dispatch import Invocation
from bot.core.errors import BackendError, CommandError
from bot.core.forge import Forge
from bot.core.registry import REGISTRY, NoArgs, Risk, Role
from bot.core.result import Status
from bot.slack.mrkdwn import mrkdwn
from bot.slack.render import to_message
from commands.search.es import IndicesArgs, es_aliases, es_indices, es_status, name_problem
from tests.conftest import make_settings
from tests.support.es_fixtures import clientforge, closed_port, es, make_ctx  # noqa: F401  (fixtures)

BAD_NAMES = [
    "contacts*",
    "cont?cts",
    "_all",
    "contacts,deals",
    "-contacts",
    "_contacts",
    "+x",
    ".tasks",
    "Contacts",
    "con tacts",
    "contacts/../x",
    "a" * 256,
    "",
    "contacts;DELETE",
    "con`tacts",
    "<!channel>",
    "x:y",
    "ü",
]


def test_registered_read_only_for_viewers():
    """The reads are for viewers; `es reindex` is destructive, for operators, confirmed by dest."""
    for name in ("es status", "es indices", "es aliases"):
        spec = REGISTRY.get(name)
        assert spec is not None and spec.risk is Risk.READ and spec.role is Role.VIEWER, name
    spec = REGISTRY.get("es reindex")
    assert spec.risk is Risk.DESTRUCTIVE and spec.role is Role.OPERATOR and spec.preview is not None
    assert spec.usage == "es reindex <source> <dest> [--alias ALIAS] [--dry-run]"


@pytest.mark.parametrize("name", BAD_NAMES)
def test_names_that_are_not_one_index_are_refused_with_a_reason(name):
    """Wildcards, `_all`, commas, leading `-`, dot-names, capitals, odd chars: a reason for each."""
    assert name_problem(name)


def test_reasons_name_the_trap():
    """The reason says what the character means to Elasticsearch."""
    assert "wildcards" in name_problem("contacts*") and "every index" in name_problem("_all")
    assert "comma" in name_problem("a,b") and "excludes" in name_problem("-a")
    assert name_problem("contacts-v2") is None and name_problem("contacts_v1.2+x") is None


async def test_status_green_cluster(es, make_ctx):
    """An empty cluster is green: ok, with version, nodes and shards."""
    result = await es_status(make_ctx(), NoArgs())
    fields = dict(result.fields)
    assert (
        result.status is Status.OK and fields["Health"] == "green" and fields["Version"] == "8.11.0"
    )
    assert fields["Nodes"] == "1 (1 data)" and result.tables == []


async def test_status_yellow_on_one_node_is_fine(es, make_ctx):
    """ClientForge's single node with 1 replica per index is yellow, and that is ok."""
    clientforge(es, 10)
    result = await es_status(make_ctx(), NoArgs())
    assert result.status is Status.OK and dict(result.fields)["Health"] == "yellow"
    assert "single data node" in result.summary and dict(result.fields)["Unassigned shards"] == "4"
    assert result.tables == []


async def test_status_red_is_critical_and_names_the_index(es, make_ctx):
    """A lost primary makes the cluster red: critical, the red index listed first."""
    clientforge(es, 10)
    es.cluster.indices["deals"].red = True
    result = await es_status(make_ctx(), NoArgs())
    assert result.status is Status.CRITICAL and "red" in result.summary
    assert result.tables[0].rows == [["deals", "red", "0/1", "2"]]


async def test_indices_worst_first_with_docs_size_and_aliases(es, make_ctx):
    """A row per index, red first, counts with commas, aliases joined; hidden ones need --all."""
    clientforge(es, 1500)
    es.seed(".tasks", 1)
    es.cluster.indices["deals"].red = True
    result = await es_indices(make_ctx(), IndicesArgs())
    rows = result.tables[0].rows
    assert [r[0] for r in rows] == ["deals", "accounts", "clientforge", "contacts"]
    assert (
        rows[0][1:3] == ["red", "—"] and rows[3][2] == "1,500" and rows[3][5] == "contacts-current"
    )
    assert rows[3][3].endswith("kB") and result.status is Status.CRITICAL
    assert "1 hidden or system indices" in result.text
    every = await es_indices(make_ctx(), IndicesArgs(all=True))
    assert ".tasks" in [r[0] for r in every.tables[0].rows]


async def test_indices_missing_clientforge_index_is_a_warning(es, make_ctx):
    """Without the unified `clientforge` index the app's search falls back to PostgreSQL: say so."""
    es.seed("contacts", 3)
    result = await es_indices(make_ctx(), IndicesArgs())
    assert result.status is Status.WARNING and result.data["missing"] == [
        "accounts",
        "deals",
        "clientforge",
    ]
    assert "falls back to PostgreSQL" in result.text


async def test_aliases_with_tenant_aliases_counted(es, make_ctx):
    """Plain aliases per row; `contacts-tenant-<uuid>` only counted; ok if -current ones exist."""
    clientforge(es, 5)
    es.seed("contacts-000001", 1)
    tenants = [f"0b0f9c3e-8f0a-4a57-9a57-0d6c3f1e2a{n:02d}" for n in range(12)]
    es.cluster.update_aliases(
        [{"add": {"index": "contacts-000001", "alias": "contacts-write", "is_write_index": True}}]
        + [
            {
                "add": {
                    "index": "contacts-000001",
                    "alias": f"contacts-tenant-{t}",
                    "filter": {"term": {"tenant_id": t}},
                }
            }
            for t in tenants
        ]
    )
    result = await es_aliases(make_ctx(), NoArgs())
    assert result.status is Status.OK and result.data["tenant_aliases"] == {"contacts": 12}
    assert result.tables[0].rows[:2] == [
        ["accounts-current", "accounts", "no", "—"],
        ["contacts-current", "contacts", "no", "—"],
    ]
    assert ["contacts-write", "contacts-000001", "no", "yes"] in result.tables[0].rows
    assert "12 on `contacts-*`" in mrkdwn(result.text)
    assert result.summary == "16 aliases on 4 indices."


async def test_aliases_missing_current_aliases_is_a_warning(es, make_ctx):
    """No `-current` aliases (ClientForge never started on this cluster): a warning naming them."""
    es.seed("contacts", 1)
    result = await es_aliases(make_ctx(), NoArgs())
    assert result.status is Status.WARNING and "`contacts-current`" in mrkdwn(result.text)


@pytest.mark.parametrize(
    "handler,args", [(es_status, NoArgs()), (es_indices, IndicesArgs()), (es_aliases, NoArgs())]
)
async def test_elasticsearch_down_is_one_line(make_ctx, handler, args):
    """Connection refused: a BackendError in one short line that says what to check, quickly."""
    started = time.monotonic()
    with pytest.raises(BackendError) as down:
        await handler(make_ctx(url=f"http://127.0.0.1:{closed_port()}"), args)
    message = str(down.value)
    assert time.monotonic() - started < 3
    assert "\n" not in message and len(message) < 200 and message.startswith("elasticsearch: ")
    assert "ELASTICSEARCH_URL" in message


async def test_elasticsearch_down_through_the_dispatcher(monkeypatch):
    """What the caller sees: ❌ and one line, no stack trace, no URL credentials."""
    url = f"http://elastic:s3cret-pw@127.0.0.1:{closed_port()}"
    forge = Forge(
        make_settings(
            elasticsearch_url=url,
            forge_state_database_url=f"postgresql://x@127.0.0.1:{closed_port()}/none",
        )
    )
    try:
        outcome = await forge.dispatcher.run(Invocation("es status", "U0VIEW", source="cli"))
    finally:
        await forge.aclose()
    text = to_message(outcome, None).text  # type: ignore[arg-type]
    assert outcome.kind == "failed" and text.count("\n") == 0 and "s3cret" not in text
    assert "elasticsearch" in text and "ELASTICSEARCH_URL" in text


async def test_an_es_refusal_is_a_command_error_with_its_type(es, make_ctx):
    """An HTTP error from ES itself (not a connection problem) reads as its type and reason."""
    ctx = make_ctx()
    with pytest.raises(CommandError, match="index_not_found_exception: no such index \\[nope\\]"):
        await ctx.backends.es.call(ctx.backends.elasticsearch().indices.get(index="nope"))


async def test_hanging_elasticsearch_times_out_in_one_line(es):
    """A node that does not answer: `timed out after …` within the configured backend timeout."""
    from bot.backends.clients import Backends
    from bot.config.settings import Config
    from bot.core.context import Actor, Context

    es.delay = 0.8
    backends = Backends(
        make_settings(
            Config.model_validate({"timeouts": {"backend": 0.3}}), elasticsearch_url=es.url
        )
    )
    ctx = Context(
        backends.settings, backends, REGISTRY, Actor("U0VIEW", Role.VIEWER), store=None, audit=None
    )  # type: ignore[arg-type]
    started = time.monotonic()
    try:
        with pytest.raises(
            BackendError,
            match=r"^elasticsearch: timed out after 0.3 s; check that Elasticsearch runs",
        ):
            await es_status(ctx, NoArgs())
    finally:
        await backends.aclose()
    assert time.monotonic() - started < 1.5

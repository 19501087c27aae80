"""The ES 8.11 double answers the real elasticsearch-py 8 async client the way ES 8.11 does."""

from __future__ import annotations

import asyncio
import warnings

import aiohttp
import pytest
from elasticsearch import AsyncElasticsearch, BadRequestError, NotFoundError
from elasticsearch.exceptions import GeneralAvailabilityWarning

from tests.fakes.es_double import EsDouble
from tests.support.es_fixtures import CONTACTS, contact, es  # noqa: F401  (fixture)


@pytest.fixture
async def client(es: EsDouble):
    """The real async client on the double."""
    c = AsyncElasticsearch(es.url, request_timeout=5)
    yield c
    await c.close()


async def test_every_response_says_it_is_elasticsearch_and_speaks_compat_8(es, client):
    """Product header on 2xx and errors; compatible-with=8 echoed; 9.x's media type refused."""
    info = await client.info()
    assert (
        info["version"]["number"] == "8.11.0"
        and info.meta.headers["x-elastic-product"] == "Elasticsearch"
    )
    assert "compatible-with=8" in info.meta.headers["content-type"]
    async with aiohttp.ClientSession() as s:
        async with s.get(es.url + "/nope/_count") as missing:
            assert missing.status == 404 and missing.headers["X-Elastic-Product"] == "Elasticsearch"
        nine = {"Accept": "application/vnd.elasticsearch+json; compatible-with=9"}
        async with s.get(es.url + "/", headers=nine) as refused:
            body = await refused.json()
    assert refused.status == 400 and body["error"]["type"] == "media_type_header_exception"
    assert "must be either version 8 or 7, but found 9" in body["error"]["caused_by"]["reason"]


async def test_errors_have_es_bodies(es, client):
    """ES bodies: index_not_found, resource_already_exists, invalid_alias_name, private settings."""
    es.seed("contacts", 2)
    with pytest.raises(NotFoundError) as missing:
        await client.indices.get(index="nope")
    assert missing.value.error == "index_not_found_exception"
    assert missing.value.body["error"]["root_cause"][0]["resource.id"] == "nope"
    with pytest.raises(BadRequestError) as exists:
        await client.indices.create(index="contacts")
    assert exists.value.error == "resource_already_exists_exception"
    assert exists.value.body["error"]["reason"].startswith("index [contacts/")
    with pytest.raises(BadRequestError) as alias:
        await client.indices.update_aliases(
            actions=[{"add": {"index": "contacts", "alias": "contacts"}}]
        )
    assert alias.value.body["error"]["reason"] == (
        "Invalid alias name [contacts]: an index or data stream exists "
        "with the same name as the alias"
    )
    with pytest.raises(BadRequestError) as private:
        await client.indices.create(
            index="copy", settings={"index": {"uuid": "x", "number_of_shards": 1}}
        )
    assert "private index setting [index.uuid]" in private.value.body["error"]["reason"]
    with pytest.raises(BadRequestError) as upper:
        await client.indices.create(index="Contacts")
    assert upper.value.error == "invalid_index_name_exception"
    with pytest.raises(NotFoundError):
        await client.indices.get_alias(name="nothing")


async def test_aliases_change_all_at_once_or_not_at_all(es, client):
    """A failing `_aliases` action leaves every alias as it was; must_exist on remove honoured."""
    es.seed("a", 1)
    es.seed("b", 1)
    await client.indices.update_aliases(actions=[{"add": {"index": "a", "alias": "live"}}])
    with pytest.raises(NotFoundError) as gone:
        await client.indices.update_aliases(
            actions=[
                {"add": {"index": "b", "alias": "live"}},
                {"remove": {"index": "b", "alias": "other", "must_exist": True}},
            ]
        )
    assert gone.value.error == "aliases_not_found_exception"
    assert list((await client.indices.get_alias(name="live")).body) == ["a"]
    await client.indices.update_aliases(
        actions=[
            {"remove": {"index": "a", "alias": "live", "must_exist": True}},
            {"add": {"index": "b", "alias": "live", "is_write_index": True}},
        ]
    )
    rows = (await client.cat.aliases(format="json")).body
    assert rows == [
        {
            "alias": "live",
            "index": "b",
            "filter": "-",
            "routing.index": "-",
            "routing.search": "-",
            "is_write_index": "true",
        }
    ]


async def test_writes_are_counted_after_a_refresh(es, client):
    """Like ES, a count sees new documents only after a refresh (or the 1 s interval)."""
    await client.bulk(
        operations=[
            x for n in range(5) for x in ({"index": {"_index": "c", "_id": str(n)}}, contact(n))
        ]
    )
    assert (await client.count(index="c"))["count"] == 0
    await client.indices.refresh(index="c")
    assert (await client.count(index="c"))["count"] == 5
    await client.index(index="c", id="9", document=contact(9), refresh="wait_for")
    assert (await client.count(index="c"))["count"] == 6
    assert (await client.indices.get_mapping(index="c"))["c"]["mappings"]["properties"][
        "email"
    ] == {"type": "text"}


async def test_reindex_runs_as_a_task_a_batch_at_a_time(es, client):
    """wait_for_completion=false gives `node:id`; its created count grows 1,000 a batch to total."""
    es.seed("contacts", 2500, body=CONTACTS, make=contact)
    es.cluster.reindex_rate = 1_000  # 2.5 s in all: a busy machine still sees it mid-way
    task = (
        await client.reindex(
            source={"index": "contacts"}, dest={"index": "v2"}, wait_for_completion=False
        )
    )["task"]
    assert task.endswith(":4711")
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GeneralAvailabilityWarning)
        while not (body := (await client.tasks.get(task_id=task)).body)["completed"]:
            seen.append(body["task"]["status"]["created"])
            await asyncio.sleep(0.02)
    assert set(seen) <= {0, 1000, 2000} and len(set(seen)) >= 2
    assert body["response"]["created"] == 2500 and body["response"]["failures"] == []
    assert body["task"]["action"] == "indices:data/write/reindex"
    assert (await client.count(index="v2"))["count"] == 2500
    mapping = (await client.indices.get_mapping(index="v2"))["v2"]["mappings"]["properties"]
    assert mapping["tenant_id"] == {"type": "text"}, (
        "an absent dest is auto-created with dynamic mappings, as in ES"
    )
    with pytest.raises(NotFoundError) as unknown, warnings.catch_warnings():
        warnings.simplefilter("ignore", GeneralAvailabilityWarning)
        await client.tasks.get(task_id=task.replace("4711", "99"))
    assert unknown.value.error == "resource_not_found_exception"


async def test_health_is_yellow_with_replicas_on_one_node_and_red_with_a_lost_primary(es, client):
    """From the indices: replicas unassigned on one node make it yellow; a lost primary red."""
    assert (await client.cluster.health())["status"] == "green"
    es.seed("contacts", 1)
    health = await client.cluster.health(level="indices")
    assert (
        health["status"],
        health["unassigned_shards"],
        health["indices"]["contacts"]["status"],
    ) == ("yellow", 1, "yellow")
    es.cluster.indices["contacts"].red = True
    assert (await client.cluster.health())["status"] == "red"
    [row] = (await client.cat.indices(format="json", bytes="b")).body
    assert row["health"] == "red" and row["docs.count"] is None

"""An Elasticsearch 8.11 single node over HTTP: the endpoints forge uses, driven by the real client.

It answers like ES: the `X-Elastic-Product: Elasticsearch` header on every response, the
compatible-with=8 media type back when asked for it (and ES 8's refusal of compatible-with=9), error
bodies shaped `{"error": {"root_cause": [...], "type", "reason", ...}, "status": N}`, string values
in `_cat` JSON, writes that a count sees only after a refresh, and
`_reindex?wait_for_completion=false` tasks that copy a batch of 1,000 documents at a time as the
clock runs (`cluster.reindex_rate` documents per second).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .es_model import NODE_ID, Cluster, EsError, Index, Json, nest

PRODUCT = {"X-Elastic-Product": "Elasticsearch"}
COMPAT_JSON = "application/vnd.elasticsearch+json;compatible-with=8"
HEALTH_RANK = {"green": 0, "yellow": 1, "red": 2}


@dataclass(frozen=True)
class Request:
    """One request the double received."""

    method: str
    path: str
    query: dict[str, str]
    body: Any


def _human(size: int) -> str:
    for unit, scale in (("gb", 1 << 30), ("mb", 1 << 20), ("kb", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f}{unit}"
    return f"{size}b"


class EsDouble:
    """A recording ES 8.11 node on 127.0.0.1: `cluster` is its state, `requests` what it got."""

    def __init__(self) -> None:
        self.cluster = Cluster()
        self.requests: list[Request] = []
        self.delay = 0.0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> EsDouble:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Shut the node down: from now on connections are refused."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def calls(self, method: str, path: str) -> list[Request]:
        """The requests with this method and path."""
        return [r for r in self.requests if r.method == method and r.path == path]

    # seeding helpers for tests --------------------------------------------------------------------
    def seed(
        self, index: str, count: int, *, body: Json | None = None, start: int = 1, make: Any = None
    ) -> Index:
        """Create (if absent) and fill an index with `count` refreshed documents."""
        target = self.cluster.indices.get(index) or self.cluster.create(index, body)
        for n in range(start, start + count):
            target.write(
                str(n),
                make(n) if make else {"id": n, "tenant_id": "t1", "email": f"c{n}@example.com"},
            )
        target.refresh()
        return target

    # HTTP -----------------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        self.requests.append(Request(request.method, request.path, dict(request.query), body))
        if self.delay:
            await asyncio.sleep(self.delay)
        compat = "compatible-with=8" in request.headers.get("Accept", "")
        try:
            self._check_media(request)
            status, payload = self._route(
                request.method, [p for p in request.path.split("/") if p], dict(request.query), body
            )
        except EsError as exc:
            status, payload = exc.status, exc.body()
        headers = {**PRODUCT, "Content-Type": COMPAT_JSON if compat else "application/json"}
        if request.method == "HEAD":
            return web.Response(status=status, headers=PRODUCT)
        return web.Response(status=status, body=json.dumps(payload).encode(), headers=headers)

    @staticmethod
    def _check_media(request: web.Request) -> None:
        for header in ("Accept", "Content-Type"):
            value = request.headers.get(header, "")
            if (
                "compatible-with=" in value
                and "compatible-with=8" not in value
                and "compatible-with=7" not in value
            ):
                raise EsError(
                    400,
                    "media_type_header_exception",
                    f"Invalid media-type value on headers [{header}]",
                    caused_by={
                        "type": "status_exception",
                        "reason": f"{header} version "
                        f"must be either version 8 or 7, but found {value.rsplit('=', 1)[-1]}",
                    },
                )

    @staticmethod
    async def _body(request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            return None
        if "ndjson" in request.headers.get("Content-Type", "") or request.path.endswith("_bulk"):
            return [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
        return json.loads(raw)

    def _route(
        self, method: str, parts: list[str], query: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        for task in self.cluster.tasks.values():  # tasks run in the background on a real node
            self.cluster.advance(task)
        head, tail = (parts[0] if parts else ""), parts[1:]
        system = {
            "": self._info,
            "_cluster": self._cluster_api,
            "_cat": self._cat,
            "_aliases": self._aliases,
            "_alias": self._alias,
            "_reindex": self._reindex,
            "_tasks": self._tasks,
            "_bulk": self._bulk,
            "_refresh": self._refresh,
            "_count": self._count,
        }
        if head in system:
            rest = [None, *tail] if head in ("_alias", "_bulk", "_refresh", "_count") else tail
            return system[head](method, rest, query, body)
        if not tail:
            return self._index(method, head, query, body)
        per_index = {
            "_alias": self._alias,
            "_bulk": self._bulk,
            "_refresh": self._refresh,
            "_count": self._count,
            "_doc": self._doc,
            "_mapping": self._mapping,
            "_settings": self._settings,
        }
        if tail[0] in per_index:
            return per_index[tail[0]](method, [head, *tail[1:]], query, body)
        raise EsError(
            400,
            "illegal_argument_exception",
            f"no handler found for uri [/{'/'.join(parts)}] and method [{method}]",
        )

    def _info(self, method: str, tail: list[str], query: dict, body: Any) -> tuple[int, Any]:
        return 200, {
            "name": "es01",
            "cluster_name": self.cluster.name,
            "cluster_uuid": "Dr4HtkdEQ4yBPZxQ1d3dGw",
            "version": {
                "number": "8.11.0",
                "build_flavor": "default",
                "build_type": "docker",
                "lucene_version": "9.8.0",
                "minimum_wire_compatibility_version": "7.17.0",
                "minimum_index_compatibility_version": "7.0.0",
            },
            "tagline": "You Know, for Search",
        }

    def _cluster_api(self, method: str, tail: list[str], query: dict, body: Any) -> tuple[int, Any]:
        if not tail or tail[0] != "health":
            raise EsError(
                400, "illegal_argument_exception", "only _cluster/health is served by this double"
            )
        indices = (
            self.cluster.resolve(tail[1]) if len(tail) > 1 else list(self.cluster.indices.values())
        )
        rows = {i.name: self._shard_health(i) for i in indices}
        total = {
            k: sum(r[k] for r in rows.values())
            for k in ("active_primary_shards", "active_shards", "unassigned_shards")
        }
        status = max((r["status"] for r in rows.values()), key=HEALTH_RANK.get, default="green")
        shards = total["active_shards"] + total["unassigned_shards"]
        out = {
            "cluster_name": self.cluster.name,
            "status": status,
            "timed_out": False,
            "number_of_nodes": 1,
            "number_of_data_nodes": 1,
            **total,
            "relocating_shards": 0,
            "initializing_shards": 0,
            "delayed_unassigned_shards": 0,
            "number_of_pending_tasks": 0,
            "number_of_in_flight_fetch": 0,
            "task_max_waiting_in_queue_millis": 0,
            "active_shards_percent_as_number": 100.0 * total["active_shards"] / shards
            if shards
            else 100.0,
        }
        if query.get("level") in ("indices", "shards"):
            out["indices"] = rows
        return 200, out

    @staticmethod
    def _shard_health(index: Index) -> Json:
        pri, rep = index.shards
        active = 0 if index.red else pri
        return {
            "status": index.health,
            "number_of_shards": pri,
            "number_of_replicas": rep,
            "active_primary_shards": active,
            "active_shards": active,
            "relocating_shards": 0,
            "initializing_shards": 0,
            "unassigned_shards": pri * rep + (pri if index.red else 0),
        }

    def _cat(self, method: str, tail: list[str], query: dict, body: Any) -> tuple[int, Any]:
        if not tail or tail[0] not in ("indices", "aliases"):
            raise EsError(
                400, "illegal_argument_exception", "only _cat/indices and _cat/aliases are served"
            )
        rows = (
            self._cat_indices(tail[1:], query)
            if tail[0] == "indices"
            else self._cat_aliases(tail[1:])
        )
        if query.get("s"):
            key, _, order = query["s"].partition(":")
            rows.sort(key=lambda r: str(r.get(key)), reverse=order == "desc")
        if query.get("h"):
            rows = [{k: r.get(k) for k in query["h"].split(",")} for r in rows]
        if query.get("format") != "json":
            return 200, "\n".join(" ".join(str(v) for v in r.values()) for r in rows)
        return 200, rows

    def _cat_indices(self, tail: list[str], query: dict) -> list[Json]:
        indices = self.cluster.resolve(tail[0]) if tail else list(self.cluster.indices.values())
        rows = []
        for i in indices:
            if query.get("health") and i.health != query["health"]:
                continue
            size = i.size()
            human = str(size) if query.get("bytes") == "b" else _human(size)
            pri, rep = i.shards
            stats = [None] * 5 if i.red else [str(i.count()), "0", human, human, human]
            rows.append(
                dict(
                    zip(
                        [
                            "health",
                            "status",
                            "index",
                            "uuid",
                            "pri",
                            "rep",
                            "docs.count",
                            "docs.deleted",
                            "store.size",
                            "pri.store.size",
                            "dataset.size",
                        ],
                        [
                            i.health,
                            "open",
                            i.name,
                            i.settings["index.uuid"],
                            str(pri),
                            str(rep),
                            *stats,
                        ],
                        strict=True,
                    )
                )
            )
        return rows

    def _cat_aliases(self, tail: list[str]) -> list[Json]:
        wanted = set(tail[0].split(",")) if tail else None
        return [
            {
                "alias": alias,
                "index": i.name,
                "filter": "*" if meta.get("filter") else "-",
                "routing.index": meta.get("index_routing", meta.get("routing", "-")),
                "routing.search": meta.get("search_routing", meta.get("routing", "-")),
                "is_write_index": str(meta["is_write_index"]).lower()
                if "is_write_index" in meta
                else "-",
            }
            for alias, ixs in self.cluster.aliases().items()
            if wanted is None or alias in wanted
            for i, meta in ((i, i.aliases[alias]) for i in ixs)
        ]

    def _aliases(self, method: str, tail: list[str], query: dict, body: Any) -> tuple[int, Any]:
        if method not in ("POST", "PUT"):
            raise EsError(
                405,
                "illegal_argument_exception",
                f"Incorrect HTTP method for uri [/_aliases] and method [{method}], allowed: [POST]",
            )
        self.cluster.update_aliases((body or {}).get("actions") or [])
        return 200, {"acknowledged": True}

    def _alias(self, method: str, tail: list[str], query: dict, body: Any) -> tuple[int, Any]:
        index, name = tail[0], (tail[1] if len(tail) > 1 else None)
        scope = self.cluster.resolve(index) if index else list(self.cluster.indices.values())
        wanted = set(name.split(",")) if name else None
        found = {
            i.name: {
                "aliases": {a: m for a, m in i.aliases.items() if wanted is None or a in wanted}
            }
            for i in scope
        }
        found = {k: v for k, v in found.items() if v["aliases"] or (wanted is None and index)}
        if wanted and not found:
            return 404, {"error": f"alias [{name}] missing", "status": 404}
        return 200, found

    def _reindex(self, method: str, tail: list[str], query: dict, body: Any) -> tuple[int, Any]:
        task = self.cluster.start_reindex(body or {})
        if query.get("wait_for_completion", "true") == "false":
            return 200, {"task": task.id}
        task.rate = float("inf")
        result = self.cluster.task_body(task.id)
        if "error" in result:
            raise EsError(500, result["error"]["type"], result["error"]["reason"])
        return 200, result["response"]

    def _tasks(self, method: str, tail: list[str], query: dict, body: Any) -> tuple[int, Any]:
        if not tail:
            raise EsError(
                400, "illegal_argument_exception", "task listing is not served by this double"
            )
        return 200, self.cluster.task_body(tail[0])

    def _bulk(self, method: str, tail: list[str], query: dict, body: Any) -> tuple[int, Any]:
        lines, items, started = list(body or []), [], time.monotonic()
        while lines:
            [(kind, meta)] = lines.pop(0).items()
            name = meta.get("_index") or tail[0]
            index, doc_id, result = self.cluster.write(name, meta.get("_id"), lines.pop(0))
            items.append(
                {
                    kind: {
                        "_index": index.name,
                        "_id": doc_id,
                        "_version": 1,
                        "result": result,
                        "status": 201 if result == "created" else 200,
                    }
                }
            )
            if query.get("refresh") in ("true", "wait_for", ""):
                index.refresh()
        return 200, {
            "took": int((time.monotonic() - started) * 1000),
            "errors": False,
            "items": items,
        }

    def _refresh(self, method: str, tail: list[str], query: dict, body: Any) -> tuple[int, Any]:
        indices = (
            self.cluster.resolve(tail[0])
            if tail and tail[0]
            else list(self.cluster.indices.values())
        )
        for index in indices:
            index.refresh()
        shards = sum(i.shards[0] for i in indices)
        return 200, {"_shards": {"total": shards, "successful": shards, "failed": 0}}

    def _count(self, method: str, tail: list[str], query: dict, body: Any) -> tuple[int, Any]:
        indices = (
            self.cluster.resolve(tail[0])
            if tail and tail[0]
            else list(self.cluster.indices.values())
        )
        shards = sum(i.shards[0] for i in indices)
        return 200, {
            "count": sum(i.count() for i in indices),
            "_shards": {"total": shards, "successful": shards, "skipped": 0, "failed": 0},
        }

    def _doc(self, method: str, tail: list[str], query: dict, body: Any) -> tuple[int, Any]:
        index, doc_id, result = self.cluster.write(
            tail[0], tail[1] if len(tail) > 1 else None, body or {}
        )
        if query.get("refresh") in ("true", "wait_for", ""):
            index.refresh()
        return (201 if result == "created" else 200), {
            "_index": index.name,
            "_id": doc_id,
            "_version": 1,
            "result": result,
            "_seq_no": 0,
            "_primary_term": 1,
            "_shards": {"total": 2, "successful": 1, "failed": 0},
        }

    def _mapping(self, method: str, tail: list[str], query: dict, body: Any) -> tuple[int, Any]:
        return 200, {i.name: {"mappings": i.mappings} for i in self.cluster.resolve(tail[0])}

    def _settings(self, method: str, tail: list[str], query: dict, body: Any) -> tuple[int, Any]:
        return 200, {i.name: {"settings": nest(i.settings)} for i in self.cluster.resolve(tail[0])}

    def _index(self, method: str, name: str, query: dict, body: Any) -> tuple[int, Any]:
        if method == "PUT":
            self.cluster.create(name, body)
            return 200, {"acknowledged": True, "shards_acknowledged": True, "index": name}
        if method == "DELETE":
            for index in self.cluster.resolve(name):
                del self.cluster.indices[index.name]
            return 200, {"acknowledged": True}
        indices = self.cluster.resolve(name, must_exist=method != "HEAD")
        if not indices:
            raise EsError(404, "index_not_found_exception", f"no such index [{name}]")
        return 200, {
            i.name: {"aliases": i.aliases, "mappings": i.mappings, "settings": nest(i.settings)}
            for i in indices
        }


__all__ = ["NODE_ID", "Cluster", "EsDouble", "EsError"]

"""The in-memory single-node cluster behind the ES 8.11 double: indices, aliases, reindex tasks."""

from __future__ import annotations

import base64
import copy
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]
NODE_ID = "oTUltX4IQMOUUVeiohTt8A"
BAD_CHARS = '\\/*?"<>| ,#:'
PRIVATE_SETTINGS = (
    "index.uuid",
    "index.version.created",
    "index.provided_name",
    "index.creation_date",
)
REFRESH_INTERVAL = 1.0
SCROLL_SIZE = 1000  # the reindex batch: `source.size` defaults to 1000


class EsError(Exception):
    """An Elasticsearch error response: its type, reason, HTTP status and extra fields."""

    def __init__(self, status: int, type_: str, reason: str, **extra: Any) -> None:
        super().__init__(reason)
        self.status, self.type, self.reason, self.extra = status, type_, reason, extra

    def body(self) -> Json:
        """The JSON body ES sends: `error.root_cause[]`, `error.type`, `error.reason`, `status`."""
        cause = {"type": self.type, "reason": self.reason, **self.extra}
        return {"error": {"root_cause": [cause], **cause}, "status": self.status}


def not_found(name: str) -> EsError:
    """ES's index_not_found_exception for an index or alias name."""
    return EsError(
        404,
        "index_not_found_exception",
        f"no such index [{name}]",
        **{
            "resource.type": "index_or_alias",
            "resource.id": name,
            "index_uuid": "_na_",
            "index": name,
        },
    )


def flatten(settings: Json, prefix: str = "") -> dict[str, Any]:
    """Nested settings as ES's flat `index.x.y` keys with string values."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        elif isinstance(value, list):
            flat[name] = [str(v) for v in value]  # list settings (analyzer filters) stay lists
        else:
            flat[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return {k if k.startswith("index.") else "index." + k: v for k, v in flat.items()}


def nest(flat: dict[str, Any]) -> Json:
    """Flat settings as the nested shape GET _settings returns."""
    tree: Json = {}
    for key, value in sorted(flat.items()):
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def check_name(name: str, what: str = "index") -> None:
    """ES's validateIndexOrAliasName plus the lowercase rule."""
    label = f"Invalid {what} name [{name}]"
    if any(c in name for c in BAD_CHARS):
        raise EsError(
            400,
            f"invalid_{what}_name_exception",
            f"{label}, must not contain the following characters "
            "[' ','\"','*',',','/','<','>','?','\\\\','|',':','#']",
        )
    if name[:1] in "_-+":
        raise EsError(
            400, f"invalid_{what}_name_exception", f"{label}, must not start with '_', '-', or '+'"
        )
    if name in (".", "..") or not name or len(name.encode()) > 255:
        raise EsError(
            400,
            f"invalid_{what}_name_exception",
            f"{label}, must not be '.', '..' or empty or too long",
        )
    if name != name.lower():
        raise EsError(400, f"invalid_{what}_name_exception", f"{label}, must be lowercase")


@dataclass
class Index:
    """One concrete index on the single node."""

    name: str
    settings: dict[str, Any]
    mappings: Json
    aliases: dict[str, Json] = field(default_factory=dict)
    docs: dict[str, Json] = field(default_factory=dict)
    visible: int = 0
    last_write: float = 0.0
    red: bool = False

    @property
    def shards(self) -> tuple[int, int]:
        """(primaries, replicas per primary)."""
        return int(self.settings["index.number_of_shards"]), int(
            self.settings["index.number_of_replicas"]
        )

    @property
    def health(self) -> str:
        """red when a primary is unassigned; yellow when replicas are (always, on one node)."""
        return "red" if self.red else "yellow" if self.shards[1] else "green"

    def write(self, doc_id: str, source: Json) -> str:
        """Index one document; `created` or `updated`."""
        result = "updated" if doc_id in self.docs else "created"
        self.docs[doc_id] = source
        self.last_write = time.monotonic()
        if self.mappings.get("dynamic", True) not in (False, "false", "strict"):
            props = self.mappings.setdefault("properties", {})
            for key, value in source.items():
                props.setdefault(key, {"type": _guess(value)})
        return result

    def refresh(self) -> None:
        """Make every write searchable (what _refresh, refresh=true and the 1 s interval do)."""
        self.visible = len(self.docs)

    def count(self) -> int:
        """Documents a search sees: writes show after a refresh or the refresh interval."""
        if time.monotonic() - self.last_write >= REFRESH_INTERVAL:
            self.refresh()
        return self.visible

    def size(self) -> int:
        """Store size in bytes, roughly what Lucene needs."""
        return 225 + sum(len(json.dumps(d)) for d in self.docs.values()) * 6 // 5


def _guess(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "float"
    return "text" if not isinstance(value, dict) else "object"


@dataclass
class Task:
    """A `_reindex?wait_for_completion=false` task copying a batch at a time as the clock runs."""

    number: int
    source: str
    dest: str
    ids: list[str]
    started: float
    rate: float
    created: int = 0
    updated: int = 0
    error: Json | None = None
    start_ms: int = field(default_factory=lambda: int(time.time() * 1000))

    @property
    def id(self) -> str:
        """`<node>:<number>`, as ES prints it."""
        return f"{NODE_ID}:{self.number}"

    @property
    def done(self) -> int:
        """Documents processed so far."""
        return self.created + self.updated

    def status(self) -> Json:
        """The task's `status` object (BulkByScrollTask.Status)."""
        return {
            "total": len(self.ids),
            "updated": self.updated,
            "created": self.created,
            "deleted": 0,
            "batches": -(-self.done // SCROLL_SIZE),
            "version_conflicts": 0,
            "noops": 0,
            "retries": {"bulk": 0, "search": 0},
            "throttled_millis": 0,
            "requests_per_second": -1.0,
            "throttled_until_millis": 0,
        }


class Cluster:
    """A single-node ES 8.11 cluster's state; every change goes through one of these methods."""

    def __init__(self, name: str = "clientforge-es") -> None:
        self.name = name
        self.indices: dict[str, Index] = {}
        self.tasks: dict[int, Task] = {}
        self.reindex_rate = 20_000.0  # documents per second a reindex task copies
        self.fail_reindex: str | None = None  # a reason: the next task stops with it
        self._task_numbers = iter(range(4711, 10**9))

    # names ----------------------------------------------------------------------------------------
    def aliases(self) -> dict[str, list[Index]]:
        """Alias name → the indices it points to."""
        found: dict[str, list[Index]] = {}
        for index in self.indices.values():
            for alias in index.aliases:
                found.setdefault(alias, []).append(index)
        return found

    def resolve(self, expression: str, *, must_exist: bool = True) -> list[Index]:
        """Concrete indices for `a,b`, `c*`, `_all` or an alias; hidden (dot) ones only by name."""
        found: dict[str, Index] = {}
        aliases = self.aliases()
        for part in expression.split(","):
            if part in ("_all", "*") or "*" in part:
                pattern = re.compile(
                    "^" + re.escape(part if part != "_all" else "*").replace("\\*", ".*") + "$"
                )
                found.update(
                    {
                        n: i
                        for n, i in self.indices.items()
                        if pattern.match(n) and not n.startswith(".")
                    }
                )
                found.update(
                    {i.name: i for a, ix in aliases.items() if pattern.match(a) for i in ix}
                )
            elif part in self.indices:
                found[part] = self.indices[part]
            elif part in aliases:
                found.update({i.name: i for i in aliases[part]})
            elif must_exist:
                raise not_found(part)
        return sorted(found.values(), key=lambda i: i.name)

    def one(self, name: str) -> Index:
        """The single concrete index a name (or a single-index alias) means."""
        found = self.resolve(name)
        if len(found) != 1:
            raise EsError(
                400, "illegal_argument_exception", f"[{name}] resolves to {len(found)} indices"
            )
        return found[0]

    # indices --------------------------------------------------------------------------------------
    def create(self, name: str, body: Json | None = None, *, hidden: bool = False) -> Index:
        """PUT /<index>: validate the name and settings, refuse existing names."""
        body = body or {}
        check_name(name)
        if name in self.indices:
            uuid = self.indices[name].settings["index.uuid"]
            raise EsError(
                400,
                "resource_already_exists_exception",
                f"index [{name}/{uuid}] already exists",
                index_uuid=uuid,
                index=name,
            )
        if name in self.aliases():
            raise EsError(
                400,
                "invalid_index_name_exception",
                f"Invalid index name [{name}], already exists as alias",
                index_uuid="_na_",
                index=name,
            )
        flat = flatten(body.get("settings") or {})
        for key in PRIVATE_SETTINGS:
            if key in flat:
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    f"private index setting [{key}] can not be set explicitly",
                )
        uuid = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode()[:22]
        settings = {
            "index.number_of_shards": "1",
            "index.number_of_replicas": "1",
            "index.routing.allocation.include._tier_preference": "data_content",
            **flat,
            "index.uuid": uuid,
            "index.provided_name": name,
            "index.version.created": "8500003",
            "index.creation_date": str(int(time.time() * 1000)),
        }
        if hidden:
            settings["index.hidden"] = "true"
        index = Index(name, settings, copy.deepcopy(body.get("mappings") or {}))
        for alias, meta in (body.get("aliases") or {}).items():
            self._check_alias_name(alias)
            index.aliases[alias] = dict(meta or {})
        self.indices[name] = index
        return index

    def write(self, name: str, doc_id: str | None, source: Json) -> tuple[Index, str, str]:
        """Index a document, creating the index with dynamic mappings if absent (auto-create)."""
        index = self.indices.get(name) or (
            self.one(name) if name in self.aliases() else self.create(name)
        )
        doc_id = doc_id or base64.urlsafe_b64encode(secrets.token_bytes(15)).decode()
        return index, doc_id, index.write(doc_id, source)

    # aliases --------------------------------------------------------------------------------------
    def _check_alias_name(self, alias: str) -> None:
        check_name(alias, "alias")
        if alias in self.indices:
            raise EsError(
                400,
                "invalid_alias_name_exception",
                f"Invalid alias name [{alias}]: an index or data stream "
                "exists with the same name as the alias",
                index_uuid=self.indices[alias].settings["index.uuid"],
                index=alias,
            )

    def update_aliases(self, actions: list[Json]) -> None:
        """POST /_aliases: check every action first, then apply them all in one step."""
        if not actions:
            raise EsError(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: No action specified;",
            )
        planned: list[tuple[str, Index, str, Json]] = []
        for action in actions:
            [(kind, spec)] = action.items()
            if kind not in ("add", "remove"):
                raise EsError(
                    400, "illegal_argument_exception", f"unsupported alias action [{kind}]"
                )
            names = spec.get("indices") or [spec.get("index")]
            aliases = spec.get("aliases") or [spec.get("alias")]
            for index in (i for n in names for i in self.resolve(str(n))):
                for alias in aliases:
                    if kind == "add":
                        self._check_alias_name(alias)
                    elif alias not in index.aliases and spec.get("must_exist"):
                        raise EsError(
                            404,
                            "aliases_not_found_exception",
                            f"aliases [{alias}] missing",
                            **{"resource.type": "aliases", "resource.id": alias},
                        )
                    meta = {
                        k: v
                        for k, v in spec.items()
                        if k not in ("index", "indices", "alias", "aliases", "must_exist")
                    }
                    planned.append((kind, index, alias, meta))
        for kind, index, alias, meta in planned:
            if kind == "add":
                index.aliases[alias] = meta
            else:
                index.aliases.pop(alias, None)

    # reindex --------------------------------------------------------------------------------------
    def start_reindex(self, body: Json) -> Task:
        """POST /_reindex?wait_for_completion=false: snapshot the source's ids, return the task."""
        source, dest = body.get("source") or {}, body.get("dest") or {}
        src = source.get("index")
        if not src or not dest.get("index"):
            raise EsError(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: use _reindex with source.index and dest.index;",
            )
        indices = self.resolve(",".join(src) if isinstance(src, list) else src)
        if dest["index"] in [i.name for i in indices]:
            raise EsError(
                400,
                "action_request_validation_exception",
                f"Validation Failed: 1: reindex cannot write "
                f"into an index its reading from [{dest['index']}];",
            )
        ids = [f"{i.name}\0{d}" for i in indices for d in list(i.docs)[: i.count()]]
        task = Task(
            next(self._task_numbers),
            src if isinstance(src, str) else ",".join(src),
            dest["index"],
            ids,
            time.monotonic(),
            self.reindex_rate,
        )
        if self.fail_reindex:
            task.error, self.fail_reindex = (
                {"type": "es_rejected_execution_exception", "reason": self.fail_reindex},
                None,
            )
        self.tasks[task.number] = task
        return task

    def advance(self, task: Task) -> None:
        """Copy the batches the elapsed time allows."""
        if task.error:
            return
        due = min(
            len(task.ids),
            int((time.monotonic() - task.started) * task.rate) // SCROLL_SIZE * SCROLL_SIZE,
        )
        for key in task.ids[task.done : due]:
            index_name, doc_id = key.split("\0")
            result = self.write(task.dest, doc_id, self.indices[index_name].docs[doc_id])[2]
            task.created += result == "created"
            task.updated += result == "updated"
        if task.done == len(task.ids) and task.ids:
            self.indices[task.dest].refresh() if task.dest in self.indices else None

    def task_body(self, task_id: str) -> Json:
        """GET /_tasks/<id>: the running task, or its stored result once completed."""
        node, _, number = task_id.partition(":")
        if not number.isdigit():
            raise EsError(400, "illegal_argument_exception", f"malformed task id {task_id}")
        task = self.tasks.get(int(number))
        if node != NODE_ID or task is None:
            raise EsError(
                404,
                "resource_not_found_exception",
                f"task [{task_id}] isn't running and hasn't stored its results",
            )
        self.advance(task)
        completed = task.error is not None or task.done == len(task.ids)
        info = {
            "node": NODE_ID,
            "id": task.number,
            "type": "transport",
            "action": "indices:data/write/reindex",
            "status": task.status(),
            "description": f"reindex from [{task.source}] to [{task.dest}]",
            "start_time_in_millis": task.start_ms,
            "running_time_in_nanos": int((time.monotonic() - task.started) * 1e9),
            "cancellable": True,
            "cancelled": False,
            "headers": {},
        }
        body: Json = {"completed": completed, "task": info}
        if completed:
            self._store_result()
            if task.error:
                body["error"] = task.error
            else:
                body["response"] = {
                    "took": int((time.monotonic() - task.started) * 1000),
                    "timed_out": False,
                    **{k: v for k, v in task.status().items()},
                    "throttled": "0s",
                    "throttled_until": "0s",
                    "failures": [],
                }
        return body

    def _store_result(self) -> None:
        """Completed tasks' results go to the hidden `.tasks` index, as on a real node."""
        if ".tasks" not in self.indices:
            self.create(".tasks", {"settings": {"number_of_replicas": 0}}, hidden=True)

"""`es status|indices|aliases`: the Elasticsearch cluster, its indices and aliases, read-only."""

from __future__ import annotations

import asyncio
import re
from typing import Any, TypeVar

from bot.core.context import Context
from bot.core.errors import CommandError
from bot.core.paging import page_of, page_option
from bot.core.registry import Args, NoArgs, command, option
from bot.core.result import Action, Result, Status, Table, worst
from bot.text import units
from bot.text.cells import Code, Text, join, lines, rich

T = TypeVar("T")
HEALTH = {"green": Status.OK, "yellow": Status.WARNING, "red": Status.CRITICAL}
HEALTH_ORDER = {"red": 0, "yellow": 1, "green": 2}
EXPECTED_INDICES = (
    "contacts",
    "accounts",
    "deals",
    "clientforge",
)  # schemes A and B (clientforge.md §7)
EXPECTED_ALIASES = ("contacts-current", "accounts-current", "deals-current")
TENANT_ALIAS = re.compile(r"^(?P<entity>[a-z]+)-tenant-[0-9a-f-]{36}$")
NAME_CHARS = re.compile(r"^[a-z0-9][a-z0-9._+-]*$")


class IndicesArgs(Args):
    """Arguments of `es indices`."""

    all: bool = option(False, help='also list hidden and system indices (names starting with ".")')
    page: int = page_option()


def name_problem(name: str) -> Text | None:
    """Why a text cannot name one index or alias, or None when it can."""
    checks = (
        (not name, "it is empty"),
        (name == "_all", rich(Code("_all"), " means every index")),
        ("*" in name or "?" in name, "wildcards match many indices; name exactly one"),
        ("," in name, "a comma lists several indices; name exactly one"),
        (name.startswith("-"), 'a leading "-" excludes indices from a pattern'),
        (
            name[:1] in ("_", "+"),
            'names can\'t start with "_" or "+" ("_" marks Elasticsearch\'s own endpoints)',
        ),
        (
            name[:1] == ".",
            'names starting with "." are hidden or system indices, which forge leaves alone',
        ),
        (name != name.lower(), "Elasticsearch names are lowercase"),
        (len(name.encode()) > 255, "it is longer than 255 bytes"),
        (
            not NAME_CHARS.fullmatch(name),
            'only lowercase letters, digits, ".", "_", "-" and "+" are allowed',
        ),
    )
    return next((why for bad, why in checks if bad), None)


def check_name(name: str, what: str = "index") -> str:
    """The name when it names exactly one index or alias; else a CommandError saying why not."""
    why = name_problem(name)
    if why:
        raise CommandError(rich(Code(shown(name)), f" is not an {what} name: ", why, "."))
    return name


def shown(text: str) -> str:
    """User text safe to quote in a message: short, no backticks."""
    return text[:60]


def explain_failure(cause: dict[str, Any]) -> str:
    """An ErrorCause object (a task's `error`, a failure's `cause`) in one line."""
    return f"{cause.get('type', 'error')}: {str(cause.get('reason', ''))[:200]}"


def grade_health(health: dict[str, Any]) -> tuple[Status, str]:
    """green ok, red critical; yellow ok on one data node (nowhere for replicas), else a warning."""
    state = str(health.get("status", "unknown"))
    nodes = int(health.get("number_of_data_nodes") or 0)
    if state == "yellow" and nodes == 1:
        return (
            Status.OK,
            "yellow on a single data node: replica shards have no second node to live on; expected",
        )
    if state == "yellow":
        return (
            Status.WARNING,
            f"yellow: {health.get('unassigned_shards', 0)} replica shards unassigned",
        )
    if state == "red":
        return (
            Status.CRITICAL,
            "red: some primary shards are unassigned, so some data cannot be searched or written",
        )
    return HEALTH.get(state, Status.CRITICAL), state


def index_status(health: str, single_node: bool) -> Status:
    """One index's health as a status; yellow counts as ok on a single node."""
    if health == "yellow" and single_node:
        return Status.OK
    return HEALTH.get(health, Status.CRITICAL)


async def cluster_health(ctx: Context, level: str = "cluster") -> dict[str, Any]:
    """GET _cluster/health."""
    return dict(
        (await ctx.backends.es.call(ctx.backends.elasticsearch().cluster.health(level=level))).body
    )


async def cat_indices(ctx: Context) -> list[dict[str, Any]]:
    """GET _cat/indices?format=json&bytes=b, every index (hidden ones too)."""
    rows = await ctx.backends.es.call(
        ctx.backends.elasticsearch().cat.indices(format="json", bytes="b", expand_wildcards="all")
    )
    return [dict(r) for r in rows.body if isinstance(r, dict)]


async def cat_aliases(ctx: Context) -> list[dict[str, Any]]:
    """GET _cat/aliases?format=json."""
    rows = await ctx.backends.es.call(
        ctx.backends.elasticsearch().cat.aliases(format="json", expand_wildcards="all")
    )
    return [dict(r) for r in rows.body if isinstance(r, dict)]


def size(value: Any) -> str:
    """Bytes as kB, MB or GB; `—` when unknown (a red index has no stats)."""
    return "—" if value in (None, "", "-") else units.size(float(value))


def docs(value: Any) -> str:
    """A document count with thousands separators; `—` when unknown."""
    return "—" if value in (None, "", "-") else f"{int(value):,}"


def _not_green(health: dict[str, Any]) -> list[list[str]]:
    """Rows of the indices that are red (or yellow on several nodes), red first."""
    single = int(health.get("number_of_data_nodes") or 0) == 1
    bad = sorted(
        ((n, i) for n, i in (health.get("indices") or {}).items() if i.get("status") != "green"),
        key=lambda item: (HEALTH_ORDER.get(item[1].get("status"), 0), item[0]),
    )
    return [
        [
            n,
            i.get("status", "?"),
            f"{i.get('active_primary_shards', 0)}/{i.get('number_of_shards', 0)}",
            str(i.get("unassigned_shards", 0)),
        ]
        for n, i in bad
        if not (single and i.get("status") == "yellow")
    ]


def _health_fields(health: dict[str, Any], version: str) -> list[tuple[str, str]]:
    """The key figures of `_cluster/health`."""
    h = health.get
    return [
        ("Cluster", str(h("cluster_name", "?"))),
        ("Health", str(h("status", "?"))),
        ("Version", version),
        ("Nodes", f"{h('number_of_nodes', 0)} ({h('number_of_data_nodes', 0)} data)"),
        (
            "Active shards",
            f"{h('active_shards', 0)} ({h('active_primary_shards', 0)} primary, "
            f"{float(h('active_shards_percent_as_number', 0)):.0f} %)",
        ),
        ("Unassigned shards", str(h("unassigned_shards", 0))),
        (
            "Relocating / initializing",
            f"{h('relocating_shards', 0)} / {h('initializing_shards', 0)}",
        ),
        ("Pending tasks", str(h("number_of_pending_tasks", 0))),
    ]


@command(
    "es status",
    summary="Cluster health: status, nodes, shards; yellow on one node is fine, red is critical.",
    args=NoArgs,
    examples=("es status",),
)
async def es_status(ctx: Context, args: NoArgs) -> Result:
    """_cluster/health with per-index health, and the version from GET /."""
    client = ctx.backends.elasticsearch()
    health, info = await asyncio.gather(
        cluster_health(ctx, "indices"), ctx.backends.es.call(client.info())
    )
    status, note = grade_health(health)
    version = str((info.body.get("version") or {}).get("number", "?"))
    rows = _not_green(health)
    return Result(
        "es status",
        status,
        summary=f"Elasticsearch is {note}.",
        fields=_health_fields(health, version),
        tables=[
            Table(
                ["index", "health", "primaries active", "unassigned shards"],
                rows,
                "Indices not green",
            )
        ]
        if rows
        else [],
        actions=[Action("Indices", "es indices"), Action("Aliases", "es aliases")],
        data={
            "health": health.get("status"),
            "nodes": health.get("number_of_nodes"),
            "unassigned_shards": health.get("unassigned_shards"),
            "indices_not_green": [r[0] for r in rows],
            "version": version,
        },
    )


@command(
    "es indices",
    summary="Every index: health, documents, size and aliases; worst first.",
    args=IndicesArgs,
    examples=("es indices", "es indices --all"),
)
async def es_indices(ctx: Context, args: IndicesArgs) -> Result:
    """_cat/indices joined with _cat/aliases; notes ClientForge indices that are missing."""
    health, indices, aliases = await asyncio.gather(
        cluster_health(ctx), cat_indices(ctx), cat_aliases(ctx)
    )
    single = int(health.get("number_of_data_nodes") or 0) == 1
    names: dict[str, list[str]] = {}
    for row in aliases:
        names.setdefault(str(row.get("index")), []).append(str(row.get("alias")))
    shown_rows = [r for r in indices if args.all or not str(r.get("index", "")).startswith(".")]
    shown_rows.sort(key=lambda r: (HEALTH_ORDER.get(r.get("health"), 0), str(r.get("index"))))
    rows = [
        [
            str(r.get("index")),
            str(r.get("health")),
            docs(r.get("docs.count")),
            size(r.get("store.size")),
            f"{r.get('pri')}/{r.get('rep')}",
            _alias_list(names.get(str(r.get("index")), [])),
        ]
        for r in shown_rows
    ]
    rows, page = page_of(rows, args.page)
    status = worst([index_status(str(r.get("health")), single) for r in shown_rows])
    present = {str(r.get("index")) for r in indices}
    missing = [n for n in EXPECTED_INDICES if n not in present]
    status = worst([status, Status.WARNING]) if missing else status
    hidden = len(indices) - len(shown_rows)
    notes = [
        rich(
            "ClientForge indices missing: ",
            join(", ", [Code(n) for n in missing]),
            " (the app's search falls back to PostgreSQL without ",
            Code("clientforge"),
            "; data-sync writes ",
            join(", ", [Code(n) for n in ("contacts", "accounts", "deals")]),
            ").",
        )
        if missing
        else "",
        rich(
            f"{hidden} hidden or system indices not shown; ",
            Code("es indices --all"),
            " lists them.",
        )
        if hidden
        else "",
    ]
    total = sum(int(r.get("docs.count") or 0) for r in shown_rows)
    return Result(
        "es indices",
        status,
        summary=f"{len(shown_rows)} indices, {total:,} documents.",
        text=lines(*(n for n in notes if n)),
        tables=[Table(["index", "health", "docs", "size", "pri/rep", "aliases"], rows)]
        if rows
        else [],
        page=page,
        data={
            "indices": [{"index": r[0], "health": r[1], "docs": r[2], "size": r[3]} for r in rows],
            "missing": missing,
        },
    )


def _alias_list(aliases: list[str], limit: int = 3) -> str:
    aliases = sorted(aliases)
    more = f" +{len(aliases) - limit}" if len(aliases) > limit else ""
    return ", ".join(aliases[:limit]) + more if aliases else "—"


def _alias_rows(rows: list[dict[str, Any]]) -> tuple[list[list[str]], dict[str, int]]:
    """Plain aliases one per row; tenant ones (`<entity>-tenant-<uuid>`) counted per entity."""
    plain: list[list[str]] = []
    tenants: dict[str, int] = {}
    for r in sorted(rows, key=lambda r: (str(r.get("alias")), str(r.get("index")))):
        match = TENANT_ALIAS.match(str(r.get("alias")))
        if match:
            tenants[match["entity"]] = tenants.get(match["entity"], 0) + 1
            continue
        write = {"true": "yes", "false": "no"}.get(str(r.get("is_write_index")), "—")
        plain.append(
            [
                str(r.get("alias")),
                str(r.get("index")),
                "yes" if r.get("filter") not in ("-", None) else "no",
                write,
            ]
        )
    return plain, tenants


@command(
    "es aliases",
    summary="Every alias and the index it points to; tenant aliases counted per entity.",
    args=NoArgs,
    examples=("es aliases",),
)
async def es_aliases(ctx: Context, args: NoArgs) -> Result:
    """_cat/aliases; notes the `-current` aliases ClientForge creates at start-up when absent."""
    rows = [r for r in await cat_aliases(ctx) if not str(r.get("alias", "")).startswith(".")]
    plain, tenants = _alias_rows(rows)
    present = {str(r.get("alias")) for r in rows}
    missing = [a for a in EXPECTED_ALIASES if a not in present]
    notes = [
        rich("Missing ClientForge aliases: ", join(", ", [Code(a) for a in missing]), ".")
        if missing
        else "",
        rich(
            "Tenant aliases: ",
            join(", ", [rich(f"{n:,} on ", Code(f"{e}-*")) for e, n in sorted(tenants.items())]),
            " (static snapshots: an ILM rollover leaves them on the old index).",
        )
        if tenants
        else "",
    ]
    return Result(
        "es aliases",
        Status.WARNING if missing else Status.OK,
        summary=f"{len(present):,} aliases on "
        f"{len({str(r.get('index')) for r in rows}):,} indices.",
        text=lines(*(n for n in notes if n)),
        tables=[Table(["alias", "index", "filter", "write index"], plain)] if plain else [],
        data={
            "aliases": [{"alias": r[0], "index": r[1]} for r in plain],
            "tenant_aliases": tenants,
            "missing": missing,
        },
    )


__all__ = [
    "EXPECTED_ALIASES",
    "EXPECTED_INDICES",
    "cat_aliases",
    "cat_indices",
    "check_name",
    "cluster_health",
    "explain_failure",
    "grade_health",
    "name_problem",
    "shown",
]

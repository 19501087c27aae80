"""`es reindex` checks and plan: the names, what the cluster holds, and the dry run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.core.context import Context
from bot.core.errors import CommandError
from bot.core.registry import Args, option, positional
from bot.core.result import Result, Status
from bot.core.scope import Scope
from bot.text.cells import Code, Text, join, rich
from commands.search.es import check_name, shown

# Index settings a new index may take from its source; the rest (uuid, creation_date,
# provided_name, version, routing, lifecycle, blocks, resize …) belong to the source itself, and
# ES refuses the private ones.
COPIED_SETTINGS = (
    "number_of_shards",
    "number_of_replicas",
    "analysis",
    "similarity",
    "mapping",
    "max_result_window",
    "refresh_interval",
    "codec",
    "sort",
    "max_ngram_diff",
    "max_shingle_diff",
    "query",
    "knn",
)
CARRIED_ALIAS_FIELDS = ("filter", "index_routing", "search_routing", "is_write_index", "is_hidden")
LIVE_INDICES = ("contacts", "accounts", "deals", "clientforge")


class ReindexArgs(Args):
    """Arguments of `es reindex`."""

    source: str = positional(help='the index (or single-index alias) to copy, e.g. "contacts"')
    dest: str = positional(
        help='the index to copy into, e.g. "contacts-v2"; created like the source when absent'
    )
    alias: str | None = option(
        help="when the copy is complete and counted, move this alias from source to dest"
    )
    dry_run: bool = option(False, help="say what would happen, change nothing")


@dataclass
class Plan:
    """What a reindex will do, as read from the cluster just before."""

    source: str
    concrete: str
    dest: str
    source_docs: int
    dest_exists: bool
    dest_docs: int = 0
    mappings: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    alias: str | None = None
    alias_on: list[str] = field(default_factory=list)
    alias_meta: dict[str, Any] = field(default_factory=dict)
    uuid: str = ""

    def scope(self) -> Scope:
        """What the dry run showed: the source index's UUID and count, and the alias's target."""
        return Scope.of(
            source=self.concrete,
            source_uuid=self.uuid,
            source_docs=self.source_docs,
            alias=self.alias,
            alias_on=",".join(self.alias_on) if self.alias else None,
        )

    def alias_actions(self) -> list[dict[str, Any]]:
        """The swap's `_aliases` actions: remove from the old index (must be there), add to dest."""
        if not self.alias:
            return []
        remove = (
            [{"remove": {"index": self.concrete, "alias": self.alias, "must_exist": True}}]
            if self.concrete in self.alias_on
            else []
        )
        return remove + [{"add": {"index": self.dest, "alias": self.alias, **self.alias_meta}}]


def trap(alias: str) -> Text:
    """Why an alias can't be named like an existing index, the runbook's recipe as the example."""
    hint = (
        rich(Code(f"--alias {alias}-current"), ", ClientForge's own alias for that index")
        if alias in LIVE_INDICES[:3]
        else "an alias name that no index has"
    )
    return rich(
        Code(alias),
        " is an index, not an alias: Elasticsearch refuses an alias named like an existing index "
        "(invalid_alias_name_exception), so the swap could never happen. The runbook's recipe (",
        Code("contacts_v1"),
        " → ",
        Code("contacts_v2"),
        " behind alias ",
        Code("contacts"),
        ") falls into exactly this on ClientForge, where ",
        Code("contacts"),
        " is the index data-sync writes to. Use ",
        hint,
        "; making ",
        Code(alias),
        " an alias means deleting that index first, which forge does not do.",
    )


def check_names(args: ReindexArgs) -> None:
    """Each name names one index or alias, and they do not collide."""
    check_name(args.source)
    check_name(args.dest)
    if args.alias is not None:
        check_name(args.alias, "alias")
    if args.source == args.dest:
        raise CommandError("Source and dest are the same index; reindex copies into another one.")
    if args.alias == args.dest:
        raise CommandError(
            rich(
                Code(shown(args.dest)),
                " can't be both the new index and the alias that points to it.",
            )
        )


async def _source(ctx: Context, name: str) -> tuple[str, dict[str, Any]]:
    """The one concrete index a source name means, with its mappings and settings."""
    got = (
        await ctx.backends.es.call(
            ctx.backends.elasticsearch().indices.get(index=name),
            missing=rich(
                "No index or alias ",
                Code(shown(name)),
                " in Elasticsearch; ",
                Code("es indices"),
                " lists them.",
            ),
        )
    ).body
    if len(got) != 1:
        raise CommandError(
            rich(
                Code(shown(name)),
                f" is an alias of {len(got)} indices ({', '.join(sorted(got))[:200]}); "
                "name the one index to copy.",
            )
        )
    [(concrete, meta)] = got.items()
    return concrete, meta


def copied_settings(meta: dict[str, Any]) -> dict[str, Any]:
    """The source's settings a new index may take."""
    index = (meta.get("settings") or {}).get("index") or {}
    return {k: v for k, v in index.items() if k in COPIED_SETTINGS}


async def doc_count(ctx: Context, index: str) -> int:
    """Documents a search sees in the index now."""
    return int(
        (await ctx.backends.es.call(ctx.backends.elasticsearch().count(index=index))).body["count"]
    )


async def _alias_state(ctx: Context, plan: Plan) -> None:
    """Which indices the alias is on now; refuse it when it is a concrete index or is elsewhere."""
    client = ctx.backends.elasticsearch()
    alias = plan.alias or ""
    if not await ctx.backends.es.call(client.indices.exists_alias(name=alias)):
        if await ctx.backends.es.call(client.indices.exists(index=alias)):
            raise CommandError(trap(alias))
        return
    got = (await ctx.backends.es.call(client.indices.get_alias(name=alias))).body
    plan.alias_on = sorted(got)
    if plan.concrete not in got:
        raise CommandError(
            rich(
                "Alias ",
                Code(alias),
                " points to ",
                join(", ", [Code(i) for i in plan.alias_on[:10]]),
                ", not to ",
                Code(plan.concrete),
                ": forge moves an alias from the index that was copied, nothing else.",
            )
        )
    old = (got[plan.concrete].get("aliases") or {}).get(alias) or {}
    plan.alias_meta = {k: v for k, v in old.items() if k in CARRIED_ALIAS_FIELDS}


async def inspect(ctx: Context, args: ReindexArgs) -> Plan:
    """Check the names against the cluster, read what reindex needs; raise on anything unsafe."""
    check_names(args)
    client = ctx.backends.elasticsearch()
    concrete, meta = await _source(ctx, args.source)
    if concrete == args.dest:
        raise CommandError(
            rich(
                Code(shown(args.source)),
                " is an alias of ",
                Code(concrete),
                ", so dest would be the source itself.",
            )
        )
    plan = Plan(
        args.source,
        concrete,
        args.dest,
        await doc_count(ctx, concrete),
        False,
        mappings=dict(meta.get("mappings") or {}),
        settings=copied_settings(meta),
        alias=args.alias,
        uuid=str(((meta.get("settings") or {}).get("index") or {}).get("uuid") or ""),
    )
    if await ctx.backends.es.call(client.indices.exists(index=args.dest)):
        if await ctx.backends.es.call(client.indices.exists_alias(name=args.dest)):
            raise CommandError(
                rich(
                    Code(shown(args.dest)),
                    " is an alias; reindex into a concrete, preferably new, index.",
                )
            )
        plan.dest_exists, plan.dest_docs = True, await doc_count(ctx, args.dest)
    if args.alias:
        await _alias_state(ctx, plan)
    return plan


def _plan_lines(plan: Plan) -> list[Text]:
    """What the preview explains beyond the summary."""
    lines: list[Text] = []
    if plan.dest_exists:
        lines.append(
            rich(
                Code(plan.dest),
                f" exists with {plan.dest_docs:,} documents: it is used as it is "
                "(its mappings are not changed), documents with the same id are overwritten, "
                "and the counts must match before any alias moves.",
            )
        )
    if plan.concrete in LIVE_INDICES:
        lines.append(
            rich(
                "ClientForge writes to ",
                Code(plan.concrete),
                " by name: documents written during the copy are not in it, and the count check "
                "then stops before the alias moves. Pause data-sync first.",
            )
        )
    if plan.alias and len(plan.alias_on) > 1:
        lines.append(
            rich(
                Code(plan.alias),
                " also points to ",
                join(", ", [Code(i) for i in plan.alias_on if i != plan.concrete]),
                "; those stay.",
            )
        )
    return lines


async def reindex_preview(ctx: Context, args: ReindexArgs) -> Result:
    """The dry run of `es reindex`: the copy, the new index and the alias move it would make."""
    plan = await inspect(ctx, args)
    how = "into the existing" if plan.dest_exists else "into a new index"
    created = (
        ""
        if plan.dest_exists
        else (
            rich(
                f", created with the mappings ({len(plan.mappings.get('properties') or {})} "
                "fields) and settings of ",
                Code(plan.concrete),
            )
        )
    )
    move = (
        rich(
            ", then move alias ",
            Code(plan.alias),
            " from ",
            Code(plan.concrete),
            " to ",
            Code(plan.dest),
            " in one atomic call",
        )
        if plan.alias and plan.alias_on
        else rich(", then create alias ", Code(plan.alias), " on ", Code(plan.dest))
        if plan.alias
        else ""
    )
    summary = rich(
        f"Would copy {plan.source_docs:,} documents from ",
        Code(plan.concrete),
        f" {how} ",
        Code(plan.dest),
        created,
        move,
        ".",
    )
    fields = [
        ("Source", f"{plan.concrete} ({plan.source_docs:,} docs)"),
        (
            "Dest",
            f"{plan.dest} (exists, {plan.dest_docs:,} docs)"
            if plan.dest_exists
            else f"{plan.dest} (new)",
        ),
        (
            "Settings copied",
            ", ".join(
                f"{k}={v}" if not isinstance(v, dict) else k
                for k, v in sorted(plan.settings.items())
            )
            or "none",
        ),
    ]
    if plan.alias:
        fields.append(
            ("Alias", f"{plan.alias}: {', '.join(plan.alias_on) or '(new)'} → {plan.dest}")
        )
    return Result(
        f"es reindex {plan.source} {plan.dest} --dry-run",
        Status.WARNING,
        summary=summary,
        fields=fields,
        text=join("\n", _plan_lines(plan)),
        data={
            "source": plan.concrete,
            "dest": plan.dest,
            "documents": plan.source_docs,
            "dest_exists": plan.dest_exists,
            "alias": plan.alias,
            "alias_on": plan.alias_on,
            "alias_actions": plan.alias_actions(),
            "settings": plan.settings,
        },
        scope=plan.scope(),
    )

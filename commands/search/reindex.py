"""`es reindex source dest [--alias name]`: copy an index into a new one as a task, check, then move an alias."""

from __future__ import annotations

import asyncio
import warnings
from dataclasses import dataclass, field
from typing import Any

from elasticsearch.exceptions import GeneralAvailabilityWarning

from bot.core.context import Context
from bot.core.errors import BackendError, CommandError
from bot.core.registry import Args, Risk, Role, command, option, positional
from bot.core.result import Action, Result, Status
from commands.search.es import check_name, es_call, explain_failure, shown

POLL_SECONDS = 1.0
MAX_POLL_FAILURES = 3
TIMEOUT = 3600.0
DEADLINE_MARGIN = 30.0
# Index settings a new index may take from its source; the rest (uuid, creation_date, provided_name, version,
# routing, lifecycle, blocks, resize …) belong to the source itself, and ES refuses the private ones.
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

    source: str = positional(help="the index (or single-index alias) to copy, e.g. `contacts`")
    dest: str = positional(
        help="the index to copy into, e.g. `contacts-v2`; created like the source when absent"
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

    def alias_actions(self) -> list[dict[str, Any]]:
        """The `_aliases` actions of the swap: remove from the old index (it must still be there), add to dest."""
        if not self.alias:
            return []
        remove = (
            [{"remove": {"index": self.concrete, "alias": self.alias, "must_exist": True}}]
            if self.concrete in self.alias_on
            else []
        )
        return remove + [{"add": {"index": self.dest, "alias": self.alias, **self.alias_meta}}]


def trap(alias: str) -> str:
    """Why an alias can't be named like an existing index, with the runbook's recipe as the example."""
    hint = (
        f"`--alias {alias}-current`, ClientForge's own alias for that index"
        if alias in LIVE_INDICES[:3]
        else "an alias name that no index has"
    )
    return (
        f"`{alias}` is an index, not an alias: Elasticsearch refuses an alias named like an existing index "
        "(invalid_alias_name_exception), so the swap could never happen. The runbook's recipe (`contacts_v1` → "
        "`contacts_v2` behind alias `contacts`) falls into exactly this on ClientForge, where `contacts` is the "
        f"index data-sync writes to. Use {hint}; making `{alias}` an alias means deleting that index first, "
        "which forge does not do."
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
            f"`{shown(args.dest)}` can't be both the new index and the alias that points to it."
        )


async def _source(ctx: Context, name: str) -> tuple[str, dict[str, Any]]:
    """The one concrete index a source name means, with its mappings and settings."""
    got = (
        await es_call(
            ctx,
            ctx.backends.elasticsearch().indices.get(index=name),
            missing=f"No index or alias `{shown(name)}` in Elasticsearch; `es indices` lists them.",
        )
    ).body
    if len(got) != 1:
        raise CommandError(
            f"`{shown(name)}` is an alias of {len(got)} indices ({', '.join(sorted(got))[:200]}); "
            "name the one index to copy."
        )
    [(concrete, meta)] = got.items()
    return concrete, meta


def copied_settings(meta: dict[str, Any]) -> dict[str, Any]:
    """The source's settings a new index may take."""
    index = (meta.get("settings") or {}).get("index") or {}
    return {k: v for k, v in index.items() if k in COPIED_SETTINGS}


async def _count(ctx: Context, index: str) -> int:
    """Documents a search sees in the index now."""
    return int((await es_call(ctx, ctx.backends.elasticsearch().count(index=index))).body["count"])


async def _alias_state(ctx: Context, plan: Plan) -> None:
    """Which indices the alias is on now; refuse it when it is a concrete index or sits elsewhere."""
    client = ctx.backends.elasticsearch()
    alias = plan.alias or ""
    if not await es_call(ctx, client.indices.exists_alias(name=alias)):
        if await es_call(ctx, client.indices.exists(index=alias)):
            raise CommandError(trap(alias))
        return
    got = (await es_call(ctx, client.indices.get_alias(name=alias))).body
    plan.alias_on = sorted(got)
    if plan.concrete not in got:
        raise CommandError(
            f"Alias `{alias}` points to {', '.join(f'`{i}`' for i in plan.alias_on)[:300]}, not to "
            f"`{plan.concrete}`: forge moves an alias from the index that was copied, nothing else."
        )
    old = (got[plan.concrete].get("aliases") or {}).get(alias) or {}
    plan.alias_meta = {k: v for k, v in old.items() if k in CARRIED_ALIAS_FIELDS}


async def inspect(ctx: Context, args: ReindexArgs) -> Plan:
    """Check the names against the cluster and read what the reindex needs; raises on anything unsafe."""
    check_names(args)
    client = ctx.backends.elasticsearch()
    concrete, meta = await _source(ctx, args.source)
    if concrete == args.dest:
        raise CommandError(
            f"`{shown(args.source)}` is an alias of `{concrete}`, so dest would be the source itself."
        )
    plan = Plan(
        args.source,
        concrete,
        args.dest,
        await _count(ctx, concrete),
        False,
        mappings=dict(meta.get("mappings") or {}),
        settings=copied_settings(meta),
        alias=args.alias,
    )
    if await es_call(ctx, client.indices.exists(index=args.dest)):
        if await es_call(ctx, client.indices.exists_alias(name=args.dest)):
            raise CommandError(
                f"`{shown(args.dest)}` is an alias; reindex into a concrete, preferably new, index."
            )
        plan.dest_exists, plan.dest_docs = True, await _count(ctx, args.dest)
    if args.alias:
        await _alias_state(ctx, plan)
    return plan


def _plan_lines(plan: Plan) -> list[str]:
    """What the preview explains beyond the summary."""
    lines = []
    if plan.dest_exists:
        lines.append(
            f"`{plan.dest}` exists with {plan.dest_docs:,} documents: it is used as it is (its mappings are "
            "not changed), documents with the same id are overwritten, and the counts must match before "
            "any alias moves."
        )
    if plan.concrete in LIVE_INDICES:
        lines.append(
            f"ClientForge writes to `{plan.concrete}` by name: documents written during the copy are not "
            "in it, and the count check then stops before the alias moves. Pause data-sync first."
        )
    if plan.alias and len(plan.alias_on) > 1:
        lines.append(
            f"`{plan.alias}` also points to {', '.join(i for i in plan.alias_on if i != plan.concrete)}; "
            "those stay."
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
            f", created with the mappings ({len(plan.mappings.get('properties') or {})}"
            f" fields) and settings of `{plan.concrete}`"
        )
    )
    move = (
        f", then move alias `{plan.alias}` from `{plan.concrete}` to `{plan.dest}` in one atomic call"
        if plan.alias and plan.alias_on
        else f", then create alias `{plan.alias}` on `{plan.dest}`"
        if plan.alias
        else ""
    )
    summary = (
        f"Would copy {plan.source_docs:,} documents from `{plan.concrete}` {how} `{plan.dest}`{created}"
        f"{move}."
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
        text="\n".join(_plan_lines(plan)),
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
    )


async def _create_dest(ctx: Context, plan: Plan) -> None:
    """PUT dest with the source's mappings and copyable settings."""
    await es_call(
        ctx,
        ctx.backends.elasticsearch().indices.create(
            index=plan.dest, mappings=plan.mappings or None, settings=plan.settings or None
        ),
    )


async def _start(ctx: Context, plan: Plan) -> str:
    """POST _reindex?wait_for_completion=false; the task id."""
    body = await es_call(
        ctx,
        ctx.backends.elasticsearch().reindex(
            source={"index": plan.concrete}, dest={"index": plan.dest}, wait_for_completion=False
        ),
    )
    return str(body["task"])


async def task_status(ctx: Context, task_id: str) -> dict[str, Any]:
    """GET _tasks/<id> (the client flags the tasks API as a technical preview; it is what ES 8 offers)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GeneralAvailabilityWarning)
        request = ctx.backends.elasticsearch().tasks.get(task_id=task_id)
    gone = f"Reindex task `{task_id}` is gone (its node restarted?); dest may be partly filled, no alias was moved."
    return dict((await es_call(ctx, request, missing=gone)).body)


def progress_line(plan: Plan, task_id: str, status: dict[str, Any]) -> str:
    """`Reindexing a → b: 2,000 of 5,000 documents (40 %)`."""
    done = (
        int(status.get("created", 0)) + int(status.get("updated", 0)) + int(status.get("noops", 0))
    )
    total = int(status.get("total", 0))
    pct = f" ({100 * done // total} %)" if total else ""
    return f"Reindexing `{plan.concrete}` → `{plan.dest}`: {done:,} of {total:,} documents{pct}; task `{task_id}`."


async def follow(ctx: Context, plan: Plan, task_id: str, deadline: float) -> dict[str, Any] | None:
    """Poll the task, editing the progress message as the counts move; its final body, or None at the deadline."""
    shown_line, failures = "", 0
    while ctx.clock.monotonic() < deadline:
        try:
            body = await task_status(ctx, task_id)
        except BackendError:
            failures += 1
            if failures > MAX_POLL_FAILURES:
                raise CommandError(
                    f"Lost contact with Elasticsearch while reindex task `{task_id}` ran; it may still "
                    "be running. No alias was moved."
                ) from None
            await asyncio.sleep(POLL_SECONDS)
            continue
        failures = 0
        if body.get("completed"):
            return body
        line = progress_line(plan, task_id, (body.get("task") or {}).get("status") or {})
        if line != shown_line:
            await ctx.progress(line)
            shown_line = line
        await asyncio.sleep(POLL_SECONDS)
    return None


def check_outcome(task_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """The task's response; a CommandError when the task failed or reported failures."""
    if body.get("error"):
        raise CommandError(
            f"Reindex task `{task_id}` failed: {explain_failure(body['error'])}. Dest keeps what was "
            "copied; no alias was moved."
        )
    response = body.get("response") or {}
    failures = response.get("failures") or []
    if failures or response.get("timed_out"):
        first = explain_failure(
            (failures[0].get("cause") if failures else None) or {"reason": "timed out"}
        )
        raise CommandError(
            f"Reindex task `{task_id}` finished with {len(failures):,} failures (first: {first}). "
            "No alias was moved."
        )
    return response


async def _swap(ctx: Context, plan: Plan) -> list[str]:
    """Move the alias in one `_aliases` call; the indices it points to afterwards."""
    client = ctx.backends.elasticsearch()
    try:
        await es_call(ctx, client.indices.update_aliases(actions=plan.alias_actions()))
    except CommandError as exc:
        raise CommandError(
            f"`{plan.dest}` is complete, but moving alias `{plan.alias}` failed, so it is unchanged "
            f"(the call is atomic): {exc}"
        ) from None
    return sorted((await es_call(ctx, client.indices.get_alias(name=plan.alias or ""))).body)


def _unfinished(plan: Plan, task_id: str) -> Result:
    """The result when the task outlives the command: still running, nothing moved."""
    return Result(
        f"es reindex {plan.concrete} {plan.dest}",
        Status.WARNING,
        summary=f"Reindex task `{task_id}` is still running after {TIMEOUT / 60:.0f} min; forge stopped "
        "watching it. No alias was moved.",
        text=f"Follow it with `GET _tasks/{task_id}`; when it is done, "
        "check the counts with `es indices` and move the alias by running this command again.",
        data={"task": task_id, "finished": False},
    )


def _mismatch(plan: Plan, task_id: str, copied: int, counts: tuple[int, int]) -> Result:
    """The result when source and dest counts differ: a warning, the alias left where it was."""
    source, dest = counts
    return Result(
        f"es reindex {plan.concrete} {plan.dest}",
        Status.WARNING,
        summary=f"Copied {copied:,} documents, but `{plan.dest}` has {dest:,} and `{plan.concrete}` now has "
        f"{source:,}: the counts differ, so "
        + (f"alias `{plan.alias}` was not moved." if plan.alias else "check before using it."),
        text="Documents written to the source during the copy, or documents already in dest, make the "
        "counts differ. Stop the writers (data-sync) and run it again.",
        fields=[("Source docs", f"{source:,}"), ("Dest docs", f"{dest:,}"), ("Task", task_id)],
        data={
            "task": task_id,
            "source_docs": source,
            "dest_docs": dest,
            "copied": copied,
            "moved": False,
        },
    )


async def _copy(ctx: Context, plan: Plan, deadline: float) -> tuple[str, dict[str, Any] | None]:
    """Create dest when absent, start the task and follow it; the task id and its final body (None: still running)."""
    if not plan.dest_exists:
        await _create_dest(ctx, plan)
    task_id = await _start(ctx, plan)
    await ctx.progress(
        f"Reindexing `{plan.concrete}` → `{plan.dest}`: task `{task_id}` started, "
        f"{plan.source_docs:,} documents to copy…"
    )
    return task_id, await follow(ctx, plan, task_id, deadline)


async def _counts(ctx: Context, plan: Plan) -> tuple[int, int]:
    """Documents in source and in dest, dest refreshed first so that every copied document counts."""
    await es_call(ctx, ctx.backends.elasticsearch().indices.refresh(index=plan.dest))
    return await _count(ctx, plan.concrete), await _count(ctx, plan.dest)


def _done(
    plan: Plan, task_id: str, response: dict[str, Any], docs: int, now_on: list[str], seconds: float
) -> Result:
    """The result of a complete, counted copy (and alias move)."""
    copied = int(response.get("created", 0)) + int(response.get("updated", 0))
    moved = (
        f" Alias `{plan.alias}` now points to {', '.join(f'`{i}`' for i in now_on)}."
        if plan.alias
        else ""
    )
    fields = [
        ("Documents", f"{docs:,} in both"),
        ("Created / updated", f"{response.get('created', 0):,} / {response.get('updated', 0):,}"),
        ("Duration", f"{seconds:.1f} s"),
        ("Task", task_id),
    ]
    if plan.alias:
        fields.append(
            ("Alias", f"{plan.alias}: {', '.join(plan.alias_on) or '(new)'} → {', '.join(now_on)}")
        )
    return Result(
        f"es reindex {plan.concrete} {plan.dest}",
        summary=f"Copied {copied:,} documents from "
        f"`{plan.concrete}` into `{plan.dest}` in {seconds:.1f} s; counts match.{moved}",
        fields=fields,
        actions=[Action("Indices", "es indices"), Action("Aliases", "es aliases")],
        data={
            "task": task_id,
            "source": plan.concrete,
            "dest": plan.dest,
            "copied": copied,
            "documents": docs,
            "alias": plan.alias,
            "alias_on": now_on,
            "moved": bool(plan.alias),
            "seconds": round(seconds, 3),
        },
    )


@command(
    "es reindex",
    summary="Copy an index into a new one (as a task, with progress), check the counts, then "
    "move an alias atomically; needs approval.",
    args=ReindexArgs,
    role=Role.OPERATOR,
    risk=Risk.DESTRUCTIVE,
    preview=reindex_preview,
    confirm=lambda args: args.dest,
    timeout=TIMEOUT,
    examples=(
        "es reindex contacts contacts-v2 --alias contacts-current",
        "es reindex deals deals-v2 --dry-run",
    ),
)
async def es_reindex(ctx: Context, args: ReindexArgs) -> Result:
    """Create dest like source if absent, run `_reindex` as a task, compare counts, then swap the alias."""
    started = ctx.clock.monotonic()
    plan = await inspect(ctx, args)
    task_id, body = await _copy(ctx, plan, started + TIMEOUT - DEADLINE_MARGIN)
    if body is None:
        return _unfinished(plan, task_id)
    response = check_outcome(task_id, body)
    counts = await _counts(ctx, plan)
    if counts[0] != counts[1]:
        copied = int(response.get("created", 0)) + int(response.get("updated", 0))
        return _mismatch(plan, task_id, copied, counts)
    now_on = await _swap(ctx, plan) if plan.alias else []
    return _done(plan, task_id, response, counts[1], now_on, ctx.clock.monotonic() - started)

"""`es reindex source dest [--alias name]`: copy an index as a task, check, then move an alias."""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

from bot.core.context import Context
from bot.core.errors import BackendError, CommandError
from bot.core.registry import Risk, Role, command
from bot.core.result import Action, Result, Status
from bot.text.cells import Code, Text, join, plain, rich
from commands.search.es import explain_failure
from commands.search.reindex_plan import Plan, ReindexArgs, doc_count, reindex_preview
from commands.search.reindex_scope import approved_plan

POLL_SECONDS = 1.0
MAX_POLL_FAILURES = 3
TIMEOUT = 3600.0
DEADLINE_MARGIN = 30.0


async def _create_dest(ctx: Context, plan: Plan) -> None:
    """PUT dest with the source's mappings and copyable settings."""
    await ctx.backends.es.call(
        ctx.backends.elasticsearch().indices.create(
            index=plan.dest, mappings=plan.mappings or None, settings=plan.settings or None
        )
    )


async def _start(ctx: Context, plan: Plan) -> str:
    """POST _reindex?wait_for_completion=false; the task id."""
    body = await ctx.backends.es.call(
        ctx.backends.elasticsearch().reindex(
            source={"index": plan.concrete}, dest={"index": plan.dest}, wait_for_completion=False
        )
    )
    return str(body["task"])


async def task_status(ctx: Context, task_id: str) -> dict[str, Any]:
    """GET _tasks/<id> (the client calls this API a technical preview; it is what ES 8 offers)."""
    from elasticsearch.exceptions import GeneralAvailabilityWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GeneralAvailabilityWarning)
        request = ctx.backends.elasticsearch().tasks.get(task_id=task_id)
    gone = rich(
        "Reindex task ",
        Code(task_id),
        " is gone (its node restarted?); dest may be partly filled, no alias was moved.",
    )
    return dict((await ctx.backends.es.call(request, missing=gone)).body)


def progress_line(plan: Plan, task_id: str, status: dict[str, Any]) -> Text:
    """`Reindexing a → b: 2,000 of 5,000 documents (40 %)`."""
    done = (
        int(status.get("created", 0)) + int(status.get("updated", 0)) + int(status.get("noops", 0))
    )
    total = int(status.get("total", 0))
    pct = f" ({100 * done // total} %)" if total else ""
    return rich(
        "Reindexing ",
        Code(plan.concrete),
        " → ",
        Code(plan.dest),
        f": {done:,} of {total:,} documents{pct}; task ",
        Code(task_id),
        ".",
    )


async def follow(ctx: Context, plan: Plan, task_id: str, deadline: float) -> dict[str, Any] | None:
    """Poll the task, showing progress as counts move; its final body, or None at the deadline."""
    shown_line: Text = ""
    failures = 0
    while ctx.clock.monotonic() < deadline:
        try:
            body = await task_status(ctx, task_id)
        except BackendError:
            failures += 1
            if failures > MAX_POLL_FAILURES:
                raise CommandError(
                    rich(
                        "Lost contact with Elasticsearch while reindex task ",
                        Code(task_id),
                        " ran; it may still be running. No alias was moved.",
                    )
                ) from None
            await asyncio.sleep(POLL_SECONDS)
            continue
        failures = 0
        if body.get("completed"):
            return body
        line = progress_line(plan, task_id, (body.get("task") or {}).get("status") or {})
        if plain(line) != plain(shown_line):
            await ctx.progress(line)
            shown_line = line
        await asyncio.sleep(POLL_SECONDS)
    return None


def check_outcome(task_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """The task's response; a CommandError when the task failed or reported failures."""
    if body.get("error"):
        raise CommandError(
            rich(
                "Reindex task ",
                Code(task_id),
                f" failed: {explain_failure(body['error'])}. "
                "Dest keeps what was copied; no alias was moved.",
            )
        )
    response = body.get("response") or {}
    failures = response.get("failures") or []
    if failures or response.get("timed_out"):
        first = explain_failure(
            (failures[0].get("cause") if failures else None) or {"reason": "timed out"}
        )
        raise CommandError(
            rich(
                "Reindex task ",
                Code(task_id),
                f" finished with {len(failures):,} failures (first: {first}). No alias was moved.",
            )
        )
    return response


async def _swap(ctx: Context, plan: Plan) -> list[str]:
    """Move the alias in one `_aliases` call; the indices it points to afterwards."""
    client = ctx.backends.elasticsearch()
    try:
        await ctx.backends.es.call(client.indices.update_aliases(actions=plan.alias_actions()))
    except CommandError as exc:
        raise CommandError(
            rich(
                Code(plan.dest),
                " is complete, but moving alias ",
                Code(plan.alias or ""),
                f" failed, so it is unchanged (the call is atomic): {exc}",
            )
        ) from None
    return sorted(
        (await ctx.backends.es.call(client.indices.get_alias(name=plan.alias or ""))).body
    )


def _unfinished(plan: Plan, task_id: str) -> Result:
    """The result when the task outlives the command: still running, nothing moved."""
    return Result(
        f"es reindex {plan.concrete} {plan.dest}",
        Status.WARNING,
        summary=rich(
            "Reindex task ",
            Code(task_id),
            f" is still running after {TIMEOUT / 60:.0f} min; "
            "forge stopped watching it. No alias was moved.",
        ),
        text=rich(
            "Follow it with ",
            Code(f"GET _tasks/{task_id}"),
            "; when it is done, check the counts with ",
            Code("es indices"),
            " and move the alias by running this command again.",
        ),
        data={"task": task_id, "finished": False},
    )


def _mismatch(plan: Plan, task_id: str, copied: int, counts: tuple[int, int]) -> Result:
    """The result when source and dest counts differ: a warning, the alias left where it was."""
    source, dest = counts
    return Result(
        f"es reindex {plan.concrete} {plan.dest}",
        Status.WARNING,
        summary=rich(
            f"Copied {copied:,} documents, but ",
            Code(plan.dest),
            f" has {dest:,} and ",
            Code(plan.concrete),
            f" now has {source:,}: the counts differ, so ",
        )
        + (
            rich("alias ", Code(plan.alias), " was not moved.")
            if plan.alias
            else "check before using it."
        ),
        text="Documents written to the source during the copy, or documents already in dest, "
        "make the counts differ. Stop the writers (data-sync) and run it again.",
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
    """Create dest if absent, start and follow the task; its id and final body (None: running)."""
    if not plan.dest_exists:
        await _create_dest(ctx, plan)
    task_id = await _start(ctx, plan)
    await ctx.progress(
        rich(
            "Reindexing ",
            Code(plan.concrete),
            " → ",
            Code(plan.dest),
            ": task ",
            Code(task_id),
            f" started, {plan.source_docs:,} documents to copy…",
        )
    )
    return task_id, await follow(ctx, plan, task_id, deadline)


async def _counts(ctx: Context, plan: Plan) -> tuple[int, int]:
    """Documents in source and in dest, dest refreshed first so every copied document counts."""
    await ctx.backends.es.call(ctx.backends.elasticsearch().indices.refresh(index=plan.dest))
    return await doc_count(ctx, plan.concrete), await doc_count(ctx, plan.dest)


def _done(
    plan: Plan, task_id: str, response: dict[str, Any], docs: int, now_on: list[str], seconds: float
) -> Result:
    """The result of a complete, counted copy (and alias move)."""
    copied = int(response.get("created", 0)) + int(response.get("updated", 0))
    moved = (
        rich(
            " Alias ",
            Code(plan.alias),
            " now points to ",
            join(", ", [Code(i) for i in now_on]),
            ".",
        )
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
        summary=rich(
            f"Copied {copied:,} documents from ",
            Code(plan.concrete),
            " into ",
            Code(plan.dest),
            f" in {seconds:.1f} s; counts match.",
            moved,
        ),
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
    if_unknown="the destination index's document count against the source's (es indices), "
    "Elasticsearch's reindex task, which may still be running, and where the alias points "
    "(es aliases).",
)
async def es_reindex(ctx: Context, args: ReindexArgs) -> Result:
    """Create dest like source if absent, `_reindex` as a task, compare counts, swap the alias."""
    started = ctx.clock.monotonic()
    plan = await approved_plan(ctx, args)
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

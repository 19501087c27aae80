"""What an approved `es reindex` froze: the source index's UUID and count, the alias's target."""

from __future__ import annotations

from bot.core.context import Context
from bot.core.errors import CommandError
from bot.core.scope import Scope, StaleScope
from bot.text.cells import Code, rich
from commands.search.reindex_plan import Plan, ReindexArgs, inspect


async def approved_plan(ctx: Context, args: ReindexArgs) -> Plan:
    """The plan, read again; stale unless the cluster still matches what was approved. A refusal
    here is stale too: the same arguments passed these checks at the request."""
    if ctx.scope is None:
        return await inspect(ctx, args)
    try:
        plan = await inspect(ctx, args)
    except CommandError as exc:
        raise StaleScope(rich(exc.text, " The cluster changed since the request.")) from None
    _check(plan, ctx.scope)
    return plan


def _check(plan: Plan, scope: Scope) -> None:
    if plan.concrete != scope["source"]:
        raise StaleScope(
            rich(
                Code(plan.source),
                " now means index ",
                Code(plan.concrete),
                "; the approved dry run copied ",
                Code(str(scope["source"])),
                ".",
            )
        )
    if plan.uuid != scope["source_uuid"]:
        raise StaleScope(
            rich(
                Code(plan.concrete),
                f" was deleted and created again since the request (UUID {scope['source_uuid']} "
                f"approved, now {plan.uuid}).",
            )
        )
    if plan.source_docs != scope["source_docs"]:
        raise StaleScope(
            rich(
                Code(plan.concrete),
                f" holds {plan.source_docs:,} documents now; the approved dry run counted "
                f"{scope['source_docs']:,}.",
            )
        )
    now_on = ",".join(plan.alias_on) if plan.alias else None
    if now_on != scope.get("alias_on"):
        raise StaleScope(
            rich(
                "Alias ",
                Code(str(plan.alias)),
                f" points to {now_on or 'nothing'} now; the approved dry run saw it on "
                f"{scope.get('alias_on') or 'nothing'}.",
            )
        )

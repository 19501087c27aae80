"""A destructive test command for the approval engine's scenarios: it records every execution."""

from __future__ import annotations

import asyncio

import commands  # noqa: F401  (registers forge's own commands)
from bot.core.errors import BackendTimeout, CommandError
from bot.core.registry import REGISTRY, Args, Registry, Risk, Role, command, option, positional
from bot.core.result import Result
from bot.core.scope import Scope, StaleScope

EXECUTED: list[str] = []
GENERATION = [0]  # what a `scoped…` target's dry run freezes; a test bumps it to make it stale


class WipeArgs(Args):
    """Arguments of `test wipe`."""

    target: str = positional(help="what to wipe")
    dry_run: bool = option(False)


async def wipe_preview(ctx, args: WipeArgs) -> Result:  # type: ignore[no-untyped-def]
    """What `test wipe` would do; `scoped…` targets freeze a scope, `scoped-long` a long preview."""
    scoped = args.target.startswith("scoped")
    return Result(
        "test wipe",
        summary=f"Would wipe 3 items from {args.target}",
        fields=[("Items", "3" + " and more" * 600 * args.target.endswith("long"))],
        scope=Scope.of(target=args.target, generation=GENERATION[0]) if scoped else None,
    )


async def wipe(ctx, args: WipeArgs) -> Result:  # type: ignore[no-untyped-def]
    """Record the execution; `fail` and `hang` targets fail in the two ways a backend can."""
    if ctx.scope is not None and ctx.scope["generation"] != GENERATION[0]:
        raise StaleScope(
            f"generation {GENERATION[0]} is not the approved {ctx.scope['generation']}."
        )
    EXECUTED.append(args.target)
    await asyncio.sleep(0.05)
    if args.target == "fail":
        raise CommandError("the backend refused")
    if args.target == "hang":
        raise BackendTimeout("redis", 5)
    return Result("test wipe", summary=f"Wiped 3 items from {args.target}")


def registry_with_wipe() -> Registry:
    """forge's registry plus `test wipe` (operator, destructive)."""
    registry = Registry()
    for spec in REGISTRY.all():
        registry.add(spec)
    command(
        "test wipe",
        summary="Wipe a test target.",
        args=WipeArgs,
        role=Role.OPERATOR,
        risk=Risk.DESTRUCTIVE,
        preview=wipe_preview,
        confirm=lambda a: a.target,
        examples=("test wipe alpha",),
        registry=registry,
    )(wipe)
    return registry

"""Hostile text, test commands that return it on every renderer path, and checks of what Slack got.

The text holds every markup Slack would act on: a broadcast, a mention, a channel link and a URL.
Whatever path it takes to Slack, it must arrive escaped, shown and never rendered.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import commands  # noqa: F401  (registers forge's own commands)
from bot.core.errors import CommandError
from bot.core.registry import REGISTRY, Args, Registry, Risk, Role, command, option, positional
from bot.core.result import Action, Result, Status, Table

HOSTILE = "<!channel> <!here> <@U0EVIL> <#C0EVIL> <https://evil.example|click me> & co"
LIVE = ("<!channel>", "<!here>", "<@U0EVIL>", "<#C0EVIL>", "<https://evil.example")
ESCAPED = "&lt;!channel&gt; &lt;!here&gt; &lt;@U0EVIL&gt;"


def said(calls: list[Any]) -> str:
    """Everything forge sent in these Slack calls, as one string, but for table blocks' cells:
    Slack never reads a raw_text cell or a rich_text element's text as markup (`table_cells`)."""
    return json.dumps([_without_tables(c.args) for c in calls], ensure_ascii=False)


def table_cells(calls: list[Any]) -> list[dict]:
    """Every cell of every table block in these calls."""
    blocks = [b for c in calls for b in c.args.get("blocks") or [] if b.get("type") == "table"]
    return [cell for b in blocks for row in b["rows"] for cell in row]


def _without_tables(args: dict) -> dict:
    blocks = args.get("blocks")
    if not isinstance(blocks, list):
        return args
    kept = [b for b in blocks if not (isinstance(b, dict) and b.get("type") == "table")]
    return {**args, "blocks": kept}


def assert_shown_not_rendered(text: str) -> None:
    """The hostile text is there, escaped; none of its markup is live."""
    live = [m for m in LIVE if m in text]
    assert not live, f"rendered as markup: {live}"
    assert ESCAPED in text, "the hostile text is not shown"


class TargetArgs(Args):
    """Arguments of `test wipe`."""

    target: str = positional(help="what to wipe")
    dry_run: bool = option(False)


async def echo(ctx: Any, _: Any) -> Result:
    """Backend text in every part of a result."""
    return Result(
        "test echo",
        Status.WARNING,
        summary=HOSTILE,
        fields=[("Reason", HOSTILE), (HOSTILE, "3 jobs")],
        tables=[Table(["job", "reason"], [["1", HOSTILE]], title=HOSTILE)],
        text=f"{HOSTILE}\n{HOSTILE}",
        actions=[Action("Again", "test echo")],
    )


async def slow(ctx: Any, _: Any) -> Result:
    """Backend text in a progress note, then in the result."""
    await ctx.progress(HOSTILE)
    await asyncio.sleep(0.05)
    return Result("test slow", summary=HOSTILE)


async def fail(ctx: Any, _: Any) -> Result:
    """Backend text in a failure meant for the caller."""
    raise CommandError(f"the backend said: {HOSTILE}")


async def dump(ctx: Any, _: Any) -> Result:
    """So much backend text that it goes up as a file."""
    return Result("test dump", text="\n".join(f"{i} {HOSTILE}" for i in range(200)))


async def many(ctx: Any, _: Any) -> Result:
    """More tables than a message holds: the rest goes up as a file."""
    tables = [Table(["reason"], [[HOSTILE]], title=f"t{i}") for i in range(60)]
    return Result("test many", tables=tables)


async def wipe_preview(ctx: Any, args: TargetArgs) -> Result:
    """A dry run that quotes the backend."""
    return Result("test wipe", summary=f"Would wipe {HOSTILE}", fields=[("Items", HOSTILE)])


async def wipe(ctx: Any, args: TargetArgs) -> Result:
    """An approved run that reports progress and an outcome quoting the backend."""
    await ctx.progress(HOSTILE)
    return Result("test wipe", summary=f"Wiped {HOSTILE}")


def hostile_registry() -> Registry:
    """forge's registry plus the `test …` commands above."""
    registry = Registry()
    for spec in REGISTRY.all():
        registry.add(spec)
    for name, handler in (
        ("test echo", echo),
        ("test slow", slow),
        ("test fail", fail),
        ("test dump", dump),
        ("test many", many),
    ):
        command(name, summary=name, examples=(name,), registry=registry)(handler)
    command(
        "test wipe",
        summary="Wipe a test target.",
        args=TargetArgs,
        role=Role.OPERATOR,
        risk=Risk.DESTRUCTIVE,
        preview=wipe_preview,
        confirm=lambda a: a.target,
        examples=("test wipe alpha",),
        registry=registry,
    )(wipe)
    return registry

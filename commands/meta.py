"""Commands about forge itself: help, whoami, audit."""

from __future__ import annotations

import re

from pydantic import field_validator

from bot.core.context import Actor, Context
from bot.core.errors import CommandError
from bot.core.paging import Page, page_option
from bot.core.registry import Args, CommandSpec, NoArgs, Registry, Role, command, option, positional
from bot.core.result import Result, Status, Table
from bot.text.cells import Code, Strong, Text, User, join, rich

RISK_MARK = {"read": "", "write": " ✎", "destructive": " ⚠ needs approval"}


class HelpArgs(Args):
    """Arguments of `help`."""

    topic: str | None = positional(None, rest=True, help='a command, e.g. "dlq clear"')


@command(
    "help",
    summary="List the commands you may run, or explain one.",
    args=HelpArgs,
    examples=("help", "help audit"),
)
async def help_command(ctx: Context, args: HelpArgs) -> Result:
    """The commands the caller may run, or one command's usage."""
    return help_result(ctx.registry, ctx.actor, args.topic)


def help_result(registry: Registry, actor: Actor, topic: str | None) -> Result:
    """Help read from the registry alone, so the terminal can show it without a backend."""
    allowed = [s for s in registry.all() if actor.may(s.role)]
    if topic:
        return _help_for(registry, topic, allowed)
    families: dict[str, list[CommandSpec]] = {}
    for spec in allowed:
        families.setdefault(spec.words[0], []).append(spec)
    lines: list[Text] = []
    for family, specs in families.items():
        lines.append(Strong(family))
        lines.extend(
            rich("• ", Code(s.usage), f" — {s.summary}{RISK_MARK[s.risk.value]}") for s in specs
        )
    return Result(
        "help",
        summary=rich(
            f"{len(allowed)} commands you may run. ", Code("help <command>"), " explains one."
        ),
        text=join("\n", lines),
        data={"commands": [s.name for s in allowed]},
    )


def _help_for(registry: Registry, topic: str, allowed: list[CommandSpec]) -> Result:
    spec = next((s for s in allowed if s.name == " ".join(topic.lower().split())), None)
    if spec is None:
        close = registry.suggest(topic.split())
        close = [c for c in close if any(s.name == c for s in allowed)]
        hint = rich(" Did you mean ", Code(close[0]), "?") if close else ""
        raise CommandError(
            rich("No command ", Code(topic), " that you may run.", hint, " Try ", Code("help"), ".")
        )
    lines: list[Text] = [Code(spec.usage), spec.summary]
    for name, field in spec.positionals() + spec.options():
        if field.description:
            flag = name if (name, field) in spec.positionals() else "--" + name.replace("_", "-")
            lines.append(rich("• ", Code(flag), f": {field.description}"))
    lines.extend(rich("Example: ", Code(f"/forge {e}")) for e in spec.examples)
    return Result(
        f"help {spec.name}",
        summary=spec.summary,
        text=join("\n", lines),
        fields=[("Role", spec.role.label), ("Risk", spec.risk.value)],
        data={
            "command": spec.name,
            "usage": spec.usage,
            "role": spec.role.label,
            "risk": spec.risk.value,
        },
    )


@command("whoami", summary="Your Slack ID, role and what you may approve.", examples=("whoami",))
async def whoami(ctx: Context, _: NoArgs) -> Result:
    """The caller's identity as forge resolves it right now."""
    actor = ctx.actor
    role = actor.role.label if actor.role else "none"
    runnable = sum(1 for s in ctx.registry.all() if actor.may(s.role))
    return Result(
        "whoami",
        summary=rich(
            User(actor.user_id), f" is {role}", " and an approver" if actor.approver else ""
        ),
        fields=[
            ("User", User(actor.user_id)),
            ("Role", role),
            ("Approver", "yes" if actor.approver else "no"),
            ("Commands you may run", str(runnable)),
            ("Environment", ctx.settings.environment),
            ("Via", actor.source),
        ],
        data={"user_id": actor.user_id, "role": role, "approver": actor.approver},
    )


class AuditArgs(Args):
    """Arguments of `audit`."""

    user: str | None = option(help="only this Slack user ID (or cli:NAME)")
    command: str | None = option(help='only this command, e.g. "health" or "dlq"')
    limit: int = option(20, help="rows a page, 1 to 200", ge=1, le=200)
    verify: bool = option(False, help="check the whole hash chain instead")
    page: int = page_option()

    @field_validator("user")
    @classmethod
    def _user(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(
            r"[UW][A-Z0-9]{2,20}|cli:[\w.-]{1,64}", value.strip("<@>")
        ):
            raise ValueError("expected a Slack user ID such as U012ABC")
        return value.strip("<@>") if value else value

    @field_validator("command")
    @classmethod
    def _command(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[a-z-]+( [a-z-]+){0,2}", value):
            raise ValueError('expected command words such as "health" or "dlq clear"')
        return value


@command(
    "audit",
    summary="The audit trail: who ran what, when, and how it ended.",
    args=AuditArgs,
    role=Role.ADMIN,
    examples=(
        "audit",
        "audit --user U012ABC --limit 50",
        "audit --command health",
        "audit --verify",
    ),
)
async def audit(ctx: Context, args: AuditArgs) -> Result:
    """Recent audit rows, or the result of checking the hash chain."""
    if args.verify:
        report = await ctx.audit.verify()
        if report.ok:
            return Result(
                "audit --verify",
                summary=f"Hash chain intact over {report.rows} rows.",
                data={"ok": True, "rows": report.rows},
            )
        return Result(
            "audit --verify",
            Status.CRITICAL,
            data={"ok": False, "first_bad_id": report.first_bad_id},
            summary=f"Hash chain broken at row {report.first_bad_id} "
            f"(after {report.rows} good rows): the audit trail was altered.",
        )
    total = await ctx.audit.count(user=args.user, command=args.command)
    page = Page(min(args.page, Page(1, args.limit, total).pages), args.limit, total)
    rows = await ctx.audit.query(
        user=args.user,
        command=args.command,
        limit=args.limit,
        offset=(page.number - 1) * args.limit,
    )
    table = Table(
        ["id", "time (UTC)", "actor", "event", "command", "outcome", "ms", "text"],
        [
            [
                str(r["id"]),
                r["at"].strftime("%Y-%m-%d %H:%M:%S"),
                User(r["actor_id"]),
                r["event"],
                r["command"] or "—",
                r["outcome"],
                str(r["duration_ms"] if r["duration_ms"] is not None else "—"),
                r["text"][:60],
            ]
            for r in rows
        ],
    )
    return Result(
        "audit",
        summary=f"{len(rows)} most recent rows."
        if page.pages < 2
        else f"{total} rows, newest first.",
        tables=[table],
        page=page,
        data={"rows": [{**r, "at": r["at"].isoformat()} for r in rows]},
    )

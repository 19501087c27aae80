"""`incident declare|update|severity|check|assign|resolve`: the writes that run an incident."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import field_validator

from bot.core.context import Context
from bot.core.errors import CommandError
from bot.core.registry import Args, Risk, Role, command, option, positional
from bot.core.result import Action, Result
from bot.incidents import checklists
from bot.incidents.report import durations
from bot.text.cells import Channel, Code, User, rich
from commands.incidents import STATUS, Which, name, store, target

SEVERITY = re.compile(r"^[Pp][0-3]$")
USER = re.compile(r"^(?:<@|@)?([UW][A-Z0-9]{2,20})(?:\|[^>]*)?>?$")


class DeclareArgs(Args):
    """Arguments of `incident declare`."""

    words: str = positional(
        rest=True, min_length=3, max_length=200, help="[P0|P1|P2|P3] then the title"
    )
    description: str = option("", max_length=2000, help="what is happening")
    component: str = option(
        "", max_length=80, help="the affected component, e.g. api, queues, search"
    )


class UpdateArgs(Which):
    """Arguments of `incident update`."""

    text: str = positional(rest=True, min_length=1, max_length=2000, help="the status update")


class SeverityArgs(Which):
    """Arguments of `incident severity`."""

    severity: Literal["P0", "P1", "P2", "P3"] = positional(help="the new severity")

    @field_validator("severity", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return str(value).upper()


class StepArgs(Which):
    """Arguments of `incident check`."""

    step: int = positional(ge=1, le=200, help="the step's number on the checklist")
    undo: bool = option(False, help="reopen a step marked done")


class AssignArgs(Which):
    """Arguments of `incident assign`."""

    step: int = positional(ge=1, le=200, help="the step's number on the checklist")
    user: str = positional(help="who owns it: @someone")

    @field_validator("user")
    @classmethod
    def _user(cls, value: str) -> str:
        found = USER.match(value)
        if not found:
            raise ValueError("mention the person, e.g. @alice")
        return found.group(1)


class ResolveArgs(Which):
    """Arguments of `incident resolve`."""

    summary: str = positional(
        "", rest=True, max_length=2000, help="what happened and what fixed it"
    )
    force: str | None = option(
        None, min_length=3, max_length=500, help="resolve with open P0/P1 steps: why"
    )


def split_severity(words: str) -> tuple[str, str]:
    """`P0 Checkout is down` as ("P0", "Checkout is down"); no severity given means P2."""
    first, _, rest = words.strip().partition(" ")
    if SEVERITY.match(first):
        if not rest.strip():
            raise CommandError(
                rich(
                    "Give the incident a title after the severity: ",
                    Code("incident declare P1 Checkout fails"),
                    ".",
                )
            )
        return first.upper(), rest.strip()
    return "P2", words.strip()


@command(
    "incident declare",
    summary="Declare an incident: a card, and the severity's checklist in its thread.",
    args=DeclareArgs,
    role=Role.OPERATOR,
    risk=Risk.WRITE,
    examples=(
        "incident declare P0 Checkout is down",
        "incident declare P1 Emails are not sent --component queues",
    ),
)
async def incident_declare(ctx: Context, args: DeclareArgs) -> Result:
    """Record it with the declarer as commander; the board posts the card and the checklist."""
    severity, title = split_severity(args.words)
    channel = ctx.settings.config.channels.incidents or ctx.channel_id
    if not channel:
        raise CommandError(
            "No incidents channel: set channels.incidents in the config, or declare from Slack."
        )
    items = checklists.checklist(ctx.settings.config, severity)
    incident = await store(ctx).declare(
        title=title,
        severity=severity,
        commander=ctx.actor.user_id,
        channel=channel,
        description=args.description,
        component=args.component,
        items=items,
    )
    where = (
        "a channel of its own"
        if ctx.settings.config.incidents.channel_per_incident
        else Channel(channel)
    )
    return Result(
        "incident declare",
        STATUS[severity],
        summary=rich(
            f"Declared {name(incident)} ({severity}): {title}. "
            f"Its card and {len(items)}-step checklist are in ",
            where,
            "; ",
            User(ctx.actor.user_id),
            " is commander.",
        ),
        fields=[
            ("Incident", name(incident)),
            ("Severity", severity),
            ("Definition", checklists.SEVERITIES[severity]),
        ],
        data={
            "id": incident["id"],
            "severity": severity,
            "title": title,
            "channel": channel,
            "steps": [i.title for i in items],
        },
    )


@command(
    "incident update",
    summary="Post a status update into the incident's thread and onto its card.",
    args=UpdateArgs,
    role=Role.OPERATOR,
    risk=Risk.WRITE,
    examples=("incident update Rolled back; error rate falling",),
)
async def incident_update(ctx: Context, args: UpdateArgs) -> Result:
    """A timeline entry the board posts in the thread and shows on the card."""
    incident = await _open(ctx, args.id)
    await store(ctx).update(incident["id"], ctx.actor.user_id, args.text)
    return Result(
        f"incident update {name(incident)}",
        summary=f"Update posted to {name(incident)}.",
        data={"id": incident["id"], "text": args.text},
    )


@command(
    "incident severity",
    summary="Change severity; the new severity's missing steps are added, progress kept.",
    args=SeverityArgs,
    role=Role.OPERATOR,
    risk=Risk.WRITE,
    examples=("incident severity P0",),
)
async def incident_severity(ctx: Context, args: SeverityArgs) -> Result:
    """Record the change and add the new checklist's steps that the incident does not have yet."""
    incident = await _open(ctx, args.id)
    if incident["severity"] == args.severity:
        return Result(
            f"incident severity {name(incident)}",
            summary=f"{name(incident)} is {args.severity} already.",
        )
    items = checklists.checklist(ctx.settings.config, args.severity)
    old, added = await store(ctx).change_severity(
        incident["id"], args.severity, ctx.actor.user_id, items
    )
    return Result(
        f"incident severity {name(incident)}",
        STATUS[args.severity],
        summary=f"{name(incident)}: {old} → {args.severity}"
        + (f"; added {', '.join(added)}." if added else "; no steps to add."),
        data={"id": incident["id"], "from": old, "to": args.severity, "added": added},
    )


@command(
    "incident check",
    summary="Mark a checklist step done (or --undo), as the Done button does.",
    args=StepArgs,
    role=Role.OPERATOR,
    risk=Risk.WRITE,
    examples=("incident check 2", "incident check 2 --undo"),
)
async def incident_check(ctx: Context, args: StepArgs) -> Result:
    """Done records who and when; a second Done changes nothing."""
    incident = await _open(ctx, args.id)
    item = await _step(ctx, incident, args.step)
    changed = await store(ctx).check(incident["id"], args.step, ctx.actor.user_id, args.undo)
    verb = "reopened" if args.undo else "done"
    summary = (
        f"{name(incident)} step {args.step} ({item['title']}) {verb}."
        if changed
        else f"{name(incident)} step {args.step} ({item['title']}) was {verb} already."
    )
    return Result(
        f"incident check {name(incident)}",
        summary=summary,
        data={"id": incident["id"], "step": args.step, "changed": changed is not None},
    )


@command(
    "incident assign",
    summary="Give a checklist step an owner.",
    args=AssignArgs,
    role=Role.OPERATOR,
    risk=Risk.WRITE,
    examples=("incident assign 3 @U0ALICE",),
)
async def incident_assign(ctx: Context, args: AssignArgs) -> Result:
    """Record the owner; the step's message shows it."""
    incident = await _open(ctx, args.id)
    item = await _step(ctx, incident, args.step)
    await store(ctx).assign(incident["id"], args.step, args.user, ctx.actor.user_id)
    return Result(
        f"incident assign {name(incident)}",
        summary=rich(
            f"{name(incident)} step {args.step} ({item['title']}) is ", User(args.user), "'s."
        ),
        data={"id": incident["id"], "step": args.step, "assignee": args.user},
    )


@command(
    "incident resolve",
    summary="Resolve: refused while P0/P1 steps are open unless --force gives a reason.",
    args=ResolveArgs,
    role=Role.OPERATOR,
    risk=Risk.WRITE,
    examples=(
        "incident resolve Rolled back the deploy",
        "incident resolve --force 'postmortem covers it'",
    ),
)
async def incident_resolve(ctx: Context, args: ResolveArgs) -> Result:
    """Close it and have the report posted in the thread."""
    incident = await _open(ctx, args.id)
    items = await store(ctx).items(incident["id"])
    left = [i for i in items if not i["done_at"]]
    if left and incident["severity"] in ("P0", "P1") and not args.force:
        steps = ", ".join(f"{i['position']}. {i['title']}" for i in left)
        raise CommandError(
            rich(
                f"{name(incident)} is {incident['severity']} and has open steps ({steps}). "
                "Finish them, or ",
                Code("incident resolve --force '<why>'"),
                ".",
            )
        )
    await store(ctx).resolve(
        incident["id"], ctx.actor.user_id, args.summary, args.force if left else None
    )
    resolved = await store(ctx).get(incident["id"])
    times = durations(resolved, await store(ctx).events(incident["id"]))
    return Result(
        f"incident resolve {name(incident)}",
        summary=f"{name(incident)} resolved after "
        f"{times['resolve'] or '—'}; the report is in its thread.",
        fields=[(k.title(), v or "—") for k, v in times.items()],
        actions=[Action("Report", f"incident report {name(incident)}")],
        data={"id": incident["id"], "forced": bool(left and args.force), "durations": times},
    )


async def _open(ctx: Context, given: int | None) -> Any:
    incident = await target(ctx, given)
    if incident["status"] != "open":
        raise CommandError(f"{name(incident)} is resolved already.")
    return incident


async def _step(ctx: Context, incident: Any, position: int) -> Any:
    items = await store(ctx).items(incident["id"])
    found = next((i for i in items if i["position"] == position), None)
    if found is None:
        raise CommandError(
            f"{name(incident)} has steps 1 to {len(items)}; there is no step {position}."
        )
    return found

"""`incident list|status|report`: read incidents; the helpers the `incident` writes share."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BeforeValidator

from bot.core.context import Context
from bot.core.errors import CommandError
from bot.core.paging import Paged, page_of
from bot.core.registry import Args, command, option, positional
from bot.core.result import Attachment, Result, Status, Table
from bot.incidents.report import durations, report_markdown
from bot.text.cells import Code, User, rich
from bot.text.units import between

if TYPE_CHECKING:
    from bot.incidents.store import IncidentStore

STATUS = {"P0": Status.CRITICAL, "P1": Status.CRITICAL, "P2": Status.WARNING, "P3": Status.WARNING}


def incident_number(value: object) -> int | None:
    """`INC-42`, `inc-42` or `42` as 42."""
    if value is None or value == "":
        return None
    found = re.fullmatch(r"(?:INC-)?(\d{1,9})", str(value).strip(), re.IGNORECASE)
    if not found:
        raise ValueError("an incident is named like INC-42")
    return int(found.group(1))


IncidentId = Annotated[int | None, BeforeValidator(incident_number)]


class Which(Args):
    """An incident: `--id INC-42`, or the one whose thread or channel this is."""

    id: IncidentId = option(
        None, help="the incident, e.g. INC-42 (default: this thread's or channel's)"
    )


class ReportArgs(Args):
    """Arguments of `incident report`."""

    incident: IncidentId = positional(
        None, help="e.g. INC-42 (default: this thread's or channel's)"
    )


def store(ctx: Context) -> IncidentStore:
    """The incident records in the state store."""
    from bot.incidents.store import IncidentStore

    return IncidentStore(ctx.store, ctx.settings.config.timeouts.backend)


def name(incident: Any) -> str:
    """`INC-42`."""
    return f"INC-{incident['id']}"


async def target(ctx: Context, given: int | None) -> Any:
    """The incident meant: named, this thread's, the only open one in this channel, or anywhere."""
    incidents = store(ctx)
    if given is not None:
        found = await incidents.get(given)
        if found is None:
            raise CommandError(
                rich(f"No incident INC-{given}. ", Code("incident list"), " shows the open ones.")
            )
        return found
    if ctx.incident_id is not None and (found := await incidents.get(ctx.incident_id)):
        return found
    for scope in ([ctx.channel_id] if ctx.channel_id else []) + [None]:
        candidates = await incidents.open_incidents(scope)
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            names = ", ".join(name(i) for i in candidates[:5])
            raise CommandError(
                rich(
                    f"Several incidents are open ({names}): say which with ",
                    Code("--id INC-n"),
                    ".",
                )
            )
    raise CommandError(
        rich("No open incident here. ", Code("incident declare P1 <title>"), " starts one.")
    )


@command(
    "incident list",
    summary="Open incidents, oldest first.",
    args=Paged,
    examples=("incident list", "incident list --page 2"),
)
async def incident_list(ctx: Context, args: Paged) -> Result:
    """Every open incident with its progress, a page at a time."""
    every = await store(ctx).open_incidents()
    incidents, page = page_of(every, args.page)
    rows = []
    for incident in incidents:
        items = await store(ctx).items(incident["id"])
        done = sum(1 for i in items if i["done_at"])
        rows.append(
            [
                name(incident),
                incident["severity"],
                incident["title"],
                f"{done}/{len(items)}",
                User(incident["commander"]),
                between(incident["declared_at"], ctx.clock.now()),
            ]
        )
    plural = "s" if len(every) != 1 else ""
    summary = f"{len(every)} open incident{plural}." if every else "No open incident."
    worst = min((i["severity"] for i in every), default=None)
    return Result(
        "incident list",
        STATUS[worst] if worst else Status.OK,
        summary=summary,
        page=page,
        tables=[Table(["incident", "severity", "title", "done", "commander", "open for"], rows)]
        if rows
        else [],
        data={
            "open": [
                {
                    "id": i["id"],
                    "severity": i["severity"],
                    "title": i["title"],
                    "channel": i["channel"],
                    "card_ts": i["card_ts"],
                }
                for i in incidents
            ]
        },
    )


@command(
    "incident status",
    summary="Progress of an incident: steps done, open steps and owners, time since declared.",
    args=Which,
    examples=("incident status", "incident status --id INC-42"),
)
async def incident_status(ctx: Context, args: Which) -> Result:
    """Progress x/y, the open steps with owners, the last update."""
    incident = await target(ctx, args.id)
    items = await store(ctx).items(incident["id"])
    events = await store(ctx).events(incident["id"])
    done = [i for i in items if i["done_at"]]
    open_steps = [
        [str(i["position"]), i["title"], User(i["assignee"]) if i["assignee"] else "—"]
        for i in items
        if not i["done_at"]
    ]
    updates = [e for e in events if e["kind"] == "update"]
    since = between(incident["declared_at"], incident["resolved_at"] or ctx.clock.now())
    return Result(
        f"incident status {name(incident)}",
        STATUS[incident["severity"]] if incident["status"] == "open" else Status.OK,
        summary=f"{name(incident)} ({incident['severity']}, {incident['status']}): "
        f"{incident['title']}. {len(done)}/{len(items)} steps done, {since} since declared.",
        text=rich("Commander: ", User(incident["commander"])),
        fields=[
            ("Progress", f"{len(done)}/{len(items)}"),
            ("Open for", since),
            ("Last update", updates[-1]["text"][:300] if updates else "none yet"),
        ],
        tables=[Table(["step", "open", "owner"], open_steps, title="Open steps")]
        if open_steps
        else [],
        data={
            "id": incident["id"],
            "done": len(done),
            "steps": len(items),
            "status": incident["status"],
            "open": [
                {"position": i["position"], "title": i["title"], "assignee": i["assignee"]}
                for i in items
                if not i["done_at"]
            ],
        },
    )


@command(
    "incident report",
    summary="The incident's report: timeline, durations, participants (Markdown file).",
    args=ReportArgs,
    examples=("incident report", "incident report INC-42"),
)
async def incident_report(ctx: Context, args: ReportArgs) -> Result:
    """The report as a Markdown file, with the durations shown."""
    from bot.incidents.timeline import picture  # the graph pool's side: only for the report

    incident = await target(ctx, args.incident)
    events = await store(ctx).events(incident["id"])
    items = await store(ctx).items(incident["id"])
    drawn = await picture(ctx.store, incident, events, ctx.clock.now())
    markdown = await report_markdown(
        ctx.store, incident, items, events, ctx.clock.now(), drawn.filename if drawn else None
    )
    times = durations(incident, events)
    return Result(
        f"incident report {name(incident)}",
        summary=f"{name(incident)}: {incident['title']} "
        f"({incident['severity']}, {incident['status']}).",
        fields=[(f"Time to {k}", v or "—") for k, v in times.items()],
        attachments=[
            Attachment(
                f"{name(incident)}-report.md", markdown.encode(), f"{name(incident)} report"
            ),
            *([drawn] if drawn else []),
        ],
        data={"id": incident["id"], "durations": times, "markdown": markdown},
    )

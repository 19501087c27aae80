"""`alerts` and `runbook`: what is firing now, and the remediation for an alert."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from bot.alerts import runbook
from bot.core.context import Context
from bot.core.errors import BackendError, CommandError
from bot.core.registry import Args, command, positional
from bot.core.result import Action, Result, Status, Table
from bot.text.cells import Channel, Code, join, lines, rich
from bot.text.units import between

SEVERITY_STATUS = {"critical": Status.CRITICAL, "warning": Status.WARNING}


class RunbookArgs(Args):
    """Arguments of `runbook`."""

    alert: str | None = positional(
        None, max_length=100, help="an alert name, e.g. QueueDLQJobsPresent"
    )


def _labels(row: Any) -> dict[str, str]:
    value = row["labels"]
    return json.loads(value) if isinstance(value, str) else dict(value)


def _where(labels: dict[str, str]) -> str:
    return " ".join(
        f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("alertname", "severity")
    )[:80]


async def _prometheus(ctx: Context) -> tuple[list[dict[str, Any]] | None, str]:
    """Prometheus's active alerts, or None and why not."""
    url = ctx.settings.env.prometheus_url.rstrip("/") + "/api/v1/alerts"
    prometheus = ctx.backends.web.named("prometheus", "PROMETHEUS_URL")
    try:
        response = await prometheus.call(ctx.backends.http().get(url))
        if response.is_error:
            return None, f"prometheus: HTTP {response.status_code}"
        return response.json()["data"]["alerts"], ""
    except (BackendError, KeyError, ValueError) as exc:
        return None, str(exc) or type(exc).__name__


@command(
    "alerts",
    summary="Alerts firing now: forge's record of Alertmanager's notifications, and Prometheus's.",
    examples=("alerts",),
)
async def alerts(ctx: Context, _: object) -> Result:
    """Firing alerts, oldest first, and where their cards are; Prometheus's pending/firing too."""
    from bot.alerts.store import AlertStore

    firing = await AlertStore(ctx.store, ctx.settings.config.timeouts.backend).firing()
    now = ctx.clock.now()
    rows = [
        [
            r["alertname"],
            r["severity"] or "—",
            _where(_labels(r)),
            between(r["starts_at"], now),
            Channel(r["channel"]) if r["channel"] else "—",
        ]
        for r in firing
    ]
    prom, why = await _prometheus(ctx)
    tables = [
        Table(
            ["alert", "severity", "labels", "firing for", "card in"],
            rows,
            title="From Alertmanager",
        )
    ]
    if prom:
        tables.append(
            Table(
                ["alert", "state", "labels", "since"],
                [
                    [
                        a["labels"].get("alertname", "?"),
                        a.get("state", "?"),
                        _where(a["labels"]),
                        _since(a.get("activeAt"), now),
                    ]
                    for a in prom
                ],
                title="Prometheus",
            )
        )
    worst = max(
        (SEVERITY_STATUS.get(r["severity"], Status.WARNING) for r in firing),
        key=lambda s: s.rank,
        default=Status.OK,
    )
    note = (
        f"Prometheus is not reachable ({why}); only forge's record is shown."
        if prom is None
        else ""
    )
    summary = (
        f"{len(firing)} alert{'s' if len(firing) != 1 else ''} firing."
        if firing
        else "Nothing is firing."
    )
    actions = [
        Action(f"Runbook {name}", f"runbook {name}")
        for name in sorted({r["alertname"] for r in firing})
    ][:5]
    return Result(
        "alerts",
        worst,
        summary=summary,
        tables=[t for t in tables if t.rows],
        text=note,
        actions=actions,
        data={
            "firing": [
                {
                    "alertname": r["alertname"],
                    "labels": _labels(r),
                    "severity": r["severity"],
                    "starts_at": r["starts_at"].isoformat(),
                }
                for r in firing
            ],
            "prometheus": prom,
        },
    )


def _since(active_at: str | None, now: datetime) -> str:
    if not active_at:
        return "—"
    try:
        return between(datetime.fromisoformat(active_at.replace("Z", "+00:00")), now)
    except ValueError:
        return "—"


@command(
    "runbook",
    summary="The remediation for an alert (steps and commands), or the list of alerts it covers.",
    args=RunbookArgs,
    examples=("runbook", "runbook QueueDLQJobsPresent"),
)
async def runbook_command(ctx: Context, args: RunbookArgs) -> Result:
    """One entry with its steps and commands, or every entry."""
    config = ctx.settings.config
    if not args.alert:
        entries = runbook.catalog(config)
        return Result(
            "runbook",
            summary=f"forge's runbook covers {len(entries)} alerts (and "
            f"{len(runbook.ALIASES)} other names for them).",
            tables=[
                Table(
                    ["alert", "what it means"], [[n, e.summary] for n, e in sorted(entries.items())]
                )
            ],
            data={"alerts": sorted(entries)},
        )
    item = runbook.entry(config, args.alert)
    if item is None:
        close = [
            n for n in runbook.catalog(config) if n.lower().startswith(args.alert.lower()[:5])
        ][:3]
        hint = (
            rich(" Did you mean ", join(", ", [Code(n) for n in close]), "?")
            if close
            else rich(" ", Code("runbook"), " lists them.")
        )
        raise CommandError(rich("No runbook entry for ", Code(args.alert), ".", hint))
    runnable = [c for c in item.commands if "{" not in c]
    text = lines(
        *(rich(f"{i}. ", step) for i, step in enumerate(runbook.steps(item, {}), 1)),
        "",
        "Commands (on an alert card the labels are filled in):",
        *(rich("• ", Code(c)) for c in item.commands),
    )
    return Result(
        f"runbook {args.alert}",
        summary=item.summary,
        text=text,
        actions=[
            Action(c[:75], c) for c in runbook.commands(item, {}, ctx.registry) if c in runnable
        ][:5],
        data={"alert": args.alert, "steps": item.steps, "commands": item.commands},
    )

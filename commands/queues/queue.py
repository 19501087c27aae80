"""`queue health|pause|resume|inject-failure`: ClientForge's BullMQ queues, straight from Redis."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import NamedTuple

from bot.core.context import Context
from bot.core.errors import CommandError
from bot.core.registry import Args, Risk, Role, command, positional
from bot.core.result import Action, Result, Status, Table, worst
from bot.text.cells import Code, Text, lines, rich
from bot.text.units import duration
from commands.queues.bullmq import Counts, Target, counts, discover, resolve, snapshot
from commands.queues.writes import add_jobs, pause_queue, resume_queue

WAITING_WARN, WAITING_CRIT, LAG_WARN_S, FAILED_WARN, STUCK_WAITING = 1000, 5000, 300, 50, 10
COLUMNS = [
    "queue",
    "status",
    "waiting",
    "active",
    "delayed",
    "prioritized",
    "failed",
    "DLQ",
    "completed",
    "paused",
    "lag",
    "workers",
    "why",
]


class HealthArgs(Args):
    """Arguments of `queue health`."""

    queue: str | None = positional(None, help="one queue (a runbook alias works too); default: all")


class QueueArgs(Args):
    """A queue name."""

    queue: str = positional(
        help='the queue, e.g. "email" (runbook aliases such as "ai-processing" work)'
    )


class InjectArgs(Args):
    """Arguments of `queue inject-failure`."""

    queue: str = positional(help="the queue that receives the test jobs")
    count: int = positional(5, ge=1, le=100, help="how many jobs, 1 to 100")


def grade(c: Counts, lag: float | None, min_attempts: int) -> tuple[Status, list[str]]:
    """ClientForge's thresholds applied to one queue: its status and the reasons."""
    rules = [
        (c.waiting > WAITING_CRIT, Status.CRITICAL, f"{c.waiting:,} waiting (> {WAITING_CRIT:,})"),
        (
            WAITING_WARN < c.waiting <= WAITING_CRIT,
            Status.WARNING,
            f"{c.waiting:,} waiting (> {WAITING_WARN:,})",
        ),
        (
            c.waiting > STUCK_WAITING and c.active == 0 and c.workers == 0,
            Status.CRITICAL,
            "jobs waiting, none active and no worker connected",
        ),
        (
            lag is not None and lag > LAG_WARN_S,
            Status.WARNING,
            f"oldest waiting job {duration(lag)} old (> 5 min)",
        ),
        (c.dlq > 0, Status.WARNING, f"{c.dlq:,} in the DLQ (failed, ≥ {min_attempts} attempts)"),
        (c.failed > FAILED_WARN, Status.WARNING, f"{c.failed:,} failed (> {FAILED_WARN})"),
        (c.paused, Status.WARNING, "paused"),
    ]
    hits = [(status, why) for hit, status, why in rules if hit]
    return worst([s for s, _ in hits]), [why for _, why in hits]


class Graded(NamedTuple):
    """One queue's counts with its status, the reasons for it, and its lag."""

    counts: Counts
    status: Status
    why: list[str]
    lag: float | None


def _row(g: Graded) -> list[str]:
    c, status = g.counts, g.status
    workers = "?" if c.workers is None else str(c.workers)
    return [
        c.name,
        f"{status.symbol} {status.value}",
        f"{c.waiting:,}",
        f"{c.active:,}",
        f"{c.delayed:,}",
        f"{c.prioritized:,}",
        f"{c.failed:,}",
        f"{c.dlq:,}",
        f"{c.completed:,}",
        "yes" if c.paused else "no",
        duration(g.lag),
        workers,
        "; ".join(g.why) or "ok",
    ]


def _actions(graded: list[Graded]) -> list[Action]:
    actions = []
    for g in graded:
        c = g.counts
        if g.status is not Status.OK:
            actions.append(Action(f"Graph {c.name}", f"queue graph {c.name}"))
        if c.paused:
            actions.append(Action(f"Resume {c.name}", f"queue resume {c.name}", "primary"))
        if c.dlq:
            actions += [
                Action(f"List DLQ {c.name}", f"dlq list {c.name}"),
                Action(f"Clear DLQ {c.name}", f"dlq clear {c.name}", "danger"),
            ]
    return actions[:10]


def _summary(graded: list[Graded]) -> Text:
    bad = {s: sum(1 for g in graded if g.status is s) for s in (Status.CRITICAL, Status.WARNING)}
    waiting, dlq = sum(g.counts.waiting for g in graded), sum(g.counts.dlq for g in graded)
    if len(graded) == 1:
        head: Text = rich(Code(graded[0].counts.name), f": {graded[0].status.value}")
    elif any(bad.values()):
        head = (
            f"{len(graded)} queues: {bad[Status.CRITICAL]} critical, {bad[Status.WARNING]} warning"
        )
    else:
        head = f"All {len(graded)} queues healthy"
    return rich(head, f". {waiting:,} waiting, {dlq:,} in the DLQ.")


async def _targets(ctx: Context, queue: str | None) -> tuple[list[str], Text]:
    if queue:
        target = await resolve(ctx, queue)
        return [target.name], target.note
    names = list(dict.fromkeys([*ctx.settings.config.queues, *await discover(ctx)]))
    return names, ""


@command(
    "queue health",
    summary="Waiting, active, failed, DLQ, lag and workers of every BullMQ queue.",
    args=HealthArgs,
    role=Role.VIEWER,
    risk=Risk.READ,
    examples=("queue health", "queue health email", "queue health ai-processing"),
)
async def queue_health(ctx: Context, args: HealthArgs) -> Result:
    """Every configured and discovered queue, graded by ClientForge's thresholds, worst first."""
    names, note = await _targets(ctx, args.queue)
    min_attempts = ctx.settings.config.dlq.min_attempts
    now_ms = int(ctx.clock.now().timestamp() * 1000)
    graded = [
        Graded(c, *grade(c, c.lag(now_ms), min_attempts), c.lag(now_ms))
        for c in await snapshot(ctx, names, min_attempts)
    ]
    graded.sort(key=lambda g: -g.status.rank)
    total = {
        k: sum(getattr(g.counts, k) for g in graded)
        for k in ("waiting", "active", "delayed", "failed", "dlq")
    }
    fields = [
        ("Queues", str(len(graded))),
        ("Waiting", f"{total['waiting']:,} jobs"),
        ("Active", f"{total['active']:,} jobs"),
        ("Delayed", f"{total['delayed']:,} jobs"),
        ("Failed", f"{total['failed']:,} jobs"),
        (f"DLQ (≥ {min_attempts} attempts)", f"{total['dlq']:,} jobs"),
        ("Environment", ctx.settings.environment),
    ]
    data = {
        "queues": [
            {**_public(g.counts), "status": g.status.value, "lag_s": g.lag, "reasons": g.why}
            for g in graded
        ],
        "totals": total,
        "min_attempts": min_attempts,
    }
    return Result(
        "queue health",
        worst([g.status for g in graded]),
        summary=_summary(graded),
        fields=fields,
        tables=[Table(COLUMNS, [_row(g) for g in graded])],
        text=note,
        actions=_actions(graded),
        data=data,
    )


def _public(c: Counts) -> dict[str, object]:
    raw = asdict(c)
    raw.pop("tails")
    return raw


async def _state(ctx: Context, target: Target) -> Counts:
    return (await counts(ctx, [target.name]))[target.name]


@command(
    "queue pause",
    summary="Pause a queue: workers finish the jobs they hold and take no new ones.",
    args=QueueArgs,
    role=Role.OPERATOR,
    risk=Risk.WRITE,
    examples=("queue pause email",),
)
async def queue_pause(ctx: Context, args: QueueArgs) -> Result:
    """Pause the queue as Node BullMQ does: waiting jobs stay queued, workers take no new ones."""
    target = await resolve(ctx, args.queue)
    q = target.name
    if (await _state(ctx, target)).paused:
        return Result(
            f"queue pause {q}",
            summary=rich(Code(q), " was already paused; nothing changed."),
            text=target.note,
            actions=[Action(f"Resume {q}", f"queue resume {q}", "primary")],
            data={"paused": True},
        )
    await pause_queue(ctx, q)
    after = await _state(ctx, target)
    return Result(
        f"queue pause {q}",
        summary=rich(
            Code(q),
            f" paused: {after.active:,} active jobs finish, "
            f"{after.waiting:,} waiting jobs stay queued until ",
            Code(f"queue resume {q}"),
            ".",
        ),
        text=target.note,
        fields=[("Waiting", f"{after.waiting:,} jobs"), ("Active", f"{after.active:,} jobs")],
        actions=[Action(f"Resume {q}", f"queue resume {q}", "primary")],
        data={"paused": after.paused, "waiting": after.waiting, "active": after.active},
    )


@command(
    "queue resume",
    summary="Resume a paused queue.",
    args=QueueArgs,
    role=Role.OPERATOR,
    risk=Risk.WRITE,
    examples=("queue resume email",),
)
async def queue_resume(ctx: Context, args: QueueArgs) -> Result:
    """Resume the queue the way BullMQ's Queue.resume() does."""
    target = await resolve(ctx, args.queue)
    q = target.name
    if not (await _state(ctx, target)).paused:
        return Result(
            f"queue resume {q}",
            summary=rich(Code(q), " was not paused; nothing changed."),
            text=target.note,
            data={"paused": False},
        )
    await resume_queue(ctx, q)
    after = await _state(ctx, target)
    return Result(
        f"queue resume {q}",
        summary=rich(Code(q), f" resumed: {after.waiting:,} waiting jobs can be picked up."),
        text=target.note,
        fields=[("Waiting", f"{after.waiting:,} jobs")],
        actions=[Action(f"Health of {q}", f"queue health {q}")],
        data={"paused": after.paused, "waiting": after.waiting},
    )


def failure_jobs(count: int, now: datetime) -> list[dict[str, object]]:
    """ClientForge's `inject-failing-job` jobs: name, data and options as its script adds them."""
    ms, stamp = int(now.timestamp() * 1000), now.isoformat().replace("+00:00", "Z")
    return [
        {
            "name": "test-failure",
            "data": {
                "testId": f"test-failure-{ms}-{i}",
                "shouldFail": True,
                "failureType": "intentional-test",
                "message": "This job is designed to fail for DLQ testing",
                "injectedAt": stamp,
            },
            "opts": {"attempts": 5, "backoff": {"type": "exponential", "delay": 1000}},
        }
        for i in range(count)
    ]


@command(
    "queue inject-failure",
    summary="Add test jobs meant to fail, to exercise retries, the DLQ and its alert.",
    args=InjectArgs,
    role=Role.OPERATOR,
    risk=Risk.WRITE,
    examples=("queue inject-failure email", "queue inject-failure embeddings 20"),
)
async def queue_inject_failure(ctx: Context, args: InjectArgs) -> Result:
    """Add `count` `test-failure` jobs (5 attempts, exp. backoff 1 s); never in production."""
    if ctx.settings.environment == "production":
        raise CommandError(
            rich(
                Code("queue inject-failure"),
                " is refused in production: it adds jobs that are meant to fail.",
            )
        )
    target = await resolve(ctx, args.queue)
    q = target.name
    ids = await add_jobs(ctx, q, failure_jobs(args.count, ctx.clock.now().astimezone(UTC)))
    shown = ", ".join(ids[:3]) + (f" … {ids[-1]}" if len(ids) > 3 else "")
    text = lines(
        target.note or None,
        "A worker that fails them retries after 1, 2, 4 and 8 s; "
        "after the 5th attempt (~15 s) they are in the DLQ.",
        rich(
            "Nothing in the job itself fails: ClientForge's ",
            Code("notifications"),
            " and ",
            Code("data-sync"),
            " workers complete it, and with no worker running the jobs just wait.",
        ),
    )
    return Result(
        f"queue inject-failure {q}",
        summary=rich(
            f"Added {len(ids)} ", Code("test-failure"), " jobs to ", Code(q), f" (ids {shown})."
        ),
        text=text,
        fields=[("Queue", q), ("Jobs", str(len(ids))), ("Attempts", "5, exponential 1 s")],
        actions=[
            Action(f"Health of {q}", f"queue health {q}"),
            Action(f"List DLQ {q}", f"dlq list {q}"),
        ],
        data={"queue": q, "job_ids": ids},
    )

"""`verify`: one deployment verification, every family's checks as a pass / warn / fail checklist.

It composes the checks other commands already make (`health`, `queue health`, the DLQ count,
`es indices` and `es aliases`, `db extensions`, the backup catalog) and runs them at once, each
within its own time budget, so a backend that is down or hangs is one failed line. Only a
failed line fails the verification (exit 1 from `forge run`); warnings are listed but do not,
as in ClientForge's `deploy:verify`. Unlike ClientForge's own scripts
(`../shared/clientforge.md` §9.22–9.24) it sends the tenant header on every /api/v1 probe,
reads the readiness status where the controller puts it (`data.status`), finds workers in
CLIENT LIST rather than in a `bull:<q>:workers` key that never exists, counts the DLQ as failed
jobs out of attempts rather than in a `<q>:dlq` queue, uses the code's queue names, and checks
the aliases ClientForge creates (`*-current`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta

from bot.backends.clients import describe
from bot.core.context import Context
from bot.core.errors import ForgeError
from bot.core.registry import NoArgs, Risk, Role, command
from bot.core.result import Action, Result, Status, Table, worst
from bot.log import get_logger
from bot.text.cells import Strong, Text, join, plain, rich
from bot.text.units import duration
from commands.backup.catalog import Catalog
from commands.db.space import EXTENSIONS, SERVER, extension_problems
from commands.health import Check, run_checks
from commands.queues.bullmq import Counts, discover, snapshot
from commands.queues.queue import grade
from commands.search.es import (
    EXPECTED_ALIASES,
    EXPECTED_INDICES,
    cat_aliases,
    cat_indices,
    cluster_health,
    index_status,
)

log = get_logger(__name__)
VERDICT = {
    Status.OK: "pass",
    Status.RUNNING: "warn",
    Status.WARNING: "warn",
    Status.CRITICAL: "fail",
}
BACKUP_MAX_AGE = timedelta(
    hours=26
)  # the backup scheduler's "missed" threshold: a nightly run plus 2 h
DLQ_FAIL = 100  # deploy:verify's own FAIL threshold (§9.22 check 8); any DLQ job is a warning


@dataclass(frozen=True)
class Line:
    """One checklist item: what was checked, how it went, and why."""

    key: str
    label: str
    status: Status
    detail: Text
    follow_up: Action | None = None

    @property
    def verdict(self) -> str:
        """pass, warn or fail."""
        return VERDICT[self.status]

    def as_dict(self) -> dict[str, str]:
        """The JSON shape of `Result.data["checks"]`."""
        return {
            "name": self.key,
            "label": self.label,
            "result": self.verdict,
            "status": self.status.value,
            "detail": plain(self.detail),
        }


@dataclass(frozen=True)
class Probe:
    """A check that yields the lines `lines` names; when it cannot run, each of them is `down`."""

    run: Callable[[Context], Awaitable[list[Line]]]
    lines: tuple[tuple[str, str], ...]
    down: Status
    down_note: str = ""


HEALTH_NEXT = {
    "api": Action("Health", "health"),
    "postgres": Action("Health", "health"),
    "redis": Action("Health", "health"),
    "elasticsearch": Action("ES status", "es status"),
}


def _from_health(check: Check) -> Line:
    return Line(check.name, check.label, check.status, check.detail, HEALTH_NEXT.get(check.name))


async def check_queues(ctx: Context) -> list[Line]:
    """The queue and DLQ lines from one snapshot of every configured and discovered queue."""
    names = list(dict.fromkeys([*ctx.settings.config.queues, *await discover(ctx)]))
    min_attempts = ctx.settings.config.dlq.min_attempts
    found = await snapshot(ctx, names, min_attempts)
    return [_queue_line(ctx, found, min_attempts), _dlq_line(found, min_attempts)]


def _queue_line(ctx: Context, found: list[Counts], min_attempts: int) -> Line:
    """ClientForge's queue thresholds (`queue health`'s), except the DLQ, which has its own line."""
    now_ms = int(ctx.clock.now().timestamp() * 1000)
    graded = [(c, *grade(replace(c, dlq=0), c.lag(now_ms), min_attempts)) for c in found]
    bad = [f"{c.name}: {', '.join(why)}" for c, status, why in graded if status is not Status.OK]
    if bad:
        status = worst([s for _, s, _ in graded])
        return Line(
            "queues",
            "Queues and workers",
            status,
            "; ".join(bad),
            Action("Queue health", "queue health"),
        )
    waiting = sum(c.waiting for c in found)
    lag = max((c.lag(now_ms) or 0 for c in found), default=0)
    return Line(
        "queues",
        "Queues and workers",
        Status.OK,
        f"{len(found)} queues, {waiting:,} waiting (oldest {duration(lag)}); {_workers(found)}",
    )


def _workers(found: list[Counts]) -> str:
    """Worker connections as CLIENT LIST shows them (BullMQ keeps no `bull:<q>:workers` key)."""
    if all(c.workers is None for c in found):
        return "workers unknown: CLIENT LIST is not allowed for forge's Redis user"
    busy = [f"{c.name} {c.workers}" for c in found if c.workers]
    if not busy:
        return (
            "no worker connected "
            "(ClientForge's API process starts none; a problem only when jobs wait)"
        )
    return "workers: " + ", ".join(busy)


def _dlq_line(found: list[Counts], min_attempts: int) -> Line:
    total = sum(c.dlq for c in found)
    if not total:
        return Line(
            "dlq", "Dead-letter queues", Status.OK, f"no failed job with ≥ {min_attempts} attempts"
        )
    status = Status.CRITICAL if total > DLQ_FAIL else Status.WARNING
    held = sorted((c for c in found if c.dlq), key=lambda c: -c.dlq)
    limit = f" (> {DLQ_FAIL})" if total > DLQ_FAIL else ""
    return Line(
        "dlq",
        "Dead-letter queues",
        status,
        f"{total:,} failed jobs with ≥ {min_attempts} attempts{limit}: "
        + ", ".join(f"{c.name} {c.dlq:,}" for c in held),
        Action(f"List DLQ {held[0].name}", f"dlq list {held[0].name}"),
    )


async def check_elasticsearch(ctx: Context) -> list[Line]:
    """ClientForge's indices (schemes A, B) present and not red, its `-current` aliases present."""
    health, indices, aliases = await asyncio.gather(
        cluster_health(ctx), cat_indices(ctx), cat_aliases(ctx)
    )
    single = int(health.get("number_of_data_nodes") or 0) == 1
    state = {str(r.get("index")): index_status(str(r.get("health")), single) for r in indices}
    red = [n for n in EXPECTED_INDICES if state.get(n) is Status.CRITICAL]
    yellow = [n for n in EXPECTED_INDICES if state.get(n) is Status.WARNING]
    missing = [n for n in EXPECTED_INDICES if n not in state]
    present = {str(r.get("alias")) for r in aliases}
    no_alias = [a for a in EXPECTED_ALIASES if a not in present]
    problems = [
        (red, Status.CRITICAL, "red (primary shards unassigned): "),
        (missing, Status.WARNING, "missing indices: "),
        (no_alias, Status.WARNING, "missing aliases: "),
        (yellow, Status.WARNING, "yellow (replicas unassigned on a multi-node cluster): "),
    ]
    found = [(status, text + ", ".join(names)) for names, status, text in problems if names]
    if not found:
        return [
            Line(
                "es",
                "Elasticsearch indices and aliases",
                Status.OK,
                f"{len(EXPECTED_INDICES)} indices usable ({', '.join(EXPECTED_INDICES)}); "
                f"aliases {', '.join(EXPECTED_ALIASES)} present",
            )
        ]
    return [
        Line(
            "es",
            "Elasticsearch indices and aliases",
            worst([s for s, _ in found]),
            "; ".join(text for _, text in found),
            Action("ES indices", "es indices"),
        )
    ]


async def check_extensions(ctx: Context) -> list[Line]:
    """The extensions ClientForge's schema needs, as `db extensions` judges them."""
    rows, (server,) = await ctx.backends.pg.read_many([(EXTENSIONS, ()), (SERVER, ())])
    problems = extension_problems({r["name"]: dict(r) for r in rows}, server)
    if problems:
        return [
            Line(
                "extensions",
                "PostgreSQL extensions",
                Status.WARNING,
                join("; ", problems),
                Action("DB extensions", "db extensions"),
            )
        ]
    return [
        Line(
            "extensions",
            "PostgreSQL extensions",
            Status.OK,
            "every extension ClientForge needs is there",
        )
    ]


async def check_backups(ctx: Context) -> list[Line]:
    """The newest dump in forge's backup catalog: none, or older than 26 h, is a warning."""
    label, listing = "Backups", Action("Backups", "backup list")
    if ctx.store is None:
        return [
            Line(
                "backups",
                label,
                Status.WARNING,
                "no state store, so no backup catalog: freshness unknown",
            )
        ]
    entries = await Catalog(ctx).live(1)
    if not entries:
        return [
            Line(
                "backups",
                label,
                Status.WARNING,
                "no backup in forge's catalog (backup create makes one)",
                listing,
            )
        ]
    newest = entries[0]
    old = ctx.clock.now() - newest.created_at
    where = f"{newest.file} ({newest.kind})"
    if old > BACKUP_MAX_AGE:
        return [
            Line(
                "backups",
                label,
                Status.WARNING,
                f"no backup in the last 26 h: "
                f"the newest is {duration(old.total_seconds())} old, {where}",
                listing,
            )
        ]
    if newest.verified_ok is False:
        return [
            Line(
                "backups",
                label,
                Status.WARNING,
                f"the newest, {where}, failed its checksum check",
                listing,
            )
        ]
    return [
        Line("backups", label, Status.OK, f"newest {duration(old.total_seconds())} old: {where}")
    ]


PROBES = (
    Probe(
        check_queues,
        (("queues", "Queues and workers"), ("dlq", "Dead-letter queues")),
        Status.CRITICAL,
    ),
    Probe(check_elasticsearch, (("es", "Elasticsearch indices and aliases"),), Status.WARNING),
    Probe(check_extensions, (("extensions", "PostgreSQL extensions"),), Status.CRITICAL),
    Probe(check_backups, (("backups", "Backups"),), Status.WARNING, "; backup freshness unknown"),
)


async def _guarded(ctx: Context, probe: Probe) -> list[Line]:
    """Run one probe in its budget; whatever stops it becomes its lines, `down`, with the reason."""
    budget = (
        2 * ctx.settings.config.timeouts.backend
    )  # a few backend calls in a row, each bounded on its own
    try:
        return await asyncio.wait_for(probe.run(ctx), budget)
    except TimeoutError:
        why = f"no answer within {budget:g} s"
    except ForgeError as exc:
        why = str(exc)
    except Exception as exc:  # a bug in one check must not hide the others
        log.exception("verify_check_failed", check=probe.lines[0][0])
        why = describe(exc)
    return [Line(key, label, probe.down, why + probe.down_note) for key, label in probe.lines]


async def run_lines(ctx: Context) -> list[Line]:
    """Every check at once: `health`'s probes, then the other families', in checklist order."""
    health, rest = await asyncio.gather(
        run_checks(ctx), asyncio.gather(*(_guarded(ctx, p) for p in PROBES))
    )
    return [_from_health(c) for c in health] + [line for lines in rest for line in lines]


def _summary(lines: list[Line]) -> str:
    failed = [x.label for x in lines if x.verdict == "fail"]
    warned = [x.label for x in lines if x.verdict == "warn"]
    warnings = f"{len(warned)} warning{'s' if len(warned) != 1 else ''}" + (
        f" ({', '.join(warned)})" if warned else ""
    )
    if failed:
        return (
            f"Deployment verification failed: {len(failed)} of {len(lines)} checks failed "
            f"({', '.join(failed)}); {warnings}."
        )
    if warned:
        return f"Deployment verified with {warnings}: nothing failed."
    return f"Deployment verified: all {len(lines)} checks passed."


def _actions(lines: list[Line]) -> list[Action]:
    """Where to look next for each line that did not pass, failures first; at most five."""
    actions: list[Action] = []
    for line in sorted(
        (x for x in lines if x.status is not Status.OK), key=lambda x: -x.status.rank
    ):
        if line.follow_up is not None and line.follow_up.command not in {
            a.command for a in actions
        }:
            actions.append(line.follow_up)
    return actions[:5]


@command(
    "verify",
    summary="Deployment verification: health, queues and workers, DLQ, Elasticsearch indices and "
    "aliases, PostgreSQL extensions and backup freshness as one pass / warn / fail checklist.",
    args=NoArgs,
    role=Role.VIEWER,
    risk=Risk.READ,
    examples=("verify",),
    slow=True,
)
async def verify(ctx: Context, args: NoArgs) -> Result:
    """Every check at once; fails (critical, exit 1) if any line fails; warnings show, exit 0."""
    lines = await run_lines(ctx)
    counts = {v: sum(x.verdict == v for x in lines) for v in ("pass", "warn", "fail")}
    status = Status.CRITICAL if counts["fail"] else Status.WARNING if counts["warn"] else Status.OK
    ranked = sorted(lines, key=lambda x: -x.status.rank)
    rows = [[x.label, f"{x.status.symbol} {x.verdict}", x.detail] for x in ranked]
    why = join(
        "\n",
        [
            rich(f"{x.status.symbol} ", Strong(x.label), ": ", x.detail)
            for x in ranked
            if x.status is not Status.OK
        ],
    )
    fields = [
        ("Environment", ctx.settings.environment),
        ("Passed", str(counts["pass"])),
        ("Warnings", str(counts["warn"])),
        ("Failed", str(counts["fail"])),
    ]
    return Result(
        "verify",
        status,
        summary=_summary(lines),
        fields=fields,
        tables=[Table(["check", "result", "detail"], rows)],
        text=why,
        actions=_actions(lines),
        fails_at=Status.CRITICAL,
        data={
            "verdict": "fail" if counts["fail"] else "pass",
            "passed": counts["pass"],
            "warned": counts["warn"],
            "failed": counts["fail"],
            "checks": [x.as_dict() for x in lines],
        },
    )

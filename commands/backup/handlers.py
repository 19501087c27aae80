"""`backup create|list|verify|drill|restore|schedule`: dumps that are checked, drilled and restored with care."""

from __future__ import annotations

import asyncio
import re
import statistics
from collections.abc import Awaitable, Callable
from datetime import time

from bot.core.context import Context
from bot.core.errors import CommandError, ForgeError
from bot.core.registry import Args, NoArgs, Risk, Role, command, option, positional
from bot.core.result import Action, Result, Status, Table, worst
from bot.core.units import duration, size
from commands.backup import pg, s3
from commands.backup.catalog import (
    NAME,
    Catalog,
    Entry,
    append_log,
    backup_dir,
    checksum,
    exclusive,
    resolve,
)
from commands.backup.ops import (
    Comparison,
    Hook,
    checked,
    database,
    drill,
    limit,
    make_backup,
    restore_live,
)
from commands.backup.schedule import describe, load, save

SIZE_DRIFT = 0.30
LIST_ROWS = 30
HOUR = 3600


class FileArgs(Args):
    """An optional dump name."""

    file: str | None = positional(
        None,
        help="a dump in the backup directory, e.g. `backup-2025-11-10T02-00-00-000Z"
        ".dump`; default: the newest",
    )


class RestoreArgs(Args):
    """Arguments of `backup restore`."""

    file: str | None = option(help="the dump to restore, as `backup list` names it")
    target: str | None = option(
        help="the database to restore into; only DATABASE_URL's database is accepted"
    )
    dry_run: bool = option(False, help="say what would be restored, restore nothing")


class ScheduleArgs(Args):
    """Arguments of `backup schedule`."""

    when: str | None = positional(
        None, help="`HH:MM` (UTC, daily) or `off`; default: show the schedule"
    )


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _since(ctx: Context, entry: Entry) -> str:
    return duration((ctx.clock.now() - entry.created_at).total_seconds())


async def _logged(ctx: Context, what: str, work: Callable[[], Awaitable[Result]]) -> Result:
    """Run the work and append its outcome to backup.log, failures included."""
    try:
        result = await work()
    except ForgeError as exc:
        append_log(ctx, f"{what} FAILED: {exc}")
        raise
    except (
        Exception,
        asyncio.CancelledError,
    ) as exc:  # a crash or the command's timeout: still one line
        append_log(ctx, f"{what} FAILED: stopped ({type(exc).__name__})")
        raise
    append_log(ctx, f"{what} {result.status.value}: {result.summary}")
    return result


def _kind(ctx: Context) -> str:
    return "scheduled" if ctx.actor.source == "schedule" else "manual"


@command(
    "backup create",
    summary="pg_dump of the database into the backup directory, checksummed and catalogued.",
    role=Role.OPERATOR,
    risk=Risk.WRITE,
    examples=("backup create",),
    timeout=3600,
    slow=True,
)
async def backup_create(ctx: Context, args: NoArgs) -> Result:
    """Dump, checksum, catalogue, then prune dumps past the retention."""
    return await _logged(ctx, "backup create", lambda: _create(ctx))


async def _create(ctx: Context) -> Result:
    async with exclusive(ctx, "backup"):
        entry = await make_backup(ctx, _kind(ctx))
        pruned = await Catalog(ctx).prune(ctx.settings.config.backup.retention_days)
    copied, offsite = await _offsite(ctx, entry)
    days = ctx.settings.config.backup.retention_days
    gone = (
        f" Pruned {len(pruned)} dumps older than {days} days: {', '.join(pruned)}."
        if pruned
        else ""
    )
    failed = f" ⚠️ The off-site copy {offsite}." if copied is Status.WARNING else ""
    return Result(
        "backup create",
        copied,
        summary=f"Backed up `{entry.source}` into `{entry.file}` "
        f"({size(entry.size_bytes)}, {entry.duration_ms / 1000:.1f} s).{gone}{failed}",
        fields=_entry_fields(entry)
        + [("Pruned", f"{len(pruned)} (retention {days} days)"), ("Off-site copy", offsite)],
        actions=[
            Action("Verify it", f"backup verify {entry.file}"),
            Action("List backups", "backup list"),
        ],
        data={
            "file": entry.file,
            "size": entry.size_bytes,
            "sha256": entry.sha256,
            "pruned": pruned,
            "seconds": entry.duration_ms / 1000,
            "tables": len(entry.row_counts),
            "rows": entry.rows,
            "offsite": offsite,
        },
    )


async def _offsite(ctx: Context, entry: Entry) -> tuple[Status, str]:
    """Copy the dump to S3-compatible storage when configured; a failure warns, the local dump stands."""
    try:
        target = s3.bucket(ctx.settings)
        if target is None:
            return Status.OK, "not configured"
        url = await s3.upload(ctx, target, resolve(ctx, entry.file), entry.sha256, limit(ctx))
    except ForgeError as exc:
        return Status.WARNING, f"failed ({exc}); the local dump is fine"
    await Catalog(ctx).offsite(entry, url)
    return Status.OK, "copied"


def _entry_fields(entry: Entry) -> list[tuple[str, str]]:
    return [
        ("File", entry.file),
        ("Size", size(entry.size_bytes)),
        ("Duration", f"{entry.duration_ms / 1000:.1f} s"),
        ("SHA-256", entry.sha256[:16] + "…"),
        ("Tables", f"{len(entry.row_counts):,}"),
        ("Rows", f"{entry.rows:,}"),
    ]


def _state(ctx: Context, entry: Entry) -> tuple[Status, str]:
    path = backup_dir(ctx) / entry.file
    if not path.is_file():
        return Status.CRITICAL, "file missing"
    if path.stat().st_size != entry.size_bytes:
        return Status.CRITICAL, "size changed"
    if entry.verified_ok is False:
        return Status.CRITICAL, "checksum MISMATCH"
    if entry.verified_at is None:
        return Status.OK, "not verified yet"
    return (
        Status.OK,
        f"ok (verified {duration((ctx.clock.now() - entry.verified_at).total_seconds())} ago)",
    )


def _drift(entries: list[Entry], i: int) -> str:
    older = [e.size_bytes for e in entries[i + 1 :]]
    if len(older) < 2:
        return ""
    median = statistics.median(older)
    change = (entries[i].size_bytes - median) / median if median else 0.0
    return f"{change:+.0%} vs median {size(int(median))}" if abs(change) > SIZE_DRIFT else ""


async def _offsite_states(ctx: Context, entries: list[Entry]) -> list[str] | None:
    """Whether each dump's off-site copy exists, when off-site copies are configured."""
    try:
        target = s3.bucket(ctx.settings)
    except CommandError as exc:
        return [str(exc)[:60]] * len(entries)
    if target is None:
        return None
    return list(
        await asyncio.gather(*(s3.present(ctx, target, e.file, e.size_bytes) for e in entries))
    )


def _row(
    ctx: Context, entries: list[Entry], i: int, offsite: str | None
) -> tuple[Status, list[str]]:
    e = entries[i]
    status, state = _state(ctx, e)
    drift = _drift(entries, i)
    if drift or offsite not in (None, "yes"):
        status = worst([status, Status.WARNING])
    cells = [e.file, e.kind, size(e.size_bytes), _since(ctx, e), state, drift or "—"]
    return status, cells + ([offsite] if offsite is not None else [])


def _strays(ctx: Context, entries: list[Entry]) -> list[str]:
    known, folder = {e.file for e in entries}, backup_dir(ctx)
    return (
        sorted(p.name for p in folder.glob("backup-*.dump") if p.name not in known)
        if folder.is_dir()
        else []
    )


@command(
    "backup list",
    summary="Catalogued dumps, newest first: size, age, checksum state, size outliers.",
    examples=("backup list",),
)
async def backup_list(ctx: Context, args: NoArgs) -> Result:
    """Every live dump with its checksum state, warning on a size > 30 % off the median of the older ones."""
    entries = await Catalog(ctx).live()
    shown = entries[:LIST_ROWS]
    offsite = await _offsite_states(ctx, shown)
    graded = [_row(ctx, entries, i, offsite[i] if offsite else None) for i in range(len(shown))]
    rows = [cells for _, cells in graded]
    drifted, strays = [r[0] for r in rows if r[5] != "—"], _strays(ctx, entries)
    summary = (
        f"{_count(len(entries), 'backup')}, newest {_since(ctx, entries[0])} old."
        if entries
        else "No backups in the catalog yet: run `backup create`."
    )
    notes = [
        f"⚠️ Size departs by more than 30 % from the median of the previous dumps: {', '.join(drifted)}."
        if drifted
        else "",
        f"{len(strays)} dump files in the directory are not in the catalog (not forge's, or "
        f"pruned from it): {', '.join(strays[:5])}."
        if strays
        else "",
    ]
    actions = (
        [
            Action("Verify newest", f"backup verify {entries[0].file}"),
            Action("Drill", "backup drill"),
            Action("Restore newest", f"backup restore --file {entries[0].file}", "danger"),
        ]
        if entries
        else [Action("Back up now", "backup create", "primary")]
    )
    columns = ["file", "kind", "size", "age", "checksum", "size vs previous"] + (
        ["off-site"] if offsite else []
    )
    return Result(
        "backup list",
        worst([s for s, _ in graded]) if graded else Status.WARNING,
        summary=summary,
        text="\n".join(n for n in notes if n),
        tables=[Table(columns, rows)] if rows else [],
        actions=actions,
        data={
            "backups": [dict(zip(columns, r, strict=False)) for r in rows],
            "uncatalogued": strays,
        },
    )


async def _named_or_newest(ctx: Context, name: str | None) -> str:
    if name:
        return resolve(ctx, name).name
    entries = await Catalog(ctx).live(1)
    if not entries:
        raise CommandError("No backups in the catalog yet: run `backup create` first.")
    return entries[0].file


@command(
    "backup verify",
    summary="A dump's checksum against the catalog and its table of contents (pg_restore --list).",
    args=FileArgs,
    examples=("backup verify", "backup verify backup-2025-11-10T02-00-00-000Z.dump"),
    timeout=600,
)
async def backup_verify(ctx: Context, args: FileArgs) -> Result:
    """SHA-256 against the catalog, then the archive's entries: table data, indexes, constraints."""
    name = await _named_or_newest(ctx, args.file)
    path, entry = resolve(ctx, name), await Catalog(ctx).get(name)
    if not path.is_file():
        raise CommandError(
            f"No file `{name}` in the backup directory; `backup list` shows what is there."
        )
    problems = []
    if entry is None:
        problems.append("not in the catalog: there is no checksum to compare with")
    elif not (ok := await checksum(path) == entry.sha256):
        problems.append("SHA-256 does not match the catalog: the file is damaged or was changed")
    if entry is not None:
        await Catalog(ctx).verified(entry, ok)
    toc = await pg.toc(database(ctx), path, limit(ctx))
    if entry is not None and toc["TABLE DATA"] != len(entry.row_counts):
        problems.append(
            f"{toc['TABLE DATA']} table data entries, but {len(entry.row_counts)} tables were dumped"
        )
    status = (
        Status.CRITICAL
        if entry is not None and problems
        else Status.WARNING
        if problems
        else Status.OK
    )
    return Result(
        f"backup verify {name}",
        status,
        summary=(f"`{name}`: " + "; ".join(problems) + ".")
        if problems
        else f"`{name}` matches its catalogued SHA-256 and its table of contents reads.",
        fields=[
            ("Checksum", "no catalog entry" if entry is None else "ok" if ok else "MISMATCH"),
            ("Table data", f"{toc['TABLE DATA']:,}"),
            ("Indexes", f"{toc['INDEX']:,}"),
            ("Constraints", f"{toc['CONSTRAINT'] + toc['FK CONSTRAINT']:,}"),
            ("Size", size(path.stat().st_size)),
        ],
        data={"file": name, "problems": problems, "toc": dict(toc)},
    )


@command(
    "backup drill",
    summary="The monthly drill: a fresh dump restored into a scratch database and compared.",
    role=Role.OPERATOR,
    risk=Risk.WRITE,
    examples=("backup drill",),
    timeout=7200,
    slow=True,
)
async def backup_drill(ctx: Context, args: NoArgs) -> Result:
    """Back up, restore into a scratch database, compare every table's rows and the schema objects, drop it."""
    return await run_drill(ctx)


async def run_drill(ctx: Context, on_restored: Hook | None = None) -> Result:
    """The drill; `on_restored` gets the scratch database's DSN before the comparison (tests use it)."""

    async def work() -> Result:
        async with exclusive(ctx, "drill"):
            entry = await make_backup(ctx, "drill")
            found = await drill(ctx, entry, on_restored)
        return _drill_result(ctx, entry, found)

    return await _logged(ctx, "backup drill", work)


def _drill_result(ctx: Context, entry: Entry, found: Comparison) -> Result:
    fields = [
        ("Dump", entry.file),
        ("Tables compared", f"{len(entry.row_counts):,}"),
        ("Rows compared", f"{entry.rows:,}"),
        ("Differences", f"{len(found.differences):,}"),
        ("Duration", f"{(ctx.clock.now() - entry.created_at).total_seconds():.1f} s"),
    ]
    data = {
        "file": entry.file,
        "tables": len(entry.row_counts),
        "rows": entry.rows,
        "differences": found.differences,
        "objects": entry.objects,
    }
    if found.differences:
        return Result(
            "backup drill",
            Status.CRITICAL,
            summary=f"🔴 DRILL FAILED: the restored copy of `{entry.file}` "
            f"differs from the source in {len(found.differences)} places. This backup cannot be trusted.",
            fields=fields,
            tables=[Table(["table or (objects)", "source", "restored"], found.differences)],
            data=data,
        )
    kinds = ", ".join(f"{n:,} {k}" for k, n in sorted(entry.objects.items()))
    return Result(
        "backup drill",
        summary=f"Drill passed: `{entry.file}` restored into a scratch database with every "
        f"table's exact row count ({_count(entry.rows, 'row')} in {_count(len(entry.row_counts), 'table')}) and every "
        f"schema object ({kinds}) as in the source. The scratch database was dropped.",
        fields=fields,
        data=data,
    )


async def _restorable(ctx: Context, args: RestoreArgs) -> tuple[Entry, pg.Target]:
    tgt = database(ctx)
    if args.target is not None and args.target != tgt.database:
        raise CommandError(
            f"Restores go only into the configured database `{tgt.database}`; "
            f"`{args.target[:60]}` is refused."
        )
    if not args.file:
        newest = await Catalog(ctx).live(1)
        hint = (
            f" The newest is `{newest[0].file}`: `backup restore --file {newest[0].file}`."
            if newest
            else ""
        )
        raise CommandError(
            "Name the dump to restore with `--file`, so what is approved is what is restored."
            + hint
        )
    entry, _ = await checked(ctx, resolve(ctx, args.file).name)
    if entry.source != tgt.label:
        raise CommandError(
            f"`{entry.file}` was taken from `{entry.source}`, not from `{tgt.label}`; "
            "forge restores a database only from its own dumps."
        )
    return entry, tgt


async def restore_preview(ctx: Context, args: RestoreArgs) -> Result:
    """The dry run of `backup restore`: the file, its age and size, the target, what the restore will do."""
    entry, tgt = await _restorable(ctx, args)
    return Result(
        f"backup restore --file {entry.file} --dry-run",
        Status.WARNING,
        summary=f"Would restore `{entry.file}` ({_since(ctx, entry)} old, {size(entry.size_bytes)}) over "
        f"`{tgt.database}` on `{tgt.host}:{tgt.port}`, replacing its tables, after a safety dump of it.",
        fields=[
            ("File", entry.file),
            ("Age", _since(ctx, entry)),
            ("Size", size(entry.size_bytes)),
            ("Target database", tgt.label),
            ("Tables in dump", f"{len(entry.row_counts):,}"),
            ("Rows in dump", f"{entry.rows:,}"),
            ("Checksum", "ok"),
        ],
        data={"file": entry.file, "target": tgt.label, "rows": entry.rows},
    )


@command(
    "backup restore",
    summary="Restore a dump over the database, after a safety dump; needs approval.",
    args=RestoreArgs,
    role=Role.ADMIN,
    risk=Risk.DESTRUCTIVE,
    preview=restore_preview,
    confirm=lambda args: args.file or "--file",
    timeout=7200,
    examples=(
        "backup restore --file backup-2025-11-10T02-00-00-000Z.dump",
        "backup restore --file backup-2025-11-10T02-00-00-000Z.dump --dry-run",
    ),
)
async def backup_restore(ctx: Context, args: RestoreArgs) -> Result:
    """Check the dump again, take a safety dump, restore in one transaction, compare row counts with the dump's."""
    return await _logged(ctx, f"backup restore {args.file}", lambda: _restore(ctx, args))


async def _restore(ctx: Context, args: RestoreArgs) -> Result:
    async with exclusive(ctx, "restore"):
        entry, tgt = await _restorable(ctx, args)
        safety = await make_backup(ctx, "safety", "-pre-restore")
        found = await restore_live(ctx, entry, resolve(ctx, entry.file))
    fields = [
        ("Restored", entry.file),
        ("Target", tgt.label),
        ("Safety dump", safety.file),
        ("Tables checked", f"{found.tables:,}"),
        ("Rows now", f"{found.rows:,}"),
        ("Differences", f"{len(found.differences):,}"),
    ]
    data = {
        "file": entry.file,
        "safety": safety.file,
        "differences": found.differences,
        "rows": found.rows,
    }
    if found.differences:
        return Result(
            "backup restore",
            Status.CRITICAL,
            summary=f"Restored `{entry.file}`, but {len(found.differences)} "
            f"tables' row counts differ from the dump's. The previous state is in `{safety.file}`.",
            fields=fields,
            tables=[Table(["table", "in dump", "now"], found.differences)],
            data=data,
        )
    return Result(
        "backup restore",
        summary=f"Restored `{entry.file}` into `{tgt.label}`: every table's row count "
        f"matches the dump's ({found.rows:,} rows). The state before is kept in `{safety.file}`.",
        fields=fields,
        actions=[Action("Verify safety dump", f"backup verify {safety.file}")],
        data=data,
    )


def _parse_time(text: str) -> time | None:
    if text.lower() == "off":
        return None
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", text):
        raise CommandError(
            f"`{text[:20]}` is not a time: give `HH:MM` in UTC (e.g. `02:00`) or `off`."
        )
    return time(int(text[:2]), int(text[3:]))


@command(
    "backup schedule",
    summary="Show or set the nightly backup time (HH:MM UTC) or turn it off.",
    args=ScheduleArgs,
    role=Role.OPERATOR,
    risk=Risk.WRITE,
    examples=("backup schedule", "backup schedule 02:00", "backup schedule off"),
)
async def backup_schedule(ctx: Context, args: ScheduleArgs) -> Result:
    """Stored in the state store; every forge process reads it, one runs each night's backup."""
    pool, timeout = await ctx.store.pool(), ctx.settings.config.timeouts.backend
    if args.when is not None:
        await save(pool, timeout, _parse_time(args.when), ctx.actor.user_id, ctx.clock.now())
    status, summary = describe(await load(pool, timeout), await _newest(ctx), ctx.clock.now())
    channel = ctx.settings.config.channels.alerts
    where = (
        f"Outcomes are posted to <#{channel}>."
        if channel
        else "No alerts channel is configured: outcomes are only logged."
    )
    return Result(
        "backup schedule", status, summary=f"{summary} {where}", data={"alerts_channel": channel}
    )


async def _newest(ctx: Context) -> Entry | None:
    entries = await Catalog(ctx).live(1)
    return entries[0] if entries else None


__all__ = ["NAME", "run_drill"]

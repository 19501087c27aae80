"""`backup create|list|verify`: dumps that are taken, catalogued, listed and checked."""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Awaitable, Callable

from bot.core.context import Context
from bot.core.errors import CommandError, ForgeError
from bot.core.registry import Args, NoArgs, Risk, Role, command, positional
from bot.core.result import Action, Result, Status, Table, worst
from bot.text.cells import Code, rich
from bot.text.units import duration, size
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
from commands.backup.ops import database, limit, make_backup

SIZE_DRIFT = 0.30
LIST_ROWS = 30
HOUR = 3600


class FileArgs(Args):
    """An optional dump name."""

    file: str | None = positional(
        None,
        help="a dump in the backup directory, e.g. backup-2025-11-10T02-00-00-000Z.dump; "
        "default: the newest",
    )


def plural(n: int, noun: str) -> str:
    """`1 row`, `2,000 rows`."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def age(ctx: Context, entry: Entry) -> str:
    """How long ago the dump was taken."""
    return duration((ctx.clock.now() - entry.created_at).total_seconds())


async def logged(ctx: Context, what: str, work: Callable[[], Awaitable[Result]]) -> Result:
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
    return await logged(ctx, "backup create", lambda: _create(ctx))


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
        summary=rich(
            "Backed up ",
            Code(entry.source),
            " into ",
            Code(entry.file),
            f" ({size(entry.size_bytes)}, {entry.duration_ms / 1000:.1f} s).{gone}{failed}",
        ),
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
    """Copy to S3-compatible storage when configured; a failure warns, the local dump stands."""
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
    cells = [e.file, e.kind, size(e.size_bytes), age(ctx, e), state, drift or "—"]
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
    """Each live dump with its checksum state; warns on a size > 30 % off the older ones' median."""
    entries = await Catalog(ctx).live()
    shown = entries[:LIST_ROWS]
    offsite = await _offsite_states(ctx, shown)
    graded = [_row(ctx, entries, i, offsite[i] if offsite else None) for i in range(len(shown))]
    rows = [cells for _, cells in graded]
    drifted, strays = [r[0] for r in rows if r[5] != "—"], _strays(ctx, entries)
    summary = (
        f"{plural(len(entries), 'backup')}, newest {age(ctx, entries[0])} old."
        if entries
        else rich("No backups in the catalog yet: run ", Code("backup create"), ".")
    )
    notes = [
        "⚠️ Size departs by more than 30 % from the median of the previous dumps: "
        f"{', '.join(drifted)}."
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
        raise CommandError(
            rich("No backups in the catalog yet: run ", Code("backup create"), " first.")
        )
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
            rich(
                "No file ",
                Code(name),
                " in the backup directory; ",
                Code("backup list"),
                " shows what is there.",
            )
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
            f"{toc['TABLE DATA']} table data entries, "
            f"but {len(entry.row_counts)} tables were dumped"
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
        summary=(rich(Code(name), ": ") + "; ".join(problems) + ".")
        if problems
        else rich(Code(name), " matches its catalogued SHA-256 and its table of contents reads."),
        fields=[
            ("Checksum", "no catalog entry" if entry is None else "ok" if ok else "MISMATCH"),
            ("Table data", f"{toc['TABLE DATA']:,}"),
            ("Indexes", f"{toc['INDEX']:,}"),
            ("Constraints", f"{toc['CONSTRAINT'] + toc['FK CONSTRAINT']:,}"),
            ("Size", size(path.stat().st_size)),
        ],
        data={"file": name, "problems": problems, "toc": dict(toc)},
    )


__all__ = ["NAME"]

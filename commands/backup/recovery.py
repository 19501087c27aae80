"""`backup drill|restore`: prove a fresh dump restores, and restore one over the database."""

from __future__ import annotations

from bot.core.context import Context
from bot.core.errors import CommandError
from bot.core.registry import Args, NoArgs, Risk, Role, command, option
from bot.core.result import Action, Result, Status, Table
from bot.core.scope import Scope
from bot.text.cells import Code, rich
from bot.text.units import size
from commands.backup import pg
from commands.backup.catalog import Catalog, Entry, exclusive, resolve
from commands.backup.handlers import age, logged, plural
from commands.backup.ops import (
    Comparison,
    Hook,
    checked,
    database,
    drill,
    make_backup,
    restore_live,
)


class RestoreArgs(Args):
    """Arguments of `backup restore`."""

    file: str | None = option(help="the dump to restore, as backup list names it")
    target: str | None = option(
        help="the database to restore into; only DATABASE_URL's database is accepted"
    )
    dry_run: bool = option(False, help="say what would be restored, restore nothing")


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
    """Back up, restore into a scratch database, compare its rows and schema objects, drop it."""
    return await run_drill(ctx)


async def run_drill(ctx: Context, on_restored: Hook | None = None) -> Result:
    """The drill; `on_restored` gets the scratch database's DSN before comparing (tests use it)."""

    async def work() -> Result:
        async with exclusive(ctx, "drill"):
            entry = await make_backup(ctx, "drill")
            found = await drill(ctx, entry, on_restored)
        return _drill_result(ctx, entry, found)

    return await logged(ctx, "backup drill", work)


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
            summary=rich(
                "🔴 DRILL FAILED: the restored copy of ",
                Code(entry.file),
                f" differs from the source in {len(found.differences)} places. This backup cannot "
                "be trusted.",
            ),
            fields=fields,
            tables=[Table(["table or (objects)", "source", "restored"], found.differences)],
            data=data,
        )
    kinds = ", ".join(f"{n:,} {k}" for k, n in sorted(entry.objects.items()))
    return Result(
        "backup drill",
        summary=rich(
            "Drill passed: ",
            Code(entry.file),
            " restored into a scratch database with every table's exact row count "
            f"({plural(entry.rows, 'row')} in {plural(len(entry.row_counts), 'table')}) and every "
            f"schema object ({kinds}) as in the source. The scratch database was dropped.",
        ),
        fields=fields,
        data=data,
    )


async def _restorable(
    ctx: Context, args: RestoreArgs, approved: Scope | None = None
) -> tuple[Entry, pg.Target]:
    tgt = database(ctx)
    if args.target is not None and args.target != tgt.database:
        raise CommandError(
            rich(
                "Restores go only into the configured database ",
                Code(tgt.database),
                "; ",
                Code(args.target[:60]),
                " is refused.",
            )
        )
    if not args.file:
        newest = await Catalog(ctx).live(1)
        hint = (
            rich(
                " The newest is ",
                Code(newest[0].file),
                ": ",
                Code(f"backup restore --file {newest[0].file}"),
                ".",
            )
            if newest
            else ""
        )
        raise CommandError(
            rich(
                "Name the dump to restore with ",
                Code("--file"),
                ", so what is approved is what is restored.",
            )
            + hint
        )
    sha256 = str(approved["sha256"]) if approved else None
    entry, _ = await checked(ctx, resolve(ctx, args.file).name, sha256)
    if entry.source != tgt.label:
        raise CommandError(
            rich(
                Code(entry.file),
                " was taken from ",
                Code(entry.source),
                ", not from ",
                Code(tgt.label),
                "; forge restores a database only from its own dumps.",
            )
        )
    return entry, tgt


async def restore_preview(ctx: Context, args: RestoreArgs) -> Result:
    """The dry run of `backup restore`: the file, its age and size, the target, what it will do."""
    entry, tgt = await _restorable(ctx, args)
    return Result(
        f"backup restore --file {entry.file} --dry-run",
        Status.WARNING,
        summary=rich(
            "Would restore ",
            Code(entry.file),
            f" ({age(ctx, entry)} old, {size(entry.size_bytes)}) over ",
            Code(tgt.database),
            " on ",
            Code(f"{tgt.host}:{tgt.port}"),
            ", replacing its tables, after a safety dump of it.",
        ),
        fields=[
            ("File", entry.file),
            ("Age", age(ctx, entry)),
            ("Size", size(entry.size_bytes)),
            ("Target database", tgt.label),
            ("Tables in dump", f"{len(entry.row_counts):,}"),
            ("Rows in dump", f"{entry.rows:,}"),
            ("Checksum", "ok"),
        ],
        data={"file": entry.file, "target": tgt.label, "rows": entry.rows},
        scope=Scope.of(file=entry.file, sha256=entry.sha256),
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
    if_unknown="whether a pg_restore is still running (db long), the newest safety dump "
    "(backup list, then backup verify it), and the tables' row counts (db tables).",
)
async def backup_restore(ctx: Context, args: RestoreArgs) -> Result:
    """Re-check the dump, take a safety dump, restore in one transaction, compare row counts."""
    return await logged(ctx, f"backup restore {args.file}", lambda: _restore(ctx, args))


async def _restore(ctx: Context, args: RestoreArgs) -> Result:
    async with exclusive(ctx, "restore"):
        entry, tgt = await _restorable(ctx, args, ctx.scope)
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
            summary=rich(
                "Restored ",
                Code(entry.file),
                f", but {len(found.differences)} tables' row counts differ from the dump's. The "
                "previous state is in ",
                Code(safety.file),
                ".",
            ),
            fields=fields,
            tables=[Table(["table", "in dump", "now"], found.differences)],
            data=data,
        )
    return Result(
        "backup restore",
        summary=rich(
            "Restored ",
            Code(entry.file),
            " into ",
            Code(tgt.label),
            f": every table's row count matches the dump's ({found.rows:,} rows). The state "
            "before is kept in ",
            Code(safety.file),
            ".",
        ),
        fields=fields,
        actions=[Action("Verify safety dump", f"backup verify {safety.file}")],
        data=data,
    )

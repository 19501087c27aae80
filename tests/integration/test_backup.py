"""`backup create|list|verify|drill` on the local PostgreSQL with a ClientForge-shaped database."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from bot.core.dispatch import Invocation
from bot.core.forge import Forge
from bot.slack.mrkdwn import mrkdwn
from bot.text.cells import plain
from commands.backup.catalog import BACKUP_LOCK, NAME
from commands.backup.recovery import run_drill
from tests.support.backup_fixtures import (
    MovableClock,
    backup_settings,
    cf,  # noqa: F401  (the fixture)
    run,
    scratch_databases,
    table_counts,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def clock() -> MovableClock:
    """A clock the test can move."""
    return MovableClock()


@pytest.fixture
async def forge(
    state_dsn: str, cf: str, tmp_path: Path, clock: MovableClock
) -> AsyncIterator[Forge]:
    """A forge whose DATABASE_URL is the ClientForge-shaped database, dumping to tmp_path."""
    f = Forge(backup_settings(state_dsn, cf, tmp_path), clock=clock)
    await f.start()
    yield f
    await f.aclose()


def folder(forge: Forge) -> Path:
    return forge.settings.env.forge_backup_dir.resolve()


async def catalog(forge: Forge) -> list[asyncpg.Record]:
    pool = await forge.store.pool()
    return await pool.fetch("SELECT * FROM forge.backups ORDER BY created_at")


async def test_create_dumps_checksums_catalogues_and_logs(forge, cf, tmp_path):
    """The dump is a real custom-format archive named like ClientForge's, its SHA-256 and exact row
    counts are catalogued, the backup log has a line, and no partial file is left."""
    outcome = await run(forge, "backup create")
    assert outcome.kind == "result" and outcome.result.ok, outcome.message
    [row] = await catalog(forge)
    path = folder(forge) / row["file"]
    assert NAME.fullmatch(row["file"]) and row["kind"] == "manual" and row["actor_id"] == "U0OPS"
    assert path.read_bytes()[:5] == b"PGDMP" and row["size_bytes"] == path.stat().st_size
    assert (
        stat.S_IMODE(path.stat().st_mode) == 0o600
        and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    )
    assert row["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    counts = await table_counts(cf)
    assert json.loads(row["row_counts"]) == counts and counts["public.contacts"] == 2000
    assert json.loads(row["objects"])["tables"] == len(counts)
    assert sorted(p.name for p in folder(forge).iterdir()) == [row["file"]]
    log = (tmp_path / "logs" / "backup.log").read_text()
    assert "backup create ok: Backed up" in log and row["file"] in log
    assert outcome.result.data["rows"] == sum(counts.values())


async def test_list_and_verify_report_checksum_state_and_contents(forge):
    """`backup list` shows it unverified; `backup verify` checks the SHA-256, reads the TOC."""
    await run(forge, "backup create")
    listed = (await run(forge, "backup list")).result
    assert listed.ok and listed.data["backups"][0]["checksum"] == "not verified yet"
    verified = (await run(forge, "backup verify")).result
    assert verified.ok, verified.summary
    fields = dict(verified.fields)
    assert fields["Checksum"] == "ok" and fields["Table data"] == "18" and fields["Indexes"] == "3"
    assert fields["Constraints"] == "36"  # 18 primary keys, 2 unique, 16 foreign keys
    assert (
        (await run(forge, "backup list"))
        .result.data["backups"][0]["checksum"]
        .startswith("ok (verified")
    )


async def test_corrupted_dump_is_found_and_refused(forge):
    """One flipped byte: verify is critical, list says MISMATCH, restore is refused up front."""
    await run(forge, "backup create")
    [row] = await catalog(forge)
    path = folder(forge) / row["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    verified = (await run(forge, f"backup verify {row['file']}")).result
    assert verified.status.value == "critical" and "does not match" in verified.summary
    assert (await run(forge, "backup list")).result.data["backups"][0][
        "checksum"
    ] == "checksum MISMATCH"
    refused = await run(forge, f"backup restore --file {row['file']} --dry-run", user="U0ADMIN")
    assert refused.kind == "failed" and "does not match its catalogued SHA-256" in refused.message


@pytest.mark.parametrize(
    "text",
    [
        "backup verify ../../etc/passwd",
        "backup verify /etc/passwd",
        "backup verify 'backup-*.dump'",
        "backup verify backup-2025-11-10T02-00-00-000Z.dump/../../x.dump",
        "backup restore --file ../x.dump --dry-run",
        "backup restore --file backup-2025-11-10T02-00-00-000Z.dump --dry-run",
        "backup schedule 25:00",
        "backup schedule '02:00; DROP TABLE x'",
    ],
)
async def test_bad_input_gets_a_short_error_and_changes_nothing(forge, text):
    """Paths, globs, unknown files, bad times: one short line; no file, catalog row or schedule."""
    outcome = await run(forge, text, user="U0ADMIN")
    assert outcome.kind == "failed" and len(plain(outcome.message)) < 200, outcome
    shown = mrkdwn(outcome.message)
    assert shown.startswith("`") or "not in the backup catalog" in shown
    assert await catalog(forge) == [] and not folder(forge).exists()
    pool = await forge.store.pool()
    assert await pool.fetch("SELECT * FROM forge.backup_schedule") == []


async def test_restore_refuses_a_target_other_than_the_configured_database(forge):
    await run(forge, "backup create")
    [row] = await catalog(forge)
    outcome = await run(
        forge, f"backup restore --file {row['file']} --target postgres --dry-run", user="U0ADMIN"
    )
    assert outcome.kind == "failed" and "only into the configured database" in outcome.message
    preview = await run(forge, f"backup restore --file {row['file']} --dry-run", user="U0ADMIN")
    assert preview.kind == "result" and row["file"] in preview.result.summary
    assert dict(preview.result.fields)["Target database"].endswith(
        "/" + forge.settings.env.database_url.get_secret_value().rsplit("/", 1)[1]
    )


async def test_retention_prunes_only_old_catalogued_dumps_and_says_so(forge, clock, tmp_path):
    """Dumps 10 and 8 days old go; the new one, a stranger's dump and other files stay."""
    clock.shift(days=-10)
    await run(forge, "backup create")
    clock.shift(days=2)
    await run(forge, "backup create")
    stranger = folder(forge) / "backup-2020-01-01T00-00-00-000Z.dump"
    stranger.write_bytes(b"someone else's")
    (folder(forge) / "important.sql").write_text("keep me")
    old = [r["file"] for r in await catalog(forge)]
    clock.shift(days=8)
    result = (await run(forge, "backup create")).result
    assert result.data["pruned"] == old and all(name in result.summary for name in old)
    left = sorted(p.name for p in folder(forge).iterdir())
    assert left == sorted([stranger.name, "important.sql", result.data["file"]])
    listed = (await run(forge, "backup list")).result
    assert [b["file"] for b in listed.data["backups"]] == [result.data["file"]]
    assert listed.data["uncatalogued"] == [stranger.name]
    assert "Pruned 2 dumps" in (tmp_path / "logs" / "backup.log").read_text()


async def test_list_warns_when_a_size_departs_from_the_median(forge, clock, cf):
    """Three similar dumps, then one after contacts grew tenfold: a warning names the outlier."""
    for _ in range(3):
        clock.shift(minutes=1)
        assert (await run(forge, "backup create")).result.ok
    assert (await run(forge, "backup list")).result.ok
    conn = await asyncpg.connect(cf)
    await conn.execute(
        "INSERT INTO contacts (tenant_id, email, first_name) "
        "SELECT tenant_id, md5(random()::text), "
        "md5(random()::text) FROM contacts, generate_series(1, 10)"
    )
    await conn.close()
    clock.shift(minutes=1)
    newest = (await run(forge, "backup create")).result.data["file"]
    listed = (await run(forge, "backup list")).result
    assert (
        listed.status.value == "warning"
        and newest in listed.text
        and "more than 30 %" in listed.text
    )
    assert listed.data["backups"][0]["size vs previous"].startswith("+")
    assert [b["size vs previous"] for b in listed.data["backups"][1:]] == ["—", "—", "—"]


async def test_concurrent_backup_is_refused(forge):
    """With the lock held (by a restore, here the test) nothing starts; of two at once, one runs."""
    pool = await forge.store.pool()
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", BACKUP_LOCK)
        refused = await run(forge, "backup create")
        await conn.execute("SELECT pg_advisory_unlock($1)", BACKUP_LOCK)
    assert refused.kind == "failed" and "Another backup or restore is running" in refused.message
    assert await catalog(forge) == [] and not folder(forge).exists()
    both = await asyncio.gather(run(forge, "backup create"), run(forge, "backup drill"))
    assert sorted(o.kind for o in both) == ["failed", "result"]
    assert len(await catalog(forge)) == 1


async def test_drill_restores_into_a_scratch_database_and_drops_it(forge):
    outcome = await run(forge, "backup drill")
    result = outcome.result
    assert result is not None and result.ok, outcome.message or result.summary
    assert "Drill passed" in result.summary and result.data["differences"] == []
    assert result.data["rows"] >= 5000 and result.data["tables"] == 18
    assert await scratch_databases() == []
    [row] = await catalog(forge)
    assert row["kind"] == "drill"


async def test_drill_fails_loudly_on_a_difference(forge):
    """A row deleted and an index dropped in the restored copy before comparing: both reported."""
    seen: list[str] = []

    async def tamper(dsn: str) -> None:
        conn = await asyncpg.connect(dsn)
        await conn.execute("DELETE FROM contacts WHERE id = 7; DROP INDEX deals_stage")
        await conn.close()
        seen.append(dsn.rsplit("/", 1)[1])

    ctx = forge.dispatcher.context(
        await forge.dispatcher.actor("U0OPS", "slack"), Invocation("backup drill", "U0OPS")
    )
    result = await run_drill(ctx, on_restored=tamper)
    assert result.status.value == "critical" and "DRILL FAILED" in result.summary
    assert ["public.contacts", "2,000", "1,999"] in result.data["differences"]
    assert any(d[0] == "(indexes)" for d in result.data["differences"])
    assert seen and seen[0].startswith("forge_drill_") and await scratch_databases() == []


SPY = """#!/bin/sh
echo "$@" >> {record}
echo "PW=$PGPASSWORD" >> {record}
if [ -e {fail} ]; then
  for a in "$@"; do case "$a" in --file=*) echo partial > "${{a#--file=}}";; esac; done
  echo "pg_dump: warning: something" >&2
  echo "pg_dump: error: query failed: connection lost (password=$PGPASSWORD)" >&2
  exit 1
fi
exec {real} "$@"
"""


async def test_pg_tools_never_see_the_password_and_errors_are_redacted(
    state_dsn, cf, tmp_path, monkeypatch
):
    """A pg_dump wrapper on PATH records its argv and environment: the password is only in
    PGPASSWORD. A dump that fails after writing part of its file gives one redacted line, leaves no
    file, and the log says FAILED."""
    spy, record, fail = tmp_path / "bin", tmp_path / "argv.txt", tmp_path / "fail"
    spy.mkdir()
    (spy / "pg_dump").write_text(SPY.format(record=record, fail=fail, real="/usr/bin/pg_dump"))
    (spy / "pg_dump").chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{spy}{os.pathsep}{os.environ['PATH']}")
    f = Forge(
        backup_settings(state_dsn, cf.replace("postgres@", "postgres:Sup3rS3cretPw@"), tmp_path)
    )
    await f.start()
    try:
        fail.touch()
        failed = await run(f, "backup create")
        fail.unlink()
        done = await run(f, "backup create")
    finally:
        await f.aclose()
    assert failed.kind == "failed" and failed.message.startswith(
        "pg_dump failed (exit 1): pg_dump: error: query"
    )
    assert "Sup3rS3cretPw" not in failed.message and "[redacted]" in failed.message
    assert done.kind == "result" and done.result.ok
    assert sorted(p.name for p in folder(f).iterdir()) == [done.result.data["file"]]
    assert "backup create FAILED: pg_dump failed" in (tmp_path / "logs" / "backup.log").read_text()
    lines = record.read_text().splitlines()
    assert len(lines) == 4 and all("Sup3rS3cretPw" not in argv for argv in lines[0::2])
    assert (
        "--dbname=postgresql://postgres@127.0.0.1:5432/" in lines[2]
        and lines[1::2] == ["PW=Sup3rS3cretPw"] * 2
    )

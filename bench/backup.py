"""`backup create` and `backup drill` against plain pg_dump / pg_restore on a database of 1 GB+.

Run from the repository root: `.venv/bin/python bench/backup.py [--gb 1.0] [--rounds 2]`.

1. A ClientForge-shaped database (contacts, deals, activities with primary keys and an index) is
   filled with generate_series until it holds at least `--gb` GB.
2. `backup create` (forge's handler through the dispatcher: snapshot, pg_dump -Fc, exact row counts,
   SHA-256, catalog, retention) against `pg_dump -Fc -f file` of the same database. Target: at most
   1.10x.
3. `backup drill` (a fresh dump, a restore into a scratch database, every table counted and every
   kind of schema object compared, the scratch database dropped) against `pg_dump -Fc` +
   `CREATE DATABASE` + `pg_restore` into it. Target: at most 1.30x.
After an untimed warm-up dump, rounds alternate which side goes first, each measurement starts after
a CHECKPOINT, and the best of the rounds is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import commands.backup.handlers  # noqa: E402,F401  (registers the backup commands)
from bot.config.settings import Config, Env, Settings  # noqa: E402
from bot.core.context import Actor  # noqa: E402
from bot.core.dispatch import Invocation  # noqa: E402
from bot.core.forge import Forge  # noqa: E402
from bot.core.registry import Role  # noqa: E402
from bot.state.store import StateStore  # noqa: E402

PG_ADMIN = os.environ.get("FORGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SCHEMA = """
CREATE TABLE accounts (id bigint PRIMARY KEY, tenant_id int NOT NULL, name text NOT NULL);
CREATE TABLE contacts (id bigint PRIMARY KEY, tenant_id int NOT NULL,
                       account_id bigint REFERENCES accounts,
                       email text, first_name text, last_name text, notes text);
CREATE INDEX contacts_tenant_email ON contacts (tenant_id, email);
CREATE TABLE deals (id bigint PRIMARY KEY, account_id bigint REFERENCES accounts,
                    amount numeric(12, 2), stage text);
CREATE TABLE activities (id bigint PRIMARY KEY, entity_id bigint, body text);
"""
BATCH = 500_000


def dsn_for(database: str) -> str:
    """The admin DSN with another database name."""
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + database


async def build(name: str, gigabytes: float) -> int:
    """Create and fill the database to the size asked for; its size in bytes."""
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    conn = await asyncpg.connect(dsn_for(name), command_timeout=3600)
    await conn.execute("SET synchronous_commit = off")
    await conn.execute(SCHEMA)
    await conn.execute(
        "INSERT INTO accounts SELECT i, i % 50, 'Account ' || i FROM generate_series(1, 100000) i"
    )
    start = 0
    while await conn.fetchval("SELECT pg_database_size(current_database())") < gigabytes * (
        1 << 30
    ):
        await conn.execute(f"""
            INSERT INTO contacts SELECT i, i % 50, 1 + i % 100000, 'c' || i || '@example.com',
                   'First ' || i, 'Last ' || (i * 7919 % 100003),
                   md5(i::text) || ' ' || repeat('called about renewal ', 3)
              FROM generate_series({start + 1}::bigint, {start + BATCH}) i;
            INSERT INTO deals SELECT i, 1 + i % 100000, (i % 100000) * 1.5, 'stage ' || (i % 6)
              FROM generate_series({start + 1}::bigint, {start + BATCH // 2}) i;
            INSERT INTO activities SELECT i, i % 1000000,
                   'email sent to contact ' || i || ': ' || md5((i * 3)::text)
              FROM generate_series({start + 1}::bigint, {start + BATCH}) i;""")
        start += BATCH
    await conn.execute("VACUUM ANALYZE")
    size = await conn.fetchval("SELECT pg_database_size(current_database())")
    await conn.close()
    return size


async def shell(*argv: str) -> None:
    """Run a client tool; fail loudly."""
    proc = await asyncio.create_subprocess_exec(*argv, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {err.decode()[:300]}")


async def timed(work) -> float:  # type: ignore[no-untyped-def]
    """Seconds the awaitable took."""
    started = time.perf_counter()
    await work
    return time.perf_counter() - started


async def plain_dump(db: str, folder: Path) -> None:
    """pg_dump -Fc of the database into a file."""
    await shell("pg_dump", "-Fc", "-f", str(folder / "plain.dump"), dsn_for(db))


async def plain_drill(db: str, folder: Path) -> None:
    """pg_dump -Fc, then pg_restore into a new database (dropped after the clock stops)."""
    await plain_dump(db, folder)
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{db}_plain"')
    await admin.close()
    await shell("pg_restore", "-d", dsn_for(f"{db}_plain"), str(folder / "plain.dump"))


async def forge_run(forge: Forge, text: str) -> None:
    """One command through the dispatcher, as an admin in the terminal; it must succeed."""
    outcome = await forge.dispatcher.run(
        Invocation(text, "UBENCH", source="cli"), actor=Actor("UBENCH", Role.ADMIN, source="cli")
    )
    if outcome.result is None or not outcome.result.ok:
        raise SystemExit(f"{text} failed: {outcome.message or outcome.result.summary}")


async def drop(*names: str) -> None:
    """Drop the databases if they exist."""
    admin = await asyncpg.connect(PG_ADMIN)
    for name in names:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


async def checkpoint() -> None:
    """Flush dirty buffers now, so no measurement pays for the one before it."""
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute("CHECKPOINT")
    await admin.close()


async def rounds(forge: Forge, db: str, folder: Path, n: int) -> dict[str, list[float]]:
    """After one untimed warm-up dump, n rounds: odd ones run plain first, even ones forge first."""
    await plain_dump(db, folder)
    times: dict[str, list[float]] = {
        k: [] for k in ("plain dump", "create", "plain drill", "drill")
    }
    for i in range(n):
        pairs = [
            ("plain dump", plain_dump(db, folder)),
            ("create", forge_run(forge, "backup create")),
        ]
        pairs += [
            ("plain drill", plain_drill(db, folder)),
            ("drill", forge_run(forge, "backup drill")),
        ]
        order = pairs if i % 2 == 0 else [pairs[1], pairs[0], pairs[3], pairs[2]]
        for key, work in order:
            await (
                checkpoint()
            )  # the restores' WAL would otherwise be flushed during the next measurement
            times[key].append(await timed(work))
            await drop(f"{db}_plain")
    return times


def report(size: int, dump_size: int, times: dict[str, list[float]]) -> None:
    """Both comparisons side by side with their ratios and targets."""
    print(
        f"database {size / (1 << 30):.2f} GB, custom-format dump {dump_size / (1 << 20):,.0f} MB, "
        f"best of {len(times['create'])} round(s)"
    )
    print(f"{'':16}{'plain':>12}{'forge':>12}{'ratio':>9}{'target':>9}")
    for label, plain, ours, target in (
        ("backup create", "plain dump", "create", 1.10),
        ("backup drill", "plain drill", "drill", 1.30),
    ):
        a, b = min(times[plain]), min(times[ours])
        verdict = "ok" if b / a <= target else "OVER"
        every = ", ".join(
            f"{x:.1f}/{y:.1f}" for x, y in zip(times[plain], times[ours], strict=True)
        )
        print(
            f"{label:16}{a:>10.1f} s{b:>10.1f} s{b / a:>8.2f}x{target:>8.2f}x  {verdict}   "
            f"(rounds: {every} s)"
        )


async def main() -> None:
    """Build, measure, report, clean up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=2)
    opts = parser.parse_args()
    tag = secrets.token_hex(4)
    db, state = f"forge_bench_{tag}", f"forge_bench_state_{tag}"
    folder = Path(tempfile.mkdtemp(prefix="forge-bench-"))
    try:
        print(f"building {db} (≥ {opts.gb} GB)…", flush=True)
        size = await build(db, opts.gb)
        await drop(state)
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'CREATE DATABASE "{state}"')
        await admin.close()
        store = StateStore(dsn_for(state), 10)
        await store.migrate()
        await store.aclose()
        env = Env(
            _env_file=None,
            database_url=dsn_for(db),
            forge_state_database_url=dsn_for(state),
            forge_backup_dir=folder / "backups",
            forge_log_dir=folder / "logs",
        )
        forge = Forge(Settings(env, Config()))
        await forge.start()
        try:
            times = await rounds(forge, db, folder, opts.rounds)
        finally:
            await forge.aclose()
        report(size, (folder / "plain.dump").stat().st_size, times)
    finally:
        await drop(db, f"{db}_plain", state)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())

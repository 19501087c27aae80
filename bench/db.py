"""Every `db` read command on a large catalog: 200 tables, 2,000 indexes, 5,000 tracked statements.

Run from the repository root: `.venv/bin/python bench/db.py`. It starts a throwaway PostgreSQL 15
cluster with pg_stat_statements preloaded (or uses FORGE_TEST_PGSS_DSN), builds the database, then
times each read command through forge's dispatcher (median and worst of 7 runs) against the 500 ms
target.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.config.settings import Config, Env, Settings  # noqa: E402
from bot.core.context import Actor  # noqa: E402
from bot.core.dispatch import Invocation  # noqa: E402
from bot.core.forge import Forge  # noqa: E402
from bot.core.registry import Role  # noqa: E402
from tests.support.pg_cluster import pg_stat_statements_cluster, unavailable_reason  # noqa: E402

COMMANDS = [
    "db slow",
    "db top",
    "db indexes",
    "db size",
    "db tables",
    "db connections",
    "db locks",
    "db long",
    "db bloat",
    "db extensions",
    "db cache-hit",
]
TARGET_MS = 500


async def build(dsn: str, tables: int, indexes_per_table: int, statements: int) -> None:
    """Ten-column tables and their indexes, a few rows each, then distinct statements over them."""
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    columns = ", ".join(f"c{i} int" for i in range(10))
    for t in range(tables):
        ddl = [f"CREATE TABLE t{t} (id serial PRIMARY KEY, {columns}, note text)"]
        ddl += [
            f"CREATE INDEX t{t}_i{i} ON t{t} "
            f"(c{i % 10}{', c' + str((i + 1) % 10) if i >= 10 else ''})"
            for i in range(indexes_per_table - 1)
        ]
        ddl.append(
            f"INSERT INTO t{t} ({', '.join(f'c{i}' for i in range(10))}) "
            f"SELECT {', '.join(f'g % {i + 7}' for i in range(10))} FROM generate_series(1, 200) g"
        )
        await conn.execute(";".join(ddl))
    await conn.execute("ANALYZE")
    await conn.execute("SELECT pg_stat_statements_reset()")
    per_table = -(-statements // tables)
    for n in range(statements):
        table, shape = n // per_table, n % per_table
        picked = ", ".join(f"c{(shape + k) % 10}" for k in range(1 + shape % 9))
        await conn.fetch(
            f"SELECT {picked} FROM t{table} WHERE c{shape % 10} = $1 LIMIT {1 + shape // 10}", n % 7
        )
    count = await conn.fetchval("SELECT count(*) FROM pg_stat_statements")
    indexes = await conn.fetchval("SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'")
    print(f"built {tables} tables, {indexes:,} indexes, {count:,} statements in pg_stat_statements")
    await conn.close()


async def time_commands(dsn: str, runs: int) -> None:
    """Each read command through the dispatcher: median and worst wall time."""
    settings = Settings(
        Env(_env_file=None, database_url=dsn, forge_state_database_url=dsn), Config()
    )
    forge = Forge(settings)
    await forge.start()
    actor = Actor("U0BENCH", Role.VIEWER, source="cli")
    print(f"\n{'command':<18}{'median':>10}{'worst':>10}   target < {TARGET_MS} ms")
    try:
        for text in COMMANDS:
            timings = []
            for _ in range(runs):
                started = time.perf_counter()
                outcome = await forge.dispatcher.run(
                    Invocation(text, "U0BENCH", source="cli"), actor=actor
                )
                timings.append((time.perf_counter() - started) * 1000)
                assert outcome.kind == "result", (text, outcome.message)
            worst = max(timings)
            verdict = "ok" if worst < TARGET_MS else "MISSED"
            print(f"{text:<18}{statistics.median(timings):>8.1f} ms{worst:>8.1f} ms   {verdict}")
    finally:
        await forge.aclose()


async def main(options: argparse.Namespace, cluster: str) -> None:
    """Build the database on the cluster, time the commands, drop it."""
    name = "forge_bench_db"
    admin = await asyncpg.connect(cluster)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = cluster.rsplit("/", 1)[0] + "/" + name
    try:
        await build(dsn, options.tables, options.indexes // options.tables, options.statements)
        await time_commands(dsn, options.runs)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=200)
    parser.add_argument("--indexes", type=int, default=2000, help="in all, primary keys included")
    parser.add_argument("--statements", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=7)
    options = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        sys.exit(f"bench/db.py: {reason}")
    if os.environ.get("FORGE_TEST_PGSS_DSN"):
        asyncio.run(main(options, os.environ["FORGE_TEST_PGSS_DSN"]))
    else:
        with pg_stat_statements_cluster() as dsn:
            asyncio.run(main(options, dsn))

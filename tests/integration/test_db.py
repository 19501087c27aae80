"""`db …` reads on a real PostgreSQL 15 + pg_stat_statements: slow, indexes, space, setup."""

from __future__ import annotations

import secrets

import asyncpg
import pytest

from bot.core.forge import Forge
from bot.core.registry import Role
from bot.core.result import Status
from tests.conftest import PG_ADMIN, dsn_for
from tests.support.db_fixtures import clientforge, cluster, db_settings, forge, result_of, run  # noqa: F401
from tests.support.pg_cluster import unavailable_reason

_why = unavailable_reason()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(_why is not None, reason=f"PostgreSQL cluster: {_why}"),
]


async def test_slow_and_top_rank_real_statements_of_this_database_only(forge, clientforge, cluster):
    """A 300 ms and a 30 ms statement: the default 100 ms threshold finds only the first,
    `--min-time 20` both, `--limit 1` one; shares are of all statement time; a slow statement of
    another database never shows."""
    conn = await asyncpg.connect(clientforge)
    await result_of(forge, "db slow")  # forge's own first statements, slow on a busy machine: out
    await conn.execute(
        "SELECT pg_stat_statements_reset(0, s.dbid, s.queryid) FROM pg_stat_statements s"
        " JOIN pg_database d ON d.oid = s.dbid"
        " WHERE d.datname = current_database() AND s.query NOT LIKE '%FROM contacts%'"
    )
    await conn.execute("SELECT pg_sleep(0.3)")
    await conn.execute("SELECT 1 FROM pg_sleep(0.03)")
    await conn.close()
    other = await asyncpg.connect(cluster)
    await other.execute("SELECT count(*) FROM pg_sleep(0.25)")
    await other.close()

    slow = await result_of(forge, "db slow")
    queries = [r["query"] for r in slow.data["rows"]]
    assert slow.status is Status.WARNING and queries == ["SELECT pg_sleep($1)"]
    [row] = slow.data["rows"]
    assert 290 <= row["mean_ms"] < 1000 and row["calls"] == 1
    assert row["share"] == pytest.approx(100 * row["total_ms"] / slow.data["total_ms"], rel=0.05)
    assert row["share"] < 100 and slow.data["statements"] > 5

    both = await result_of(forge, "db slow --min-time 20")
    ranked = [r["query"] for r in both.data["rows"]]
    assert ranked[0] == "SELECT pg_sleep($1)" and "SELECT $1 FROM pg_sleep($2)" in ranked
    assert [r["mean_ms"] for r in both.data["rows"]] == sorted(
        (r["mean_ms"] for r in both.data["rows"]), reverse=True
    )
    assert all("count(*) FROM pg_sleep" not in r["query"] for r in both.data["rows"])
    assert len((await result_of(forge, "db slow --min-time 20 --limit 1")).data["rows"]) == 1
    assert (await result_of(forge, "db slow --min-time 5000")).status is Status.OK

    top = await result_of(forge, "db top --limit 3")
    totals = [r["total_ms"] for r in top.data["rows"]]
    assert len(totals) == 3 and totals == sorted(totals, reverse=True)


async def test_tables_and_statements_page_in_sql_with_the_whole_count(forge, clientforge):
    """`db tables --limit 1` pages through every table, largest first, each page one row of the
    whole count; `db top` page 2 goes on where page 1 stopped; the buttons' text says so."""
    count = (await result_of(forge, "db size")).data["table_count"]
    pages = [await result_of(forge, f"db tables --limit 1 --page {n}") for n in (1, 2, 3)]
    names = [p.data["tables"][0]["name"] for p in pages]
    assert len(set(names)) == 3 and names[:2] == ["public.contacts", "public.accounts"]
    assert {(p.page.total, p.page.pages) for p in pages} == {(count, count)}
    assert pages[1].page.command(3) == "db tables --limit 1 --page 3"
    first = await result_of(forge, "db top --limit 2")
    second = await result_of(forge, "db top --limit 2 --page 2")
    assert [r[0] for r in second.tables[0].rows] == ["3", "4"]
    assert min(r["total_ms"] for r in first.data["rows"]) >= max(
        r["total_ms"] for r in second.data["rows"]
    )
    assert first.page.total == second.page.total >= 4


async def test_long_statements_are_shortened_with_the_full_text_attached(forge, clientforge):
    """A statement longer than its column is cut with an ellipsis, whole in the attached file."""
    columns = ", ".join(f"{n} AS column_named_{n}" for n in range(30))
    conn = await asyncpg.connect(clientforge)
    await conn.execute(f"SELECT {columns} FROM pg_sleep(0.12)")
    await conn.close()
    result = await result_of(forge, "db slow")
    cells = [row[-1] for row in result.tables[0].rows]
    assert any(c.endswith("…") and "column_named_0" in c for c in cells)
    [attachment] = result.attachments
    assert b"column_named_29" in attachment.content


@pytest.fixture
async def plain_db():  # type: ignore[no-untyped-def]
    """A database on the machine's PostgreSQL, whose server does not preload pg_stat_statements."""
    name = f"forge_plain_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    yield dsn_for(name)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


async def test_without_pg_stat_statements_it_says_how_to_enable_it(plain_db, state_dsn):
    """Not installed: the fix names shared_preload_libraries and CREATE EXTENSION. Installed but not
    preloaded (what ClientForge's setup script leaves behind): the fix says to preload and
    restart."""
    probe = await asyncpg.connect(PG_ADMIN)
    preloaded = "pg_stat_statements" in await probe.fetchval("SHOW shared_preload_libraries")
    await probe.close()
    if preloaded:
        pytest.skip("the machine's PostgreSQL preloads pg_stat_statements")
    plain = Forge(db_settings(plain_db, state_dsn))
    await plain.start()
    try:
        missing = await result_of(plain, "db slow")
        assert missing.status is Status.WARNING and "not enabled" in missing.summary
        assert (
            "shared_preload_libraries" in missing.text
            and "CREATE EXTENSION pg_stat_statements" in missing.text
        )
        conn = await asyncpg.connect(plain_db)
        await conn.execute("CREATE EXTENSION pg_stat_statements")
        await conn.close()
        loaded = await result_of(plain, "db top")
        assert "installed but not loaded" in loaded.summary and "restart" in loaded.text
        assert "CREATE EXTENSION" not in loaded.text
        extensions = await result_of(plain, "db extensions")
        assert (
            extensions.status is Status.WARNING
            and "not in shared_preload_libraries" in extensions.summary
        )
    finally:
        await plain.aclose()


async def test_indexes_finds_missing_duplicate_unused_and_invalid_and_changes_nothing(
    forge, clientforge
):
    """contacts is scanned sequentially on email (suggested, never created); contacts_owner is a
    prefix of contacts_owner_created; the failed concurrent unique build is INVALID; no index is
    created or dropped."""
    conn = await asyncpg.connect(clientforge)
    indexes = "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"
    before = await conn.fetch(indexes)
    result = await result_of(forge, "db indexes")
    assert result.status is Status.CRITICAL
    assert [i["index"] for i in result.data["invalid"]] == ["contacts_tenant_unique"]
    assert [(d["index"], d["covered_by"]) for d in result.data["duplicate"]] == [
        ("contacts_owner", "contacts_owner_created")
    ]
    [missing] = result.data["missing"]
    assert (
        missing["table"] == "public.contacts"
        and missing["seq_scan"] >= 5
        and missing["idx_scan"] == 0
    )
    assert missing["suggestion"] == "CREATE INDEX CONCURRENTLY ON public.contacts (email);"
    assert {"contacts_owner", "contacts_owner_created"} <= {
        u["index"] for u in result.data["unused"]
    }
    assert await conn.fetch(indexes) == before
    await conn.close()


async def test_space_cache_and_extensions(forge, clientforge):
    """Sizes add up and tables come largest first; a table with 90 % of its rows deleted is flagged
    as bloated; cache hit ratios are read; pg_stat_statements is there and preloaded, pgvector is
    flagged missing."""
    size = await result_of(forge, "db size")
    assert size.data["size"] > size.data["tables"] > 0 and size.data["table_count"] >= 3
    tables = (await result_of(forge, "db tables --limit 2")).data["tables"]
    assert [t["name"] for t in tables] == ["public.contacts", "public.accounts"]
    assert tables[0]["total"] == tables[0]["heap"] + tables[0]["indexes"] + tables[0]["toast"]

    conn = await asyncpg.connect(clientforge)
    await conn.execute(
        "CREATE TABLE swollen (id int, payload text) WITH (autovacuum_enabled = false);"
        "INSERT INTO swollen SELECT i, repeat('x', 200) FROM generate_series(1, 40000) i;"
        "DELETE FROM swollen WHERE id % 10 <> 0; ANALYZE swollen;"
    )
    try:
        bloat = await result_of(forge, "db bloat")
        [swollen] = [t for t in bloat.data["tables"] if t["name"] == "public.swollen"]
        assert (
            bloat.status is Status.WARNING and swollen["ratio"] >= 5 and swollen["waste"] > 5 << 20
        )
        assert bloat.data["tables"][0]["name"] == "public.swollen"
    finally:
        await conn.execute("DROP TABLE swollen")
        await conn.close()

    hit = await result_of(forge, "db cache-hit")
    assert hit.data["tables"] is not None and 0 <= hit.data["tables"] <= 100
    extensions = await result_of(forge, "db extensions")
    needed = {n["extension"]: n["ok"] for n in extensions.data["needed"]}
    assert needed["pg_stat_statements"] and extensions.data["preloaded"]
    assert needed["pgcrypto or uuid-ossp"]  # gen_random_uuid() is built in since PostgreSQL 13
    assert needed["vector"] == ("vector" in extensions.data["installed"])


async def test_connections_count_by_state_against_max_connections(forge, clientforge):
    """An idle-in-transaction session shows up by pid; counts add up to what is in use."""
    conn = await asyncpg.connect(clientforge)
    tx = conn.transaction()
    await tx.start()
    await conn.fetchval("SELECT 1")
    pid = conn.get_server_pid()
    try:
        result = await result_of(forge, "db connections")
        assert pid in [s["pid"] for s in result.data["idle_in_transaction"]]
        assert (
            sum(result.data["states"].values()) == result.data["used"] and result.data["max"] == 60
        )
    finally:
        await tx.rollback()
        await conn.close()


async def test_read_commands_run_in_read_only_transactions(forge):
    """The read path refuses a write: the transaction is READ ONLY."""
    ctx = forge.dispatcher.context(*_viewer())
    with pytest.raises(Exception, match="read-only transaction"):
        await ctx.backends.pg.read("CREATE TABLE sneaky (id int)")


def _viewer():  # type: ignore[no-untyped-def]
    from bot.core.context import Actor
    from bot.core.dispatch import Invocation

    return Actor("U0VIEW", Role.VIEWER, source="cli"), Invocation("db size", "U0VIEW", source="cli")


INJECTIONS = [
    "db analyze 'contacts; DROP TABLE accounts'",
    "db analyze '\"contacts\"'",
    "db vacuum 'contacts--'",
    "db vacuum pg_catalog.pg_class",
    "db vacuum ../contacts",
    "db vacuum 'public.accounts.x' --full",
    "db slow --limit '5; DROP TABLE accounts'",
    "db slow --min-time abc",
    "db slow --limit 0",
    "db top --limit 101",
    "db tables --limit -1",
    'db long --min "1s\'; DROP TABLE accounts; --"',
    "db cancel '1; SELECT 1'",
    "db cancel -5",
    "db analyze contacts --limit 'DROP TABLE accounts'",
    "db terminate 0",
    "db terminate 'pg_backend_pid()'",
    "db analyze 'accounts\\'",
]


@pytest.mark.parametrize("text", INJECTIONS)
async def test_injection_attempts_change_nothing(forge, clientforge, text):
    """Hostile table names, flags and pids are refused before any SQL; both tables still exist."""
    outcome = await run(forge, text)
    assert outcome.kind in {"usage", "failed"}, (text, outcome.kind, outcome.message)
    conn = await asyncpg.connect(clientforge)
    tables = await conn.fetch(
        "SELECT relname FROM pg_class WHERE relname IN ('accounts', 'contacts') ORDER BY 1"
    )
    assert [t["relname"] for t in tables] == ["accounts", "contacts"]
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM pg_stat_statements WHERE query ILIKE '%drop table accounts%'"
        )
        == 0
    )
    await conn.close()


async def test_analyze_refreshes_statistics_of_one_table_or_all(forge, clientforge):
    """`db analyze accounts` sets only that table's last_analyze; `db analyze` covers them all."""
    conn = await asyncpg.connect(clientforge)
    last = (
        "SELECT relname, last_analyze FROM pg_stat_user_tables "
        "WHERE relname IN ('accounts', 'contacts') ORDER BY 1"
    )
    before = dict(await conn.fetch(last))
    one = await result_of(forge, "db analyze accounts")
    assert "Statistics of accounts refreshed" in one.summary and one.data["table"] == "accounts"
    after = dict(await conn.fetch(last))
    assert after["accounts"] != before["accounts"] and after["contacts"] == before["contacts"]
    assert (await result_of(forge, "db analyze")).data["table"] is None
    await conn.close()


def test_timing_columns_follow_the_installed_pg_stat_statements():
    """1.8 (PostgreSQL 13) renamed total_time to total_exec_time; older versions keep old names."""
    from commands.db.queries import columns_for

    assert (
        columns_for("1.7")["total"] == "total_time"
        and columns_for("1.10")["mean"] == "mean_exec_time"
    )
    assert columns_for("1.11")["max"] == "max_exec_time"

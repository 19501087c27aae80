"""The real `forge serve` against a state store that is broken at start, each way it can be: it
starts, answers reads, refuses writes with the reason, says 503 on /readyz, and becomes ready by
itself once the store is back. Start times are printed (`pytest -s`) for the report."""

from __future__ import annotations

import asyncio
import json
import secrets
import time

import asyncpg
import pytest

from tests.conftest import PG_ADMIN, SECRET, dsn_for
from tests.fakes.slack_client import SlackClient
from tests.support.forge_process import ServedForge, forge_serve, free_port
from tests.support.pg_cluster import throwaway_cluster, unavailable_reason

pytestmark = pytest.mark.integration
_why = unavailable_reason()
needs_cluster = pytest.mark.skipif(_why is not None, reason=f"PostgreSQL cluster: {_why}")
START_LIMIT = 20.0  # seconds; the import alone takes a few on a loaded machine


async def said_privately(slack, words: str, timeout: float = 15.0) -> str:
    """The first reply to the caller alone that contains `words`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for reply in [*slack.responses, *slack.ephemerals]:
            if words in json.dumps(reply, ensure_ascii=False):
                return json.dumps(reply, ensure_ascii=False)
        await asyncio.sleep(0.05)
    raise AssertionError(f"nobody was told {words!r}: {slack.responses + slack.ephemerals}")


async def degraded(served: ServedForge, slack, *reasons: str) -> None:
    """Up but not ready at once; a read answers; a write is refused, naming the store's reason
    (one of `reasons`)."""
    started = time.monotonic()
    status, body = await served.get("/readyz", timeout=3)
    assert status == 503 and json.loads(body)["ready"] is False
    assert time.monotonic() - started < 1.5, "/readyz waited on the store"
    async with SlackClient(served.url, SECRET, slack) as client:
        assert (await client.slash("whoami", user="U0OPS")).status == 200
        [post] = await slack.wait_for("chat.postMessage", timeout=15)
        assert "operator" in json.dumps(post.args)
        assert (await client.slash("queue pause email", user="U0OPS")).status == 200
        refusal = await said_privately(slack, "state store is down")
    assert any(r in refusal for r in reasons), refusal
    assert "write commands are refused" in refusal


def report(kind: str, served: ServedForge, ready_s: float | None = None) -> None:
    """One line of figures for the closing report."""
    back = "" if ready_s is None else f"; ready {ready_s:.1f} s after the store came back"
    print(f"\nstart with a {kind} state store: /healthz after {served.start_s:.2f} s{back}")


@pytest.fixture
async def missing_database():
    """The name of a database that does not exist yet on the shared server; dropped after."""
    name = f"forge_late_{secrets.token_hex(4)}"
    yield name
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


async def test_missing_database_starts_degraded_then_ready_once_created(
    tmp_path, slack, missing_database
):
    """FORGE_STATE_DATABASE_URL names a database nobody created: forge serves, then turns ready by
    itself (and migrates) once the database exists."""
    store = dsn_for(missing_database)
    async with forge_serve(tmp_path, slack.url, FORGE_STATE_DATABASE_URL=store) as served:
        assert served.start_s < START_LIMIT
        await degraded(served, slack, f'database \\"{missing_database}\\" does not exist')
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'CREATE DATABASE "{missing_database}"')
        await admin.close()
        ready_s = await served.ready_within(45)
    conn = await asyncpg.connect(store)
    assert await conn.fetchval("SELECT count(*) FROM forge.schema_migrations") > 0
    await conn.close()
    report("missing-database", served, ready_s)


@needs_cluster
async def test_refused_starts_degraded_then_ready_once_the_server_listens(tmp_path, slack):
    """Nothing listens on the store's port: forge serves; a cluster started on that port later is
    picked up without a restart."""
    port = free_port()
    store = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    async with forge_serve(tmp_path, slack.url, FORGE_STATE_DATABASE_URL=store) as served:
        assert served.start_s < START_LIMIT
        await degraded(served, slack, "connection refused")
        with throwaway_cluster(port=port):
            ready_s = await served.ready_within(45)
    report("refused", served, ready_s)


@needs_cluster
async def test_wrong_password_starts_degraded_then_ready_once_it_matches(tmp_path, slack):
    """The store refuses forge's password: forge serves and says why; once the role's password is
    changed to the one forge has, it turns ready by itself."""
    with throwaway_cluster(password="right-one") as cluster:
        store = cluster.replace("right-one", "forge-has-this")
        async with forge_serve(tmp_path, slack.url, FORGE_STATE_DATABASE_URL=store) as served:
            assert served.start_s < START_LIMIT
            await degraded(served, slack, "password authentication failed")
            admin = await asyncpg.connect(cluster)
            await admin.execute("ALTER ROLE postgres PASSWORD 'forge-has-this'")
            await admin.close()
            ready_s = await served.ready_within(45)
    report("wrong-password", served, ready_s)


async def test_hanging_store_never_holds_up_start_or_readiness(tmp_path, slack, hanging):
    """The store accepts connections and never answers: start waits at most a moment for it,
    /readyz answers 503 at once, and the process stays up across several reconnect attempts."""
    store = f"postgresql://postgres@{hanging}/forge"
    async with forge_serve(tmp_path, slack.url, FORGE_STATE_DATABASE_URL=store) as served:
        assert served.start_s < START_LIMIT
        await degraded(served, slack, "timed out after 5 s", "no answer after")
        await asyncio.sleep(8)
        assert served.process.returncode is None and (await served.get("/healthz"))[0] == 200
        assert (await served.get("/readyz", timeout=3))[0] == 503
    report("hanging", served)


async def test_tls_required_by_forge_but_not_offered_starts_degraded(tmp_path, slack):
    """`sslmode=require` against a server without TLS: forge serves, degraded, and says so."""
    admin = await asyncpg.connect(PG_ADMIN)
    ssl = await admin.fetchval("SHOW ssl")
    await admin.close()
    if ssl == "on":
        pytest.skip("the test server offers TLS")
    store = dsn_for("postgres") + "?sslmode=require"
    async with forge_serve(tmp_path, slack.url, FORGE_STATE_DATABASE_URL=store) as served:
        assert served.start_s < START_LIMIT
        await degraded(served, slack, "rejected SSL upgrade")
    report("TLS-failing", served)


async def test_hanging_redis_es_and_api_never_stop_serve(tmp_path, slack, hanging, state_dsn):
    """Redis, Elasticsearch, the ClientForge API and Prometheus all hang: serve starts, is ready
    (the state store is fine), and `health` answers within its deadline naming them down."""
    http = f"http://{hanging}"
    async with forge_serve(
        tmp_path,
        slack.url,
        FORGE_STATE_DATABASE_URL=state_dsn,
        REDIS_URL=f"redis://{hanging}/0",
        ELASTICSEARCH_URL=http,
        CLIENTFORGE_API_URL=http,
        PROMETHEUS_URL=http,
        GRAFANA_URL=http,
    ) as served:
        assert served.start_s < START_LIMIT
        await served.ready_within(10)
        status, _ = await served.get("/metrics", timeout=15)
        assert status == 200
        async with SlackClient(served.url, SECRET, slack) as client:
            assert (await client.slash("health", user="U0OPS")).status == 200
            [done] = await slack.wait_for("chat.update", timeout=20)
        said = json.dumps(done.args, ensure_ascii=False)
        assert "redis" in said.lower() and "elasticsearch" in said.lower()
    report("healthy (other backends hanging)", served)

"""The `health` command against real PostgreSQL and Redis and local fakes of the HTTP services."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiohttp import web

import bot.core.registry
from bot.backends.clients import Backends
from bot.config.settings import Config, Env, Settings
from bot.core.context import Actor, Context
from bot.core.registry import Role
from bot.core.result import Status
from commands.health import Check, health, run_checks
from tests.conftest import served
from tests.support.services import redis_url

PG = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS = redis_url(0)
TENANT_REQUIRED = {
    "error": "TENANT_REQUIRED",
    "message": "Tenant ID is required",
    "code": "E_TENANT_001",
}
SERVICES = {
    "healthy": {
        n: {"status": "up", "responseTime": 2}
        for n in ("postgres", "redis", "mongodb", "elasticsearch")
    },
    "degraded": {
        "postgres": {"status": "up", "responseTime": 2},
        "redis": {"status": "up", "responseTime": 1},
        "mongodb": {"status": "degraded", "error": "connect ECONNREFUSED 127.0.0.1:27017"},
        "elasticsearch": {
            "status": "degraded",
            "metadata": {"clusterStatus": "red", "numberOfNodes": 1, "activeShards": 3},
        },
    },
    "unhealthy": {
        "postgres": {"status": "down", "error": "password authentication failed"},
        "redis": {"status": "up", "responseTime": 1},
    },
}


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Fake:
    """One local aiohttp server as the ClientForge API, Elasticsearch, Prometheus and Grafana."""

    url: str = ""
    api: str = "healthy"
    es: str = "green"
    tenants: list[str | None] = field(default_factory=list)

    async def ready(self, request: web.Request) -> web.Response:
        """ClientForge's /api/v1/health/ready behind its tenant guard."""
        tenant = request.headers.get("X-Tenant-ID")
        self.tenants.append(tenant)
        if not tenant or self.api == "tenant":
            return web.json_response(TENANT_REQUIRED, status=400)
        if self.api == "html":
            return web.Response(text="<html>maintenance</html>", content_type="text/html")
        data = {
            "status": self.api,
            "timestamp": "2025-11-13T00:00:00Z",
            "uptime": 12.5,
            "environment": "test",
            "version": "v1",
            "services": SERVICES[self.api],
        }
        return web.json_response(
            {"success": self.api != "unhealthy", "data": data},
            status=503 if self.api == "unhealthy" else 200,
        )

    async def es_health(self, request: web.Request) -> web.Response:
        """Elasticsearch's GET /_cluster/health."""
        body = {
            "cluster_name": "clientforge",
            "status": self.es,
            "number_of_nodes": 1,
            "active_shards": 7,
            "unassigned_shards": 0 if self.es == "green" else 3,
        }
        return web.json_response(body, headers={"X-Elastic-Product": "Elasticsearch"})

    async def es_info(self, request: web.Request) -> web.Response:
        """Elasticsearch's GET / info, in case the client asks."""
        body = {
            "cluster_name": "clientforge",
            "version": {"number": "8.11.0"},
            "tagline": "You Know, for Search",
        }
        return web.json_response(body, headers={"X-Elastic-Product": "Elasticsearch"})

    async def prometheus(self, request: web.Request) -> web.Response:
        """Prometheus's /-/ready."""
        return web.Response(text="Prometheus Server is Ready.\n")

    async def grafana(self, request: web.Request) -> web.Response:
        """Grafana's /api/health."""
        return web.json_response({"commit": "abc123", "database": "ok", "version": "10.2.3"})


@pytest.fixture
async def fake():
    """The fake HTTP services on a free port."""
    state = Fake()
    app = web.Application()
    app.router.add_get("/api/v1/health/ready", state.ready)
    app.router.add_get("/_cluster/health", state.es_health)
    app.router.add_get("/", state.es_info)
    app.router.add_get("/-/ready", state.prometheus)
    app.router.add_get("/api/health", state.grafana)
    async with served(app) as state.url:
        yield state


@pytest.fixture
async def make_ctx(request, fake):
    """A Context on the fakes (integration: real PG and Redis; else refused ports), closed after."""
    opened: list[Backends] = []
    real = request.node.get_closest_marker("integration") is not None
    pg, rd = (
        (PG, REDIS)
        if real
        else (
            f"postgresql://postgres@127.0.0.1:{closed_port()}/postgres",
            f"redis://127.0.0.1:{closed_port()}/0",
        )
    )

    def make(**env: str) -> Context:
        values = {
            "database_url": pg,
            "redis_url": rd,
            "elasticsearch_url": fake.url,
            "clientforge_api_url": fake.url,
            "prometheus_url": fake.url,
            "grafana_url": fake.url,
        } | env
        settings = Settings(Env(_env_file=None, **values), Config(environment="staging"))
        backends = Backends(settings)
        opened.append(backends)
        return Context(
            settings,
            backends,
            registry=bot.core.registry.REGISTRY,
            actor=Actor("U0TEST", Role.VIEWER),
            store=None,
            audit=None,
        )

    yield make
    for backends in opened:
        await backends.aclose()


def by_name(checks: list[Check]) -> dict[str, Check]:
    """The checks keyed by service name."""
    return {c.name: c for c in checks}


async def real_redis_policy() -> str:
    """What the machine's Redis really reports as maxmemory-policy."""
    client = aioredis.Redis.from_url(REDIS, decode_responses=True)
    try:
        return (await client.config_get("maxmemory-policy"))["maxmemory-policy"]
    finally:
        await client.aclose()


def test_registered_as_a_slow_read_only_viewer_command():
    """`health` is in the registry for viewers, read-only, marked slow."""
    spec = bot.core.registry.REGISTRY.get("health")
    assert (
        spec is not None
        and spec.role is Role.VIEWER
        and spec.risk is bot.core.registry.Risk.READ
        and spec.slow
    )
    assert "slack" not in (Path(__file__).parents[2] / "commands" / "health.py").read_text().lower()


@pytest.mark.integration
async def test_all_healthy(fake, make_ctx):
    """With every service up each row reports it; the reply carries table, fields and JSON data."""
    ctx = make_ctx()
    result = await health(ctx, bot.core.registry.NoArgs())
    checks = result.data["checks"]
    assert [c["name"] for c in checks] == [
        "api",
        "postgres",
        "redis",
        "elasticsearch",
        "prometheus",
        "grafana",
    ]
    status = {c["name"]: c["status"] for c in checks}
    policy = await real_redis_policy()
    assert status["redis"] == ("ok" if policy == "noeviction" else "warning")
    assert all(s == "ok" for n, s in status.items() if n != "redis")
    assert result.status is (Status.OK if policy == "noeviction" else Status.WARNING)
    healthy = 6 if policy == "noeviction" else 5
    assert result.summary == f"{healthy} of 6 services healthy"
    assert all(isinstance(c["latency_ms"], float) for c in checks)
    table = result.tables[0]
    assert table.columns == ["service", "status", "latency", "detail"]
    assert table.rows[0][1] in ("✅ ok", "⚠️ warning") and all(
        r[2].endswith("ms") for r in table.rows
    )
    fields = dict(result.fields)
    assert fields["Environment"] == "staging" and fields["API readiness"] == "healthy"
    assert fields["PostgreSQL"][:2].isdigit() and fields["Elasticsearch"] == "green"
    assert fields["Redis"].endswith(f"maxmemory-policy {policy}")
    detail = by_name(await run_checks(ctx))
    assert (
        "PostgreSQL" in detail["postgres"].detail and "version 10.2.3" in detail["grafana"].detail
    )
    assert fake.tenants and all(t == "forge-ops" for t in fake.tenants)


@pytest.mark.integration
async def test_closed_port_is_critical_and_others_still_reported(make_ctx):
    """Redis on a dead port is critical with 'connection refused'; the rest still answer."""
    ctx = make_ctx(redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    result = await health(ctx, bot.core.registry.NoArgs())
    checks = by_name(await run_checks(ctx))
    assert checks["redis"].status is Status.CRITICAL and checks["redis"].latency_ms is None
    assert checks["redis"].detail == "connection refused"
    assert all(c.status is Status.OK for n, c in checks.items() if n != "redis")
    assert result.status is Status.CRITICAL and "Redis" in result.summary
    assert result.tables[0].rows[0][:3] == ["Redis", "🔴 critical", "—"]


@pytest.mark.integration
async def test_hanging_api_times_out_within_budget(make_ctx, hanging):
    """An API accepting but never answering shows 'timed out after 2 s'; health returns in < 3 s."""
    ctx = make_ctx(clientforge_api_url=f"http://{hanging}")
    start = time.monotonic()
    result = await health(ctx, bot.core.registry.NoArgs())
    elapsed = time.monotonic() - start
    print(f"hanging API: health took {elapsed:.2f} s")
    assert elapsed < 3
    api = by_name(
        [
            Check(c["name"], Status(c["status"]), c["latency_ms"], c["detail"])
            for c in result.data["checks"]
        ]
    )
    assert api["api"].status is Status.CRITICAL and api["api"].detail == "timed out after 2 s"
    assert api["postgres"].status is Status.OK and result.status is Status.CRITICAL


@pytest.mark.integration
async def test_hanging_postgres_times_out_within_budget(make_ctx, hanging):
    """A PostgreSQL that accepts, never answers: 'timed out after 2 s'; health returns in < 3 s."""
    ctx = make_ctx(database_url=f"postgresql://postgres@{hanging}/postgres")
    start = time.monotonic()
    result = await health(ctx, bot.core.registry.NoArgs())
    elapsed = time.monotonic() - start
    print(f"hanging PostgreSQL: health took {elapsed:.2f} s")
    assert elapsed < 3
    pg = next(c for c in result.data["checks"] if c["name"] == "postgres")
    assert pg == {
        "name": "postgres",
        "status": "critical",
        "latency_ms": None,
        "detail": "timed out after 2 s",
    }
    assert next(c for c in result.data["checks"] if c["name"] == "api")["status"] == "ok"


async def test_elasticsearch_red_is_critical(fake, make_ctx):
    """A red cluster is critical, unlike an unreachable Elasticsearch."""
    fake.es = "red"
    ctx = make_ctx(elasticsearch_url=fake.url)
    es = by_name(await run_checks(ctx))["elasticsearch"]
    assert (
        es.status is Status.CRITICAL
        and es.detail.startswith("red")
        and "1 node(s), 7 active shards" in es.detail
    )


async def test_elasticsearch_yellow_single_node_is_ok(fake, make_ctx):
    """Yellow on a single node is normal and says so."""
    fake.es = "yellow"
    es = by_name(await run_checks(make_ctx()))["elasticsearch"]
    assert es.status is Status.OK and "single node" in es.detail


async def test_unreachable_elasticsearch_and_monitoring_are_warnings(make_ctx):
    """Elasticsearch, Prometheus and Grafana down are warnings: ClientForge runs without them."""
    down = f"http://127.0.0.1:{closed_port()}"
    checks = by_name(
        await run_checks(make_ctx(elasticsearch_url=down, prometheus_url=down, grafana_url=down))
    )
    assert {checks[n].status for n in ("elasticsearch", "prometheus", "grafana")} == {
        Status.WARNING
    }
    assert checks["prometheus"].detail == "connection refused"
    assert checks["elasticsearch"].detail.endswith("; run docker compose up elasticsearch")


async def test_api_degraded_names_the_services_not_up(fake, make_ctx):
    """A degraded readiness report is a warning naming each service that is not up."""
    fake.api = "degraded"
    api = by_name(await run_checks(make_ctx()))["api"]
    assert api.status is Status.WARNING and api.facts == {"API readiness": "degraded"}
    assert "mongodb degraded (connect ECONNREFUSED" in api.detail
    assert "elasticsearch degraded (cluster red)" in api.detail
    assert "postgres" not in api.detail


async def test_api_unhealthy_503_is_critical(fake, make_ctx):
    """HTTP 503 with status unhealthy is critical and names the down service."""
    fake.api = "unhealthy"
    api = by_name(await run_checks(make_ctx()))["api"]
    assert api.status is Status.CRITICAL and "postgres down" in api.detail


async def test_api_probe_sends_the_tenant_header(fake, make_ctx):
    """Every readiness probe carries X-Tenant-ID, so the tenant guard lets it through."""
    api = by_name(await run_checks(make_ctx()))["api"]
    assert fake.tenants == ["forge-ops"] and api.status is Status.OK


async def test_api_tenant_required_is_reported_clearly(fake, make_ctx):
    """A 400 TENANT_REQUIRED answer is reported as the tenant guard rejecting the probe."""
    fake.api = "tenant"
    api = by_name(await run_checks(make_ctx()))["api"]
    assert (
        api.status is Status.WARNING
        and "TENANT_REQUIRED" in api.detail
        and "forge-ops" in api.detail
    )


async def test_api_non_json_is_a_warning(fake, make_ctx):
    """A 200 that is not JSON is a warning saying so."""
    fake.api = "html"
    api = by_name(await run_checks(make_ctx()))["api"]
    assert api.status is Status.WARNING and "not JSON" in api.detail

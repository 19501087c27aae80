"""`health`: ClientForge's API readiness and every backend it depends on, probed in parallel."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.backends.clients import call
from bot.core.context import Context
from bot.core.errors import BackendError
from bot.core.registry import NoArgs, Risk, Role, command
from bot.core.result import Result, Status, Table, worst
from bot.text.redact import redact

if TYPE_CHECKING:
    import httpx

LABELS = {
    "api": "ClientForge API",
    "postgres": "PostgreSQL",
    "redis": "Redis",
    "elasticsearch": "Elasticsearch",
    "prometheus": "Prometheus",
    "grafana": "Grafana",
}
API_STATUS = {"healthy": Status.OK, "degraded": Status.WARNING, "unhealthy": Status.CRITICAL}


@dataclass
class Check:
    """One probe's outcome; `facts` are key figures for the reply's fields."""

    name: str
    status: Status
    latency_ms: float | None = None
    detail: str = ""
    facts: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The service's display name."""
        return LABELS.get(self.name, self.name)

    def as_dict(self) -> dict[str, object]:
        """The JSON shape of `Result.data["checks"]`."""
        return {
            "name": self.name,
            "status": self.status.value,
            "latency_ms": self.latency_ms,
            "detail": self.detail,
        }


class _Timer:
    """Milliseconds since creation on the context's clock."""

    def __init__(self, ctx: Context) -> None:
        self.clock, self.start = ctx.clock, ctx.clock.monotonic()

    @property
    def ms(self) -> float:
        """Elapsed milliseconds, rounded to 0.1."""
        return round((self.clock.monotonic() - self.start) * 1000, 1)


async def check_api(ctx: Context) -> Check:
    """GET /api/v1/health/ready with the tenant header and grade its report."""
    url = ctx.settings.env.clientforge_api_url.rstrip("/") + "/api/v1/health/ready"
    timer = _Timer(ctx)
    resp = await ctx.backends.http().get(url, headers=ctx.backends.api_headers())
    ms = timer.ms
    body = _json(resp)
    if (
        resp.status_code == 400
        and isinstance(body, dict)
        and body.get("error") == "TENANT_REQUIRED"
    ):
        tenant = ctx.settings.config.tenant_id
        return Check(
            "api",
            Status.WARNING,
            ms,
            f"HTTP 400 TENANT_REQUIRED: the tenant guard rejected "
            f"X-Tenant-ID {tenant!r} (stripped by a proxy?); readiness unknown",
        )
    if resp.status_code not in (200, 503):
        bad = Status.CRITICAL if resp.status_code >= 500 else Status.WARNING
        return Check(
            "api", bad, ms, f"unexpected HTTP {resp.status_code} from /api/v1/health/ready"
        )
    data = body.get("data") if isinstance(body, dict) else None
    state = data.get("status") if isinstance(data, dict) else None
    if state not in API_STATUS:
        bad = Status.CRITICAL if resp.status_code == 503 else Status.WARNING
        what = "not JSON" if body is None else "no data.status healthy|degraded|unhealthy"
        return Check("api", bad, ms, f"HTTP {resp.status_code}, unexpected response: {what}")
    status = Status.CRITICAL if resp.status_code == 503 else API_STATUS[state]
    services = data.get("services") if isinstance(data, dict) else None
    services = services if isinstance(services, dict) else {}
    return Check("api", status, ms, _services_detail(state, services), {"API readiness": state})


def _json(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def _services_detail(state: str, services: dict[str, Any]) -> str:
    """E.g. `degraded: mongodb down (ECONNREFUSED), elasticsearch degraded (cluster red)`."""
    if not services:
        return f"{state} (no services reported)"
    bad = []
    for name, svc in services.items():
        svc = svc if isinstance(svc, dict) else {}
        if svc.get("status") == "up":
            continue
        meta = svc.get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        why = svc.get("error") or (
            f"cluster {meta['clusterStatus']}" if meta.get("clusterStatus") else ""
        )
        bad.append(
            f"{name} {svc.get('status', 'unknown')}"
            + (f" ({redact(str(why))[:80]})" if why else "")
        )
    return f"{state}: " + (", ".join(bad) if bad else ", ".join(services) + " up")


async def check_postgres(ctx: Context) -> Check:
    """The server version and one query's round trip on DATABASE_URL."""
    pool = await ctx.backends.postgres()
    async with pool.acquire() as conn:
        timer = _Timer(ctx)
        version = await conn.fetchval("SELECT current_setting('server_version')")
        ms = timer.ms
    return Check("postgres", Status.OK, ms, f"PostgreSQL {version}", {"PostgreSQL": str(version)})


async def check_redis(ctx: Context) -> Check:
    """PING latency, the server version and the eviction policy BullMQ depends on."""
    from redis.exceptions import ResponseError

    client = ctx.backends.redis()
    timer = _Timer(ctx)
    await client.ping()
    ms = timer.ms
    version = (await client.info("server")).get("redis_version", "?")
    try:
        policy = (await client.config_get("maxmemory-policy")).get("maxmemory-policy")
    except ResponseError:
        policy = None
    facts = {"Redis": f"{version}, maxmemory-policy {policy or 'unknown'}"}
    if policy is None:
        return Check(
            "redis",
            Status.WARNING,
            ms,
            f"Redis {version}; CONFIG GET refused, eviction policy "
            "unknown (BullMQ needs noeviction)",
            facts,
        )
    if policy != "noeviction":
        return Check(
            "redis",
            Status.WARNING,
            ms,
            f"Redis {version}; maxmemory-policy {policy}: BullMQ needs noeviction",
            facts,
        )
    return Check("redis", Status.OK, ms, f"Redis {version}, maxmemory-policy noeviction", facts)


async def check_elasticsearch(ctx: Context) -> Check:
    """Cluster health: green and yellow are fine, red is critical."""
    timer = _Timer(ctx)
    body = (await ctx.backends.elasticsearch().cluster.health()).body
    ms = timer.ms
    colour = body.get("status", "unknown")
    sizes = (
        f"{body.get('number_of_nodes', '?')} node(s), "
        f"{body.get('active_shards', '?')} active shards"
    )
    facts = {"Elasticsearch": colour}
    if colour == "green":
        return Check("elasticsearch", Status.OK, ms, f"green, {sizes}", facts)
    if colour == "yellow":
        note = (
            "; replicas unassigned, normal on a single node"
            if body.get("number_of_nodes") == 1
            else ""
        )
        return Check("elasticsearch", Status.OK, ms, f"yellow, {sizes}{note}", facts)
    if colour == "red":
        return Check(
            "elasticsearch", Status.CRITICAL, ms, f"red: primary shards unassigned, {sizes}", facts
        )
    return Check(
        "elasticsearch", Status.WARNING, ms, f"unexpected cluster status {colour!r}", facts
    )


async def check_prometheus(ctx: Context) -> Check:
    """Prometheus's /-/ready answers 200 when it serves queries."""
    timer = _Timer(ctx)
    resp = await ctx.backends.http().get(ctx.settings.env.prometheus_url.rstrip("/") + "/-/ready")
    if resp.status_code == 200:
        return Check("prometheus", Status.OK, timer.ms, "ready")
    return Check("prometheus", Status.WARNING, timer.ms, f"not ready: HTTP {resp.status_code}")


async def check_grafana(ctx: Context) -> Check:
    """Grafana's /api/health reports its database and version."""
    timer = _Timer(ctx)
    resp = await ctx.backends.http().get(ctx.settings.env.grafana_url.rstrip("/") + "/api/health")
    ms, body = timer.ms, _json(resp)
    if resp.status_code != 200 or not isinstance(body, dict):
        return Check(
            "grafana",
            Status.WARNING,
            ms,
            f"HTTP {resp.status_code}" + ("" if body else ", not JSON"),
        )
    if body.get("database") != "ok":
        return Check(
            "grafana", Status.WARNING, ms, f"database {body.get('database', 'not reported')}"
        )
    version = f", version {body['version']}" if body.get("version") else ""
    return Check("grafana", Status.OK, ms, f"database ok{version}")


PROBES: list[tuple[str, Callable[[Context], Awaitable[Check]], Status]] = [
    ("api", check_api, Status.CRITICAL),
    ("postgres", check_postgres, Status.CRITICAL),
    ("redis", check_redis, Status.CRITICAL),
    ("elasticsearch", check_elasticsearch, Status.WARNING),
    ("prometheus", check_prometheus, Status.WARNING),
    ("grafana", check_grafana, Status.WARNING),
]


async def _guarded(
    ctx: Context, name: str, probe: Callable[[Context], Awaitable[Check]], down: Status
) -> Check:
    """Run one probe within the health-check timeout; a failure becomes a `down` check."""
    try:
        return await call(name, probe(ctx), ctx.settings.config.timeouts.health_check)
    except BackendError as exc:
        return Check(name, down, None, exc.detail + _how_to_start(ctx, name))


def _how_to_start(ctx: Context, name: str) -> str:
    """Outside production (the playground's demo, a laptop), where a missing service comes from."""
    if name != "elasticsearch" or ctx.settings.environment == "production":
        return ""
    return "; run docker compose up elasticsearch"


async def run_checks(ctx: Context) -> list[Check]:
    """Every probe at once, each bounded by `timeouts.health_check`, in PROBES order."""
    return list(
        await asyncio.gather(*(_guarded(ctx, name, probe, down) for name, probe, down in PROBES))
    )


def _latency(ms: float | None) -> str:
    if ms is None:
        return "—"
    return "<1 ms" if ms < 1 else f"{ms:.0f} ms"


@command(
    "health",
    summary="ClientForge API readiness, PostgreSQL, Redis, Elasticsearch, Prometheus and Grafana",
    args=NoArgs,
    role=Role.VIEWER,
    risk=Risk.READ,
    examples=("health",),
    slow=True,
)
async def health(ctx: Context, args: NoArgs) -> Result:
    """Probe every service in parallel and report the worst first."""
    checks = await run_checks(ctx)
    ranked = sorted(checks, key=lambda c: -c.status.rank)
    healthy = sum(c.status is Status.OK for c in checks)
    summary = f"{healthy} of {len(checks)} services healthy"
    critical = [c.label for c in checks if c.status is Status.CRITICAL]
    if critical:
        summary += "; down or critical: " + ", ".join(critical)
    rows = [
        [c.label, f"{c.status.symbol} {c.status.value}", _latency(c.latency_ms), c.detail]
        for c in ranked
    ]
    fields = [("Environment", ctx.settings.environment)]
    fields += [(k, v) for c in checks for k, v in c.facts.items()]
    return Result(
        command="health",
        status=worst([c.status for c in checks]),
        summary=summary,
        fields=fields,
        tables=[Table(columns=["service", "status", "latency", "detail"], rows=rows)],
        data={"checks": [c.as_dict() for c in checks]},
    )

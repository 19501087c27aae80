"""`verify` on a healthy and on a broken stack: real PostgreSQL, Redis (db 8) with Python bullmq
jobs and workers, the Elasticsearch 8.11 double, and a stand-in for the ClientForge API, Prometheus
and Grafana; through the CLI path."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from bullmq import Queue, Worker

import bot.core.registry
import commands.verify  # noqa: F401  (registers `verify`)
from bot.backends.clients import Backends
from bot.cli.main import parser
from bot.cli.verbs import run_verb
from bot.config.settings import Config, Settings
from bot.core.context import Actor, Context
from bot.core.dispatch import Outcome
from bot.core.registry import NoArgs, Role
from bot.core.result import EXIT_FAILED, EXIT_OK, Status
from bot.slack.render import Meta, to_message
from commands.backup.catalog import file_name
from commands.queues.bullmq import Counts
from commands.verify import _dlq_line, verify
from tests.conftest import empty_redis, make_settings, served
from tests.integration.test_health import TENANT_REQUIRED, Fake
from tests.support.es_fixtures import clientforge, closed_port, es  # noqa: F401  (the ES double fixture)
from tests.support.services import redis_url

pytestmark = pytest.mark.integration
URL = redis_url(8)
QUEUES = ["email", "data-sync", "embeddings", "file-processing", "notifications"]
CONFIG = {
    "environment": "staging",
    "roles": {"viewer": ["*"], "admin": ["U0ADMIN"]},
    "queues": QUEUES,
    "timeouts": {"health_check": 1.0, "backend": 1.0},
}


class StandIn(Fake):
    """test_health's ClientForge API, Prometheus and Grafana, plus the shadowed basic health route,
    recording every /api/v1 request's tenant header."""

    def __init__(self) -> None:
        super().__init__()
        self.api_calls: list[tuple[str, str | None]] = []

    async def basic(self, request: web.Request) -> web.Response:
        """GET /api/v1/health: always "healthy", tenant-guarded (deploy:verify sends no tenant)."""
        if not request.headers.get("X-Tenant-ID"):
            return web.json_response(TENANT_REQUIRED, status=400)
        return web.json_response({"success": True, "data": {"status": "healthy", "uptime": 1.0}})

    @web.middleware
    async def record(self, request: web.Request, handler):
        """Note the path and the tenant header of every /api/v1 request."""
        if request.path.startswith("/api/v1"):
            self.api_calls.append((request.path, request.headers.get("X-Tenant-ID")))
        return await handler(request)


@pytest.fixture
async def api() -> AsyncIterator[StandIn]:
    """The stand-in on a free port."""
    state = StandIn()
    app = web.Application(middlewares=[state.record])
    app.router.add_get("/api/v1/health", state.basic)
    app.router.add_get("/api/v1/health/ready", state.ready)
    app.router.add_get("/-/ready", state.prometheus)
    app.router.add_get("/api/health", state.grafana)
    async with served(app) as state.url:
        yield state


@pytest.fixture
async def rdb() -> AsyncIterator[aioredis.Redis]:
    """Redis database 8, empty before and after."""
    async with empty_redis(URL) as client:
        yield client


def settings_for(state_dsn: str, api: StandIn, es_url: str, **env: object) -> Settings:
    """Settings on the test's stack; `env` overrides a backend's URL."""
    values: dict[str, object] = {
        "redis_url": URL,
        "elasticsearch_url": es_url,
        "clientforge_api_url": api.url,
        "prometheus_url": api.url,
        "grafana_url": api.url,
        "forge_state_database_url": state_dsn,
    }
    return make_settings(Config.model_validate(CONFIG), **(values | env))


async def cli(
    settings: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path, *flags: str
) -> tuple[int, str]:
    """`forge run [flags] verify` like the console script, settings loaded: exit code, stdout."""
    code = await run_verb(
        settings, parser().parse_args(["run", *flags, "--out", str(tmp_path), "verify"])
    )
    out = capsys.readouterr().out
    return code, out[
        out.index("{\n") :
    ] if "--json" in flags else out  # structlog, unconfigured here, prints too


def lines(doc: dict) -> dict[str, dict]:
    """The checklist's lines by name."""
    return {c["name"]: c for c in doc["data"]["checks"]}


async def backup_at(state_dsn: str, at: datetime) -> None:
    """One catalogued dump made at `at`."""
    conn = await asyncpg.connect(state_dsn)
    await conn.execute(
        "INSERT INTO forge.backups (file, kind, source, created_at, size_bytes, sha256, "
        "duration_ms, row_counts, objects, actor_id) "
        "VALUES ($1, 'scheduled', 'clientforge', $2, 4096, $3, 120, '{}', '{}', 'forge')",
        file_name(at),
        at,
        "0" * 64,
    )
    await conn.close()


async def dead_jobs(queue: str, n: int) -> None:
    """`n` jobs a Python bullmq Worker fails thrice into the DLQ, then disconnects."""
    q = Queue(queue, {"connection": URL})
    await q.addBulk(
        [{"name": "sync-account", "data": {"n": i}, "opts": {"attempts": 3}} for i in range(n)]
    )

    async def fail(job, token):
        raise RuntimeError("Email account not found")

    worker = Worker(queue, fail, {"connection": URL, "concurrency": 10})
    try:
        async with asyncio.timeout(20):
            while (await q.getJobCounts("failed"))["failed"] < n:
                await asyncio.sleep(0.05)
    finally:
        await worker.close(force=True)
        await q.close()


def test_registered_as_a_slow_read_only_viewer_command():
    """`verify` is registered for viewers, read-only, marked slow (it shows ⏳ first in Slack)."""
    spec = bot.core.registry.REGISTRY.get("verify")
    assert (
        spec is not None
        and spec.role is Role.VIEWER
        and spec.risk is bot.core.registry.Risk.READ
        and spec.slow
    )
    assert "slack" not in (Path(__file__).parents[2] / "commands" / "verify.py").read_text().lower()


async def test_healthy_stack_passes_exits_0_and_shares_no_false_failure(
    state_dsn, api, es, rdb, capsys, tmp_path
):
    """Everything up: every line passes (PostgreSQL extensions may warn, clearly), exit 0. None of
    ClientForge's script failures (§9.22–9.24) appears: the basic health route answers 400 without a
    tenant, the readiness status is nested under `data`, there is no `bull:<q>:workers` key, no
    `<q>:dlq` queue, no `*-write` alias, no uuid-ossp, and no worker runs but nothing waits."""
    clientforge(es, contacts=20)
    await backup_at(state_dsn, datetime.now(UTC) - timedelta(hours=2))
    b64 = base64.b64encode(b"data-sync").decode()
    node_worker = aioredis.Redis.from_url(
        URL, client_name=f"bull:{b64}:w:node-1"
    )  # a Node worker's name
    await node_worker.ping()
    try:
        code, out = await cli(settings_for(state_dsn, api, es.url), capsys, tmp_path, "--json")
    finally:
        await node_worker.aclose()
    doc = json.loads(out)
    checks = lines(doc)
    warned = any(c["result"] == "warn" for c in doc["data"]["checks"])
    assert (
        code == EXIT_OK
        and doc["exit_code"] == 0
        and doc["status"] == ("warning" if warned else "ok")
    ), out
    assert list(checks) == [
        "api",
        "postgres",
        "redis",
        "elasticsearch",
        "prometheus",
        "grafana",
        "queues",
        "dlq",
        "es",
        "extensions",
        "backups",
    ]
    assert doc["data"]["verdict"] == "pass" and doc["data"]["failed"] == 0
    assert all(c["result"] == "pass" for n, c in checks.items() if n != "extensions"), checks
    ext = checks["extensions"]
    assert ext["result"] == "pass" or (ext["result"] == "warn" and "is missing" in ext["detail"])
    assert (
        "uuid" not in ext["detail"].lower()
    )  # gen_random_uuid() is built in: no verify:services warning
    assert (
        "workers: data-sync 1" in checks["queues"]["detail"]
        and "5 queues, 0 waiting" in checks["queues"]["detail"]
    )
    assert "contacts-current" in checks["es"]["detail"]
    assert checks["backups"]["detail"].startswith("newest 2.0 h old: backup-")
    assert api.api_calls and all(tenant == "forge-ops" for _, tenant in api.api_calls)
    assert {path for path, _ in api.api_calls} == {"/api/v1/health/ready"}
    assert not await rdb.keys("bull:*:workers") and not await rdb.keys("bull:*:dlq*")
    assert not any("-write" in r.path for r in es.requests)
    fields = doc["fields"]
    assert (
        fields["Failed"] == "0"
        and int(fields["Passed"]) >= 10
        and doc["summary"].startswith("Deployment verified")
    )


async def test_broken_stack_lists_its_failures_and_exits_1(
    state_dsn, api, es, rdb, capsys, tmp_path
):
    """API down, an index red and another missing, a queue with DLQ jobs and 20 waiting with no
    worker, the newest backup 30 h old: each is its line, the failures first, and `forge run verify`
    exits 1."""
    clientforge(es, contacts=20)
    es.cluster.indices["deals"].red = True
    del es.cluster.indices["clientforge"]
    await backup_at(state_dsn, datetime.now(UTC) - timedelta(hours=30))
    await dead_jobs("email", 3)
    waiting = Queue("email", {"connection": URL})
    await waiting.addBulk([{"name": "send-email", "data": {}} for _ in range(20)])
    await waiting.close()
    settings = settings_for(
        state_dsn, api, es.url, clientforge_api_url=f"http://127.0.0.1:{closed_port()}"
    )
    code, out = await cli(settings, capsys, tmp_path, "--json")
    doc = json.loads(out)
    checks = lines(doc)
    assert code == EXIT_FAILED and doc["exit_code"] == 1 and doc["status"] == "critical"
    failed = {n for n, c in checks.items() if c["result"] == "fail"}
    assert failed == {"api", "elasticsearch", "queues", "es"}, checks
    assert "connection refused" in checks["api"]["detail"]
    assert "email: jobs waiting, none active and no worker connected" in checks["queues"]["detail"]
    assert (
        checks["dlq"]["result"] == "warn"
        and "3 failed jobs with ≥ 3 attempts: email 3" in checks["dlq"]["detail"]
    )
    assert "red (primary shards unassigned): deals" in checks["es"]["detail"]
    assert "missing indices: clientforge" in checks["es"]["detail"]
    assert (
        checks["backups"]["result"] == "warn"
        and "no backup in the last 26 h" in checks["backups"]["detail"]
    )
    assert doc["data"]["failed"] == 4 and doc["summary"].startswith(
        "Deployment verification failed: 4 of 11"
    )
    assert [row[1].split()[-1] for row in doc["tables"][0]["rows"]][:4] == ["fail"] * 4
    commands_next = [a["command"] for a in doc["actions"]]
    assert (
        "queue health" in commands_next
        and "dlq list email" in commands_next
        and len(commands_next) <= 5
    )
    code, text = await cli(settings, capsys, tmp_path)
    assert (
        code == EXIT_FAILED
        and text.startswith("🔴 verify — critical · staging")
        and "🔴 fail" in text
    )


async def test_hanging_and_unreachable_backends_are_one_line_each(
    state_dsn, api, hanging, capsys, tmp_path
):
    """Elasticsearch that never answers, Redis and the state store refused: each a line within its
    timeout, the rest still checked, no stack trace."""
    settings = settings_for(
        state_dsn,
        api,
        f"http://{hanging}",
        redis_url=f"redis://127.0.0.1:{closed_port()}/8",
        forge_state_database_url=f"postgresql://postgres@127.0.0.1:{closed_port()}/x",
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    code, out = await cli(settings, capsys, tmp_path, "--json")
    took = loop.time() - started
    checks = lines(json.loads(out))
    assert code == EXIT_FAILED and took < 6, took
    assert (
        checks["redis"]["result"] == checks["queues"]["result"] == checks["dlq"]["result"] == "fail"
    )
    assert checks["queues"]["detail"].startswith("redis: connection refused")
    assert (
        checks["elasticsearch"]["result"] == "warn"
        and "timed out" in checks["elasticsearch"]["detail"]
    )
    assert checks["es"]["result"] == "warn" and "timed out" in checks["es"]["detail"]
    assert (
        checks["backups"]["result"] == "warn"
        and "backup freshness unknown" in checks["backups"]["detail"]
    )
    assert checks["postgres"]["result"] == "pass" and checks["api"]["result"] == "pass"
    assert "Traceback" not in out


async def test_no_state_store_says_so_and_missing_aliases_only_warn(api, es, rdb):
    """A handler context without a state store: the backup line says so. A missing `-current` alias
    and a missing index are warnings (as in `es aliases` / `es indices`), so the verification still
    passes."""
    clientforge(es, contacts=5)
    del es.cluster.indices["clientforge"]
    es.cluster.update_aliases([{"remove": {"index": "deals", "alias": "deals-current"}}])
    backends = Backends(
        make_settings(
            Config.model_validate(CONFIG),
            redis_url=URL,
            elasticsearch_url=es.url,
            clientforge_api_url=api.url,
            prometheus_url=api.url,
            grafana_url=api.url,
        )
    )
    ctx = Context(
        backends.settings,
        backends,
        bot.core.registry.REGISTRY,
        Actor("U0VIEW", Role.VIEWER),
        store=None,
        audit=None,
    )  # type: ignore[arg-type]
    try:
        result = await verify(ctx, NoArgs())
    finally:
        await backends.aclose()
    checks = {c["name"]: c for c in result.data["checks"]}
    assert (
        result.status is Status.WARNING and result.data["verdict"] == "pass" and not result.failed
    )
    assert checks["backups"]["result"] == "warn" and "no state store" in checks["backups"]["detail"]
    assert checks["es"]["result"] == "warn"
    assert checks["es"]["detail"] == "missing indices: clientforge; missing aliases: deals-current"
    assert "warning" in result.summary and "Backups" in result.summary
    message = to_message(
        Outcome("result", result), Meta("U0VIEW", datetime.now(UTC), 900, "staging")
    )
    blocks = json.dumps(message.blocks, ensure_ascii=False)
    assert (
        message.text.startswith("⚠️ verify — warning · staging: Deployment verified with ")
        and "Backups" in message.text
    )
    assert (
        "⚠️ warn" in blocks
        and "Elasticsearch indices and aliases" in blocks
        and not message.attachments
    )


def test_dlq_over_deploy_verify_threshold_fails():
    """Any DLQ job warns; over 100 (deploy:verify's FAIL threshold) fails, biggest queue first."""
    assert _dlq_line([Counts("email"), Counts("data-sync")], 3).status is Status.OK
    line = _dlq_line([Counts("email", dlq=60), Counts("data-sync", dlq=41)], 3)
    assert line.status is Status.CRITICAL and line.detail.endswith(
        "(> 100): email 60, data-sync 41"
    )
    assert line.follow_up is not None and line.follow_up.command == "dlq list email"
    assert _dlq_line([Counts("email", dlq=100)], 3).status is Status.WARNING

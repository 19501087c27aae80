"""Every command family with its backend down: one line saying what failed and what to do."""

from __future__ import annotations

import pytest

from bot.core.registry import Role
from tests.support.ops_support import run, started_forge

pytestmark = pytest.mark.integration
CLOSED = "127.0.0.1:9"  # the discard port: nothing listens, the connection is refused
DOWN = {
    "postgres": {"database_url": f"postgresql://postgres@{CLOSED}/clientforge"},
    "redis": {"redis_url": f"redis://{CLOSED}/0"},
    "elasticsearch": {"elasticsearch_url": f"http://{CLOSED}"},
    "prometheus": {"prometheus_url": f"http://{CLOSED}"},
}
# family: (a command of it, the backend taken away, the variable the message must name)
FAMILIES = {
    "queues": ("queue health email", "redis", "REDIS_URL"),
    "dlq": ("dlq list email", "redis", "REDIS_URL"),
    "db": ("db size", "postgres", "DATABASE_URL"),
    "db activity": ("db connections", "postgres", "DATABASE_URL"),
    "cache": ("cache stats", "redis", "REDIS_URL"),
    "es": ("es status", "elasticsearch", "ELASTICSEARCH_URL"),
    "search zero-results": ("search zero-results", "postgres", "DATABASE_URL"),
    "search analyze": ("search analyze", "postgres", "DATABASE_URL"),
    "backup": ("backup create", "postgres", "DATABASE_URL"),
    "incidents": ("incident list", "state store", "FORGE_STATE_DATABASE_URL"),
    "meta": ("audit", "state store", "FORGE_STATE_DATABASE_URL"),
    "approvals": ("approvals", "state store", "FORGE_STATE_DATABASE_URL"),
    "dlq archive": ("dlq archive", "state store", "FORGE_STATE_DATABASE_URL"),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
async def test_a_family_with_its_backend_down_says_what_failed_and_what_to_do(
    state_dsn, tmp_path, family
):
    """A failed outcome (never the crash path with an error id), naming backend and variable."""
    text, backend, variable = FAMILIES[family]
    if backend == "state store":
        state_dsn = f"postgresql://postgres@{CLOSED}/forge"
    env = DOWN.get(backend, {}) | {"forge_backup_dir": tmp_path}
    async with started_forge(state_dsn, **env) as forge:
        outcome = await run(forge, text, "U0ADMIN", Role.ADMIN)
    shown = outcome.message or (outcome.result.summary if outcome.result else "")
    assert outcome.kind == "failed", (outcome.kind, shown)
    assert "Something went wrong" not in shown and "\n" not in shown
    assert shown.startswith(f"{backend}: ") and variable in shown, shown


async def test_perf_without_prometheus_reports_the_rest_and_says_what_to_do(state_dsn):
    """perf degrades instead of failing: the checks it could run, and what to fix for the rest."""
    async with started_forge(state_dsn, **DOWN["prometheus"]) as forge:
        outcome = await run(forge, "perf", "U0ADMIN", Role.ADMIN)
    summary = outcome.result.summary
    assert outcome.kind == "result" and outcome.result.status.value != "ok"
    assert "unreachable" in summary and "PROMETHEUS_URL" in summary, summary

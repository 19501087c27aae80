"""The demo's ClientForge API: its health routes, behind its tenant guard, on a port of its own."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

REJECTED_TENANTS = {"", "default", "00000000-0000-0000-0000-000000000001"}
Probe = Callable[[], Awaitable[bool]]


def app(postgres: Probe, redis: Probe) -> web.Application:
    """/api/v1/health, /ready and /live as ClientForge answers them (clientforge.md §1)."""
    started = time.monotonic()

    def stamp() -> dict[str, Any]:
        return {
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "uptime": time.monotonic() - started,
            "environment": "development",
        }

    @web.middleware
    async def tenant_guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("X-Tenant-ID", "") in REJECTED_TENANTS:
            return web.json_response(
                {
                    "error": "TENANT_REQUIRED",
                    "message": "Tenant ID required",
                    "code": "E_TENANT_001",
                },
                status=400,
            )
        return await handler(request)

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"success": True, "data": {"status": "healthy", **stamp()}})

    async def live(_: web.Request) -> web.Response:
        return web.json_response({"success": True, "data": {"status": "alive", **stamp()}})

    async def ready(_: web.Request) -> web.Response:
        services = {
            "postgres": {"status": "up" if await postgres() else "down"},
            "redis": {"status": "up" if await redis() else "down"},
            "mongodb": {"status": "up"},
            "elasticsearch": {"status": "degraded", "error": "not part of the demo"},
        }
        critical = services["postgres"]["status"] == services["redis"]["status"] == "up"
        status = "degraded" if critical else "unhealthy"
        body = {
            "success": critical,
            "data": {"status": status, **stamp(), "version": "v1", "services": services},
        }
        return web.json_response(body, status=200 if critical else 503)

    application = web.Application(middlewares=[tenant_guard])
    application.router.add_get("/api/v1/health", health)
    application.router.add_get("/api/v1/health/live", live)
    application.router.add_get("/api/v1/health/ready", ready)
    return application

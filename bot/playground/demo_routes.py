"""The page's demo parts: what the page shows about the demo, and its Reset demo button."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.config.settings import ConfigError
from bot.log import get_logger
from bot.playground.session import Playground

log = get_logger(__name__)


def describe(playground: Playground) -> dict[str, Any] | None:
    """The demo as the page shows it, or None outside `--demo`."""
    if playground.demo is None:
        return None
    spec = playground.demo.spec()
    return {
        "threshold": spec.threshold,
        "redis": playground.demo.places.redis_url.rsplit("/", 1)[-1],
        "database": "forge_demo_crm",
    }


def add(sub: web.Application, playground: Playground) -> None:
    """POST /playground/demo/reset, behind the playground's guard like every act."""

    async def reset(_: web.Request) -> web.Response:
        try:
            await playground.demo.reset()
        except ConfigError as exc:  # Redis or PostgreSQL went away: say so, never a 500
            return web.json_response({"ok": False, "error": str(exc)}, status=409)
        playground.api.touch()
        log.info("demo_reset")
        return web.json_response({"ok": True})

    if playground.demo is not None:
        sub.router.add_post("/demo/reset", reset)

"""A replica's stop on SIGTERM: unready first, then no new connections, then drain, then hand over.

1. /readyz answers 503 at once, so the load balancer (HAProxy's check, Kubernetes' endpoints)
   stops sending new requests; for `deregister_seconds` forge still serves what arrives.
   In Socket Mode the socket closes instead: Slack gives unacked envelopes to other replicas.
2. The listener closes: a new connection is refused, and the load balancer redispatches it.
3. Acked work is finished, up to `drain_seconds`; work never started is handed back to the
   state store for another replica, and what still runs is stopped (an approved execution then
   ends as outcome_unknown, never re-run).
4. The HTTP server and the background jobs stop; the lease is released for another replica.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.log import get_logger

if TYPE_CHECKING:
    from bot.config.settings import Replicas
    from bot.slack.app import SlackSurface

log = get_logger(__name__)
DRAINING = web.AppKey("draining", asyncio.Event)


def draining(app: web.Application) -> bool:
    """True once the replica has been told to stop."""
    return DRAINING in app and app[DRAINING].is_set()


async def shut_down(
    runner: web.AppRunner,
    surface: SlackSurface,
    socket: Any,
    replicas: Replicas,
    *,
    balanced: bool = True,
) -> list[str]:
    """Stop in the order above; the request ids handed back to other replicas."""
    runner.app[DRAINING].set()
    log.info("draining", deregister_seconds=replicas.deregister_seconds, tasks=len(surface.tasks))
    if socket is not None:
        await socket.close_async()
    elif balanced:
        await asyncio.sleep(replicas.deregister_seconds)
    for site in list(runner.sites):
        await site.stop()
    handed = await surface.drain(replicas.drain_seconds)
    await runner.cleanup()
    log.info("drained", handed_back=len(handed))
    return handed

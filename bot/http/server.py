"""`forge serve`: the aiohttp server (Slack events, health, readiness, metrics) and Socket Mode."""

from __future__ import annotations

import asyncio
import gc
import secrets
import signal
from collections.abc import AsyncIterator, Callable, Mapping

import structlog
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.alerts import webhook as alert_webhook
from bot.alerts.publisher import AlertPublisher
from bot.background import jobs
from bot.background.leader import Leader
from bot.background.loops import stop
from bot.background.tasks import spawn
from bot.config.settings import ConfigError, Settings
from bot.core.forge import Forge
from bot.http import gauges as queue_gauges
from bot.http import metrics
from bot.http.gauges import QueueGauges
from bot.http.lifecycle import DRAINING, draining, shut_down
from bot.incidents.board import IncidentBoard
from bot.slack import ingress
from bot.slack.app import SlackSurface
from bot.slack.groups import SlackGroupDirectory
from bot.slack.ingress import Refusal
from bot.slack.outbox import close_client, make_client

log = structlog.get_logger(__name__)
SURFACE = web.AppKey("surface", SlackSurface)
FORGE = web.AppKey("forge", Forge)
GAUGES = web.AppKey("gauges", QueueGauges)
PUBLISHER = web.AppKey("publisher", AlertPublisher)
BOARD = web.AppKey("board", IncidentBoard)
LEADER = web.AppKey("leader", Leader)


def well_formed(headers: Mapping[str, str]) -> bool:
    """Signature headers that can be checked at all; Bolt alone answers 500 to some bad ones."""
    timestamp = headers.get("X-Slack-Request-Timestamp", "")
    signature = headers.get("X-Slack-Signature", "")
    return (
        timestamp.isascii()
        and timestamp.isdigit()
        and len(timestamp) <= 12
        and signature.isascii()
        and signature.startswith("v0=")
        and len(signature) <= 100
    )


@web.middleware
async def request_context(request: web.Request, handler: object) -> web.StreamResponse:
    """Bind a request id to every log line of the request; a handler that fails answers 400 with
    an error id that matches the log line, never 500."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=secrets.token_hex(6))
    try:
        return await handler(request)  # type: ignore[operator]
    except web.HTTPException:
        raise
    except Exception:
        error_id = secrets.token_hex(4)
        log.exception("request_failed", error_id=error_id, path=request.path[:100])
        return web.json_response(
            {"error": f"forge could not handle this request (error id {error_id})"}, status=400
        )


async def slack_events(request: web.Request) -> web.Response:
    """Slash commands, interactivity and events: signature and body checked at the gate, then
    handed to Bolt."""
    surface = request.app[SURFACE]
    raw = await request.read()
    if not well_formed(request.headers) or not surface.gate.verified(raw, request.headers):
        metrics.SLACK_REQUESTS.labels(kind="unverified", outcome="rejected").inc()
        log.info("authn_fail", reason="malformed or wrong signature, or a stale timestamp")
        return web.json_response({"error": "invalid request"}, status=401)
    body = surface.gate.door(raw, request.content_type)
    if isinstance(body, BoltResponse):
        return await to_aiohttp_response(body)
    try:
        bolt_request = as_bolt_request(raw, body, request)
    except Exception as exc:  # Bolt reads parts of the body forge does not: refuse, never 500
        refusal = Refusal(f"Bolt could not read it ({type(exc).__name__})", ingress.kind_of(body))
        return await to_aiohttp_response(surface.gate.refuse(refusal))
    return await to_aiohttp_response(await surface.dispatch(bolt_request))


def as_bolt_request(raw: bytes, body: dict, request: web.Request) -> AsyncBoltRequest:
    """Bolt's request for a verified body, with the body as the gate read it: Bolt reads any form
    whose text mentions "payload" (`/forge logs api --grep payload`) as an empty one."""
    bolt_request = AsyncBoltRequest(
        body=raw.decode(), query=request.query_string, headers=dict(request.headers)
    )
    if bolt_request.body != body:
        bolt_request.body = body
        bolt_request.context = build_async_context(AsyncBoltContext({}), body)
    return bolt_request


async def healthz(_: web.Request) -> web.Response:
    """The process is up."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the state store answers, until the replica is told to stop."""
    if draining(request.app):
        return web.json_response({"ready": False, "draining": True}, status=503)
    ready = await request.app[FORGE].store.ready()
    return web.json_response(
        {"ready": ready, "state_store": "up" if ready else "down"}, status=200 if ready else 503
    )


async def metrics_endpoint(request: web.Request) -> web.Response:
    """Prometheus text exposition: forge's own metrics, then the queue gauges read from Redis."""
    await request.app[GAUGES].refresh()
    body, content_type = metrics.exposition(queue_gauges.REGISTRY)
    return web.Response(body=body, headers={"Content-Type": content_type})


async def alertmanager(request: web.Request) -> web.Response:
    """Alertmanager's webhook."""
    return await alert_webhook.receive(request, request.app[FORGE], request.app.get(PUBLISHER))


async def _background(app: web.Application) -> AsyncIterator[None]:
    """Run the background jobs on whichever replica holds the lease, for as long as the app runs."""
    task = spawn(app[LEADER].run_forever())
    yield
    await stop(task)
    await app[LEADER].close()


def web_app(forge: Forge, surface: SlackSurface | None, *, events: bool = True) -> web.Application:
    """The HTTP routes; /slack/events only when Slack talks to forge over HTTP (`events`)."""
    app = web.Application(
        middlewares=[request_context], client_max_size=4 * 1024 * 1024
    )  # an alert storm's webhook
    app[FORGE] = forge
    app[GAUGES] = QueueGauges(forge)
    app[DRAINING] = asyncio.Event()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_post("/alerts/alertmanager", alertmanager)
    if surface is not None:
        app[SURFACE] = surface
        app[PUBLISHER] = AlertPublisher(forge, surface.outbox, forge.alerts)
        app[BOARD] = IncidentBoard(forge, surface.outbox)
        app[LEADER] = jobs.leader(forge, jobs.jobs(forge, surface, app[PUBLISHER], app[BOARD]))
        app.cleanup_ctx.append(_background)
        if events:
            app.router.add_post("/slack/events", slack_events)
    return app


def slack_credentials(settings: Settings) -> tuple[str, str]:
    """The bot token and signing secret `serve` needs; the error names the missing variable."""
    env = settings.env
    missing = []
    if not env.slack_bot_token:
        missing.append("SLACK_BOT_TOKEN")
    if not env.slack_signing_secret and not env.slack_app_token:
        missing.append("SLACK_SIGNING_SECRET")
    if missing:
        raise ConfigError(f"forge serve needs {' and '.join(missing)} in the environment")
    secret = env.slack_signing_secret.get_secret_value() if env.slack_signing_secret else ""
    return env.slack_bot_token.get_secret_value(), secret  # type: ignore[union-attr]


async def serve(settings: Settings, mount: Callable[[web.Application], None] | None = None) -> None:
    """Run until SIGINT or SIGTERM; `mount` adds routes of its own (the playground's) to the app."""
    token, signing_secret = slack_credentials(settings)
    client = make_client(settings)
    forge = Forge(settings, groups=SlackGroupDirectory(client))
    socket_mode = settings.env.slack_app_token is not None
    surface = SlackSurface(forge, client, signing_secret or token)
    if not await forge.start(keep_trying=True):
        log.warning(
            "starting_without_state_store",
            reason=forge.store.reason,
            note="read-only commands only; /readyz says not ready; reconnecting in the background",
        )
    app = web_app(forge, surface, events=not socket_mode)
    if mount is not None:
        mount(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.env.forge_http_host, settings.env.forge_http_port).start()
    socket = await _socket_mode(surface, settings) if socket_mode else None
    log.info(
        "forge_serving",
        host=settings.env.forge_http_host,
        port=settings.env.forge_http_port,
        mode="socket" if socket_mode else "http",
        environment=settings.environment,
    )
    settle_heap()
    try:
        await _until_signalled()
    finally:
        # the playground (`mount`) sits behind no load balancer: nothing to wait for
        await shut_down(runner, surface, socket, settings.config.replicas, balanced=mount is None)
        await forge.aclose()
        await close_client(client)


def settle_heap() -> None:
    """Move start-up objects out of the collector's way so full collections stay short in load."""
    gc.collect()
    gc.freeze()


async def _socket_mode(surface: SlackSurface, settings: Settings) -> AsyncSocketModeHandler:
    handler = AsyncSocketModeHandler(surface.app, settings.env.slack_app_token.get_secret_value())  # type: ignore[union-attr]
    await handler.connect_async()
    return handler


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

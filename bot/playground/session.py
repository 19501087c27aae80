"""`forge playground`: real forge and the Slack stand-in on one port, with session credentials."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from aiohttp import web
from pydantic import SecretStr

from bot.config.settings import Config, ConfigError, Settings, load_config
from bot.log import get_logger
from bot.playground.web_api import SlackWebApi

log = get_logger(__name__)
DEMO_CONFIG = Path(__file__).with_name("demo.yml")
WILDCARDS = {"", "0.0.0.0", "::"}
LOOPBACK = "127.0.0.1"
KEEP_CALLS = 500
STATE_DATABASE = "forge_playground"


@dataclass
class Playground:
    """One playground session: its settings, the stand-in, and where forge listens."""

    settings: Settings
    api: SlackWebApi
    events_url: str
    config_note: str
    public: bool = False
    demo: Any = None  # bot.demo.runner.DemoRun under `forge playground --demo`

    @property
    def url(self) -> str:
        """The page."""
        return self.api.base


def wants_playground(settings: Settings) -> bool:
    """`forge serve` with no Slack credentials, outside production, starts the playground."""
    env = settings.env
    no_slack = not (env.slack_bot_token or env.slack_signing_secret or env.slack_app_token)
    return no_slack and settings.environment != "production"


def _config(settings: Settings) -> tuple[Config, str]:
    """The config file's config, or the bundled demo one without a file; and a note saying which."""
    path = settings.config_path
    if path is not None and path.exists():
        return settings.config, f"Users, roles and channels come from {path}."
    return load_config(DEMO_CONFIG, required=True), (
        f"No config file at {path or 'forge.yml'}: the bundled demo config gives "
        "one operator, one admin and one approver. "
        "Copy forge.example.yml to forge.yml, with an environment other than production, "
        "to use your own."
    )


def refuse_production(settings: Settings) -> None:
    """The playground lets anyone act as anyone: never in production, whatever asked for it."""
    if settings.environment == "production":
        raise ConfigError(
            "the playground never runs in production (FORGE_ENVIRONMENT or the config's "
            "environment says production); use forge serve with Slack credentials"
        )


def prepare(settings: Settings, *, public: bool = False) -> Playground:
    """Settings aiming forge's Slack client at the stand-in, with its own token and signing secret.

    The page lets anyone act as anyone, so it listens on 127.0.0.1 unless `public` (the explicit
    `forge playground --public`) says FORGE_HTTP_HOST; FORGE_HTTP_HOST alone is not enough.
    """
    refuse_production(settings)
    env = settings.env
    host = env.forge_http_host if public else LOOPBACK
    local = LOOPBACK if host in WILDCARDS else host
    base = f"http://{local}:{env.forge_http_port}/playground"
    token = f"xoxb-playground-{secrets.token_hex(12)}"
    config, note = _config(settings)
    env = env.model_copy(
        update={
            "slack_bot_token": SecretStr(token),
            "slack_signing_secret": SecretStr(secrets.token_hex(20)),
            "slack_app_token": None,
            "slack_api_url": f"{base}/api/",
            "forge_http_host": host,
        }
    )
    api = SlackWebApi(base, bot_token=token, keep_calls=KEEP_CALLS)
    return Playground(
        replace(settings, env=env, config=config),
        api,
        f"http://{local}:{env.forge_http_port}/slack/events",
        note,
        public,
    )


async def own_state_store(settings: Settings) -> Settings:
    """Without FORGE_STATE_DATABASE_URL, the playground keeps its audit trail and approvals in a
    database of its own, `forge_playground`, on DATABASE_URL's server, created when missing; a
    server that is down stays down."""
    if settings.env.forge_state_database_url is not None:
        return settings
    parts = urlsplit(settings.env.database_url.get_secret_value())
    target = urlunsplit(parts._replace(path="/" + STATE_DATABASE))
    try:
        await (await asyncpg.connect(target, timeout=3)).close()
    except asyncpg.InvalidCatalogNameError:
        if not await _create(urlunsplit(parts._replace(path="/postgres"))):
            return settings
    except (OSError, TimeoutError, asyncpg.PostgresError):
        return settings
    log.info("playground_state_store", database=STATE_DATABASE)
    return replace(
        settings,
        env=settings.env.model_copy(update={"forge_state_database_url": SecretStr(target)}),
    )


async def _create(maintenance_dsn: str) -> bool:
    try:
        admin = await asyncpg.connect(maintenance_dsn, timeout=3)
        try:
            await admin.execute(f'CREATE DATABASE "{STATE_DATABASE}"')
        finally:
            await admin.close()
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        log.warning("playground_state_store_not_created", error=type(exc).__name__)
        return False
    return True


async def run(
    settings: Settings,
    *,
    public: bool = False,
    demo: bool = False,
    tell: Callable[[str], None] = lambda _: None,
) -> None:
    """Serve forge and the playground until signalled; `tell` gets the page's address once up.

    With `demo`, a small live ClientForge runs beside it in places of its own (bot/demo).
    """
    from bot.http.server import serve
    from bot.playground.page import mount

    refuse_production(settings)
    demo_run = None
    if demo:
        from bot.demo.runner import DemoRun

        demo_run = await DemoRun.prepare(settings)
        settings = demo_run.settings
    settings = await own_state_store(settings)
    playground = prepare(settings, public=public)
    playground.demo = demo_run

    async def announce(_: web.Application) -> None:
        if playground.public:
            log.warning(
                "playground_public",
                host=playground.settings.env.forge_http_host,
                note="anyone who can reach this address can act as any user of the config",
            )
        log.info(
            "playground_ready",
            url=playground.url,
            note="open it in a browser; Slack is simulated locally",
        )
        tell(f"{playground.url}/")

    def add_routes(app: web.Application) -> None:
        mount(app, playground)
        if demo_run is not None:
            app.cleanup_ctx.append(_demo_child(demo_run, playground))
        app.on_startup.append(announce)

    await serve(playground.settings, mount=add_routes)


def _demo_child(demo_run: Any, playground: Playground) -> Callable[[web.Application], Any]:
    """The demo's processes, for as long as the app runs."""

    async def child(_: web.Application) -> Any:
        await demo_run.open(playground.events_url.removesuffix("/slack/events"))
        yield
        await demo_run.close()

    return child

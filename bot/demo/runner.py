"""The playground's side of the demo: its places prepared, its child process started and stopped."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import sys
from dataclasses import asdict, replace

import asyncpg
import redis.asyncio as aioredis
from pydantic import SecretStr

from bot.config.settings import ConfigError, Settings
from bot.demo import alert, crm
from bot.demo.child import Spec
from bot.demo.jobs import OUTAGE
from bot.demo.monitoring import Monitoring
from bot.demo.places import STATE_DATABASE, Places
from bot.log import get_logger

log = get_logger(__name__)
STOP_SECONDS = 10
ALERTS = "/alerts/alertmanager"


class DemoRun:
    """One demo: its places, the settings forge runs with, and the child process."""

    def __init__(self, places: Places, settings: Settings, api_port: int) -> None:
        self.places = places
        self.settings = settings
        self.api_port = api_port
        self.webhook = ""
        self.forge = ""
        self.child: asyncio.subprocess.Process | None = None
        self.monitoring = Monitoring(places.folder / "monitoring")
        self.direct_alerts = True
        self._lock = asyncio.Lock()

    @classmethod
    async def prepare(cls, settings: Settings) -> DemoRun:
        """Refuse (ConfigError) or start from scratch; forge's settings aimed at the demo."""
        places = Places.of(settings)
        await places.check(settings)
        env = settings.env
        state = env.forge_state_database_url
        try:
            await seed(places)
            if state is None:  # a new state each start: no card of a past session's stand-in
                await places.create_database(STATE_DATABASE)
                state = SecretStr(places.dsn(STATE_DATABASE))
        except (OSError, TimeoutError, aioredis.RedisError, asyncpg.PostgresError) as exc:
            raise ConfigError(f"the demo could not set up its places: {exc}") from None
        token = env.forge_alertmanager_token or SecretStr(secrets.token_urlsafe(24))
        api_port = _free_port()
        demo_env = env.model_copy(
            update={
                "forge_state_database_url": state,
                "redis_url": SecretStr(places.redis_url),
                "database_url": SecretStr(places.crm_dsn),
                "forge_log_dir": places.logs,
                "forge_backup_dir": places.backups,
                "forge_alertmanager_token": token,
                "clientforge_api_url": f"http://127.0.0.1:{api_port}",
            }
        )
        return cls(places, replace(settings, env=demo_env), api_port)

    def spec(self) -> Spec:
        """What the child is told."""
        env = self.settings.env
        return Spec(
            redis_url=self.places.redis_url,
            crm_dsn=self.places.crm_dsn,
            logs=str(self.places.logs),
            queues=list(self.places.queues),
            jobs_per_second=env.forge_demo_jobs_per_second,
            backoff_scale=env.forge_demo_backoff_scale,
            threshold=env.forge_demo_dlq_threshold,
            webhook=self.webhook,
            token=env.forge_alertmanager_token.get_secret_value(),  # type: ignore[union-attr]
            api_port=self.api_port,
            direct_alerts=self.direct_alerts,
        )

    async def open(self, forge: str) -> None:
        """Prometheus and Alertmanager when installed (else direct alerts), then the child;
        `forge` is the playground's base URL."""
        self.forge = forge
        await self._monitor()
        await self.start(forge + ALERTS)

    async def _monitor(self) -> None:
        spec = self.spec()
        address = self.forge.removeprefix("http://")
        started = await self.monitoring.start(
            self.forge + ALERTS, spec.token, spec.threshold, address
        )
        self.direct_alerts = not started

    async def close(self) -> None:
        """The child, then Prometheus and Alertmanager, stopped."""
        await self.stop()
        await self.monitoring.stop()

    async def start(self, webhook: str) -> None:
        """Start the child; it posts alerts to `webhook` (forge's /alerts/alertmanager)."""
        self.webhook = webhook
        spec = json.dumps(asdict(self.spec()))
        self.child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.demo.child",
            stdin=asyncio.subprocess.PIPE,
            env={**os.environ, "FORGE_DEMO_SPEC": spec},
        )
        log.info(
            "demo_started",
            pid=self.child.pid,
            dlq_threshold=self.spec().threshold,
            alerts="direct" if self.direct_alerts else "prometheus",
        )

    async def stop(self) -> None:
        """Stop the child: SIGTERM, then SIGKILL after STOP_SECONDS."""
        child, self.child = self.child, None
        if child is None or child.returncode is not None:
            return
        child.terminate()
        try:
            await asyncio.wait_for(child.wait(), STOP_SECONDS)
        except TimeoutError:
            child.kill()
            await child.wait()
        log.info("demo_stopped", pid=child.pid, returncode=child.returncode)

    async def reset(self) -> None:
        """Everything back to the start: the alert resolved, queues, database and log anew."""
        async with self._lock:
            await self.stop()
            token = self.spec().token
            try:
                if self.direct_alerts:
                    await resolve_alert(self.places, self.webhook, token)
                else:
                    await self.monitoring.resolve_held(self.webhook, token)
                    await self.monitoring.stop()
                await seed(self.places)
            except (OSError, TimeoutError, aioredis.RedisError, asyncpg.PostgresError) as exc:
                raise ConfigError(f"the demo could not start over: {exc}") from None
            finally:
                if not self.direct_alerts and not self.monitoring.processes:
                    await self._monitor()
                await self.start(self.webhook)


async def seed(places: Places) -> None:
    """The demo's start: no jobs, the SMTP outage on, a fresh CRM database, an empty log."""
    await places.claim_redis()
    await places.clear_redis(keep_marker=True)
    client = aioredis.from_url(places.redis_url, socket_timeout=5)
    try:
        await client.set(OUTAGE, "smtp relay failing")
    finally:
        await client.aclose()
    await crm.create(places)
    places.logs.mkdir(parents=True, exist_ok=True)
    places.backups.mkdir(parents=True, exist_ok=True)
    (places.logs / "backend.log").write_text("", encoding="utf-8")


async def resolve_alert(places: Places, webhook: str, token: str) -> None:
    """A firing demo alert is resolved before the demo starts over, so its card does not hang."""
    client = aioredis.from_url(places.redis_url, socket_timeout=5)
    try:
        kind, started, fired = alert.read_state(await client.get(alert.STATE))
    finally:
        await client.aclose()
    if kind == "firing":
        await alert.send(webhook, token, alert.notification(fired, started, resolved=True))


def _free_port() -> int:
    """A port for the demo's ClientForge API on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

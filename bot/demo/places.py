"""Where the demo keeps its ClientForge: checked as its own before use, removed by --demo-clean."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis.asyncio as aioredis

from bot.config.settings import ConfigError, Settings

DATABASE = "forge_demo_crm"
STATE_DATABASE = "forge_demo_state"  # forge's own state for the demo, new each start
OWNER_NOTE = "made by forge playground --demo"
MARKER = "forge-demo:owner"
OWN_PREFIX = "forge-demo:"
PG_TIMEOUT = 5


@dataclass(frozen=True)
class Places:
    """The demo's Redis database, PostgreSQL database and folder."""

    redis_url: str
    crm_dsn: str
    maintenance_dsn: str
    folder: Path
    queues: tuple[str, ...]

    @classmethod
    def of(cls, settings: Settings) -> Places:
        """The places the settings name: FORGE_DEMO_REDIS_URL, DATABASE_URL's server, the folder."""
        parts = urlsplit(settings.env.database_url.get_secret_value())
        return cls(
            settings.env.forge_demo_redis_url.get_secret_value(),
            urlunsplit(parts._replace(path="/" + DATABASE)),
            urlunsplit(parts._replace(path="/postgres")),
            settings.env.forge_demo_dir.resolve(),
            tuple(settings.config.queues),
        )

    @property
    def logs(self) -> Path:
        """The demo's log folder (FORGE_LOG_DIR for the playground)."""
        return self.folder / "logs"

    @property
    def backups(self) -> Path:
        """The demo's backup folder (FORGE_BACKUP_DIR for the playground)."""
        return self.folder / "backups"

    def is_ours(self, key: str) -> bool:
        """A key the demo writes: its own, or BullMQ's for one of the configured queues."""
        if key.startswith(OWN_PREFIX):
            return True
        name = key.split(":", 2)[1] if key.startswith("bull:") and key.count(":") >= 2 else ""
        return name in self.queues

    async def foreign_keys(self) -> list[str]:
        """Keys in the demo's Redis database the demo did not write (a few, as examples)."""
        client = aioredis.from_url(self.redis_url, socket_timeout=PG_TIMEOUT)
        try:
            marked = await client.exists(MARKER)
            found: list[str] = []
            async for raw in client.scan_iter(count=500):
                key = raw.decode(errors="replace")
                if not (marked and self.is_ours(key)):
                    found.append(key)
                if len(found) >= 3:
                    break
            return found
        finally:
            await client.aclose()

    def dsn(self, database: str) -> str:
        """A DSN of DATABASE_URL's server for one of the demo's databases."""
        return self.crm_dsn.replace("/" + DATABASE, "/" + database)

    async def database_state(self, database: str = DATABASE) -> str:
        """`missing`, `ours`, or `foreign` (it exists without the demo's comment)."""
        admin = await asyncpg.connect(self.maintenance_dsn, timeout=PG_TIMEOUT)
        try:
            row = await admin.fetchrow(
                "SELECT shobj_description(oid, 'pg_database') AS note "
                "FROM pg_database WHERE datname = $1",
                database,
            )
        finally:
            await admin.close()
        if row is None:
            return "missing"
        return "ours" if row["note"] == OWNER_NOTE else "foreign"

    async def refusal(self, settings: Settings) -> str | None:
        """Why the demo may not start here, or None."""
        if settings.environment == "production":
            return "the demo never runs in production (FORGE_ENVIRONMENT or the config says so)"
        foreign = await self.foreign_keys()
        if foreign:
            return (
                f"the demo's Redis database ({_safe(self.redis_url)}) holds keys that are not "
                f"the demo's, e.g. {', '.join(foreign)}; point FORGE_DEMO_REDIS_URL at an "
                "empty database"
            )
        for database in (DATABASE, STATE_DATABASE):
            if await self.database_state(database) == "foreign":
                return (
                    f"a PostgreSQL database {database} exists that the demo did not make; "
                    "drop or rename it, or use another server (DATABASE_URL)"
                )
        return None

    async def check(self, settings: Settings) -> None:
        """Raise ConfigError when the demo may not start, before anything is written."""
        try:
            why = await self.refusal(settings)
        except (OSError, TimeoutError, aioredis.RedisError, asyncpg.PostgresError) as exc:
            why = f"the demo cannot reach its Redis or PostgreSQL ({type(exc).__name__}: {exc})"
        if why:
            raise ConfigError(f"the demo refuses to start: {why}")

    async def claim_redis(self) -> None:
        """Mark the Redis database as the demo's."""
        client = aioredis.from_url(self.redis_url, socket_timeout=PG_TIMEOUT)
        try:
            await client.set(MARKER, OWNER_NOTE)
        finally:
            await client.aclose()

    async def clear_redis(self, *, keep_marker: bool) -> int:
        """Delete the demo's keys (never another's); how many."""
        client = aioredis.from_url(self.redis_url, socket_timeout=PG_TIMEOUT)
        removed = 0
        try:
            if not await client.exists(MARKER):
                return 0
            batch: list[bytes] = []
            async for raw in client.scan_iter(count=500):
                key = raw.decode(errors="replace")
                if self.is_ours(key) and not (keep_marker and key == MARKER):
                    batch.append(raw)
                if len(batch) >= 500:
                    removed += await client.unlink(*batch)
                    batch = []
            removed += await client.unlink(*batch) if batch else 0
            return removed
        finally:
            await client.aclose()

    async def drop_database(self, database: str = DATABASE) -> bool:
        """Drop one of the demo's databases when it is the demo's; whether it did."""
        if await self.database_state(database) != "ours":
            return False
        admin = await asyncpg.connect(self.maintenance_dsn, timeout=PG_TIMEOUT)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await admin.close()
        return True

    async def create_database(self, database: str) -> None:
        """A new, empty database, marked as the demo's (an old one of the demo's is dropped)."""
        admin = await asyncpg.connect(self.maintenance_dsn, timeout=PG_TIMEOUT)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{database}"')
            await admin.execute(f"COMMENT ON DATABASE \"{database}\" IS '{OWNER_NOTE}'")
        finally:
            await admin.close()

    async def clean(self) -> list[str]:
        """--demo-clean: the demo's keys, database and folder removed; what was removed."""
        done = []
        keys = await self.clear_redis(keep_marker=False)
        done.append(f"{keys} Redis keys from {_safe(self.redis_url)}")
        for database in (DATABASE, STATE_DATABASE):
            if await self.drop_database(database):
                done.append(f"the database {database}")
        if self.folder.is_dir():
            shutil.rmtree(self.folder)
            done.append(f"the folder {self.folder.name}")
        return done


def _safe(url: str) -> str:
    """A URL without its password, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=host + port))

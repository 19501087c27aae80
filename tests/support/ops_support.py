"""Helpers for the cache, search, logs and perf tests: a started forge and a dispatcher run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bot.config.settings import Config
from bot.core.context import Actor
from bot.core.dispatch import Invocation, Outcome
from bot.core.forge import Forge
from bot.core.registry import Role
from tests.conftest import make_settings

CONFIG = {
    "roles": {"viewer": ["*"], "operator": ["U0OPS"], "admin": ["U0ADMIN"]},
    "approvers": ["U0LEAD"],
}


@asynccontextmanager
async def started_forge(state_dsn: str, **env: object) -> AsyncIterator[Forge]:
    """A started forge on the test's state database, with these environment values."""
    forge = Forge(
        make_settings(Config.model_validate(CONFIG), forge_state_database_url=state_dsn, **env)
    )
    await forge.start()
    try:
        yield forge
    finally:
        await forge.aclose()


async def run(forge: Forge, text: str, user: str = "U0VIEW", role: Role = Role.VIEWER) -> Outcome:
    """Run a command through the real dispatcher, as the CLI does."""
    return await forge.dispatcher.run(
        Invocation(text, user, "C0OPS", source="cli"), actor=Actor(user, role, source="cli")
    )

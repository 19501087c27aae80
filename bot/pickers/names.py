"""The names a picker offers (queues, services, incidents, backups, ES indices), fast or stale.

Slack waits 3 s for a picker's options; each source gets PICK_BUDGET, its last answer is kept
for CACHE_TTL, and a source that is slow or down offers what it had before (or nothing).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.core.context import Context
from bot.core.errors import ForgeError
from bot.log import get_logger

log = get_logger(__name__)
PICK_BUDGET = 1.5
DISCOVER_BUDGET = 1.0
CACHE_TTL = 30.0
MAX_OPTIONS = 100
FRESH_FOR = {"incident": 2.0}  # one declared a moment ago is offered at once
SERVICES = (
    "api",
    "postgres",
    "redis",
    "queues",
    "elasticsearch",
    "search",
    "backups",
    "cache",
    "prometheus",
    "grafana",
)


@dataclass(frozen=True)
class Name:
    """One option: what is shown, and the value a submission carries."""

    label: str
    value: str


Source = Callable[[Context], Awaitable[list[Name]]]


async def queues(ctx: Context) -> list[Name]:
    """Configured and discovered queues, then the runbook's aliases (alias → queue)."""
    from commands.queues import discover

    config = ctx.settings.config
    try:
        discovered = await asyncio.wait_for(discover(ctx), DISCOVER_BUDGET)
    except (ForgeError, TimeoutError) as exc:  # the configured queues are offered all the same
        log.info("picker_queues_not_discovered", error=str(exc) or type(exc).__name__)
        discovered = []
    found = list(dict.fromkeys([*config.queues, *discovered]))
    aliases = [Name(f"{a} → {q}", a) for a, q in sorted(config.queue_aliases.items())]
    return [Name(q, q) for q in found] + aliases


async def services(_: Context) -> list[Name]:
    """The parts of ClientForge an incident can be about."""
    return [Name(s, s) for s in SERVICES]


async def incidents(ctx: Context) -> list[Name]:
    """Open incidents, oldest first, as `INC-3 · P1 · title`."""
    from commands.incidents import store

    return [
        Name(f"INC-{i['id']} · {i['severity']} · {i['title']}", str(i["id"]))
        for i in await store(ctx).open_incidents()
    ]


async def backups(ctx: Context) -> list[Name]:
    """Live dump files, newest first."""
    from commands.backup import Catalog

    return [Name(e.file, e.file) for e in await Catalog(ctx).live(limit=100)]


async def indices(ctx: Context) -> list[Name]:
    """Elasticsearch indices, then aliases (alias → index)."""
    from commands.search import cat_aliases, cat_indices

    found, aliases = await asyncio.gather(cat_indices(ctx), cat_aliases(ctx))
    names = sorted(str(r.get("index")) for r in found if not str(r.get("index")).startswith("."))
    pairs = sorted(
        (str(r.get("alias")), str(r.get("index")))
        for r in aliases
        if not str(r.get("alias")).startswith(".")
    )
    return [Name(n, n) for n in names] + [Name(f"{a} → {i}", a) for a, i in pairs]


async def runnable(ctx: Context) -> list[Name]:
    """The commands this person may run, as `name: summary`."""
    return [
        Name(f"{s.name}: {s.summary}", s.name) for s in ctx.registry.all() if ctx.actor.may(s.role)
    ]


SOURCES: dict[str, Source] = {
    "command": runnable,
    "queue": queues,
    "service": services,
    "incident": incidents,
    "backup": backups,
    "index": indices,
}


class Names:
    """The sources behind one cache; `offer` answers within PICK_BUDGET, stale if it must."""

    def __init__(self, budget: float = PICK_BUDGET, ttl: float = CACHE_TTL) -> None:
        self.budget = budget
        self.ttl = ttl
        self._cache: dict[str, tuple[float, list[Name]]] = {}
        self._pending: dict[str, asyncio.Task[list[Name]]] = {}

    async def offer(self, kind: str, typed: str, ctx: Context) -> list[Name]:
        """The names of this kind containing what was typed (case ignored), at most MAX_OPTIONS."""
        if kind not in SOURCES:
            return []
        wanted = typed.strip().lower()
        # what one may run depends on one's role; everything else is the same for everyone
        key = f"command:{ctx.actor.role}" if kind == "command" else kind
        names = await self._names(key, kind, ctx)
        return [n for n in names if wanted in n.label.lower()][:MAX_OPTIONS]

    async def _names(self, key: str, kind: str, ctx: Context) -> list[Name]:
        cached = self._cache.get(key)
        if cached and time.monotonic() - cached[0] < FRESH_FOR.get(kind, self.ttl):
            return cached[1]
        task = self._pending.get(key)
        if task is None:
            task = asyncio.create_task(self._load(key, kind, ctx))
            self._pending[key] = task
            task.add_done_callback(lambda done: self._settled(key, done))
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.budget)
        except TimeoutError:
            # the load goes on and fills the cache for the next keystroke
            return cached[1] if cached else []
        except Exception:  # a source that is down offers what it had
            return cached[1] if cached else []

    def _settled(self, key: str, task: asyncio.Task[list[Name]]) -> None:
        self._pending.pop(key, None)
        if not task.cancelled() and task.exception() is not None:
            log.info("picker_source_failed", key=key, error=type(task.exception()).__name__)

    async def _load(self, key: str, kind: str, ctx: Context) -> list[Name]:
        names = await SOURCES[kind](ctx)
        self._cache[key] = (time.monotonic(), names)
        return names

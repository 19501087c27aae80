"""Fixtures of the Elasticsearch tests: the ES 8.11 double, and a handler context wired to it."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable

import pytest

import bot.core.registry
import commands.search.es
import commands.search.reindex  # noqa: F401  (registers `es reindex`)
from bot.backends.clients import Backends
from bot.core.context import Actor, Context
from bot.core.registry import Role
from bot.slack.mrkdwn import mrkdwn
from bot.text.cells import Text
from tests.conftest import make_settings
from tests.fakes.es_double import EsDouble

CONTACTS = {
    "settings": {
        "number_of_shards": 1,
        "number_of_replicas": 1,
        "analysis": {
            "analyzer": {
                "crm": {"type": "custom", "tokenizer": "standard", "filter": ["lowercase"]}
            }
        },
    },
    "mappings": {
        "properties": {p: {"type": "keyword"} for p in ("id", "tenant_id", "email", "phone")}
        | {
            p: {"type": "text", "analyzer": "crm"}
            for p in ("first_name", "last_name", "company_name", "full_text")
        }
        | {p: {"type": "date"} for p in ("created_at", "updated_at")}
    },
}


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def contact(n: int) -> dict[str, object]:
    """A scheme-A contact document (snake_case, `tenant_id`)."""
    return {
        "id": str(n),
        "tenant_id": f"t{n % 3}",
        "first_name": f"Ada{n}",
        "last_name": "Lovelace",
        "email": f"ada{n}@example.com",
        "created_at": "2025-11-01T00:00:00Z",
    }


def clientforge(es: EsDouble, contacts: int = 3000) -> None:
    """ClientForge's schemes A and B: contacts, accounts, deals, `-current` aliases, clientforge."""
    es.seed("contacts", contacts, body=CONTACTS, make=contact)
    es.seed("accounts", 40)
    es.seed("deals", 25)
    es.seed("clientforge", 120)
    es.cluster.update_aliases(
        [{"add": {"index": n, "alias": f"{n}-current"}} for n in ("contacts", "accounts", "deals")]
    )


@pytest.fixture
async def es() -> AsyncIterator[EsDouble]:
    """A running ES 8.11 double."""
    async with EsDouble() as double:
        yield double


@pytest.fixture
async def make_ctx(es: EsDouble) -> AsyncIterator[Callable[..., Context]]:
    """Contexts for calling handlers directly, on the double; progress notes land in `ctx.notes`
    as Slack would show them."""
    opened: list[Backends] = []

    def make(url: str | None = None, role: Role = Role.OPERATOR) -> Context:
        backends = Backends(make_settings(elasticsearch_url=url or es.url))
        opened.append(backends)
        notes: list[str] = []

        async def progress(note: Text) -> None:
            notes.append(mrkdwn(note))

        ctx = Context(
            backends.settings,
            backends,
            bot.core.registry.REGISTRY,
            Actor("U0OPS", role),
            store=None,
            audit=None,
            progress=progress,
        )  # type: ignore[arg-type]
        ctx.notes = notes  # type: ignore[attr-defined]
        return ctx

    yield make
    for backends in opened:
        await backends.aclose()

"""Every credential shape through every path forge has to the outside: a table, each cell redacted.

One world is built once (real PostgreSQL, Redis, Node BullMQ, the Slack double, a refusing
Elasticsearch, `forge run` as a subprocess); every (shape, path) cell then reads what it saw.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import secrets
import shlex
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import msgpack
import pytest
import redis.asyncio as aioredis
import structlog
from aiohttp import web

from bot.cli import logs
from bot.config.settings import Config
from bot.text.redact import redact
from commands.queues import bullmq as bullmq_redis
from tests.conftest import PG_ADMIN, dsn_for, empty_redis, make_settings, running_forge, served
from tests.fakes.bullmq_node import NodeBullMQ, node_unavailable_reason
from tests.scenario.test_cli import forge as forge_cli
from tests.support.alert_fixtures import TOKEN, alert, notification, send
from tests.support.secret_shapes import SHAPES, fragments, job_data, one_line
from tests.support.services import redis_url

URL = redis_url(13)
_why = node_unavailable_reason()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(_why is not None, reason=f"Node BullMQ harness: {_why}"),
]
CONFIG = {
    "roles": {"viewer": ["*"], "operator": ["U0OPS"], "admin": ["U0ADMIN"]},
    "approvers": ["U0LEAD"],
    "channels": {"alerts": "C0ALERTS", "incidents": "C0INC"},
    "alerts": {"messages_per_second": 10},
    "queues": ["email"],
}
PATHS = [
    "logs",
    "dlq show",
    "dlq export",
    "archive export",
    "alert card and links",
    "incident stored",
    "incident posted",
    "audit rows",
    "error messages",
    "logs command",
    "terminal",
]
# something each path must show, so a path that showed nothing cannot pass
MARKERS = {
    "logs": "shapes_logged",
    "dlq show": "ops@example.com",
    "dlq export": "ops@example.com",
    "archive export": "ops@example.com",
    "alert card and links": "SecretShape",
    "incident stored": "Declared P3",
    "incident posted": "INC-",
    "audit rows": "incident update",
    "error messages": "Elasticsearch refused it",
    "logs command": "backend.log",
    "terminal": "ops@example.com",
}
TEXTS = [one_line(text) for text, _ in SHAPES.values()]
_seen: dict[str, str] = {}


def chunks(texts: list[str], limit: int) -> list[list[str]]:
    """The texts grouped in order so that each group's quoted words stay under the limit."""
    groups: list[list[str]] = [[]]
    for text in texts:
        if groups[-1] and len(" ".join(map(shlex.quote, [*groups[-1], text]))) > limit:
            groups.append([])
        groups[-1].append(text)
    return groups


async def es_refusing() -> web.Application:
    """An Elasticsearch that refuses every request with the next shape as its reason."""
    reasons = iter(TEXTS * 4)

    async def refuse(_: web.Request) -> web.Response:
        body = {"error": {"type": "illegal_argument_exception", "reason": next(reasons)}}
        return web.json_response(body, status=400, headers={"X-Elastic-Product": "Elasticsearch"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    return app


def slack_seen(slack: Any, since: tuple[int, int, int]) -> str:
    """Everything the Slack double received since a mark: calls, responses, file contents."""
    calls, responses, files = since
    return json.dumps(
        [c.args for c in slack.calls[calls:]]
        + slack.responses[responses:]
        + [f.content.decode("utf-8", "replace") for f in slack.files[files:]],
        ensure_ascii=False,
    )


def mark(slack: Any) -> tuple[int, int, int]:
    """Where the Slack double's records stand now."""
    return len(slack.calls), len(slack.responses), len(slack.files)


async def step(slack: Any, settle: Callable[[], Awaitable[None]], work: Awaitable[Any]) -> str:
    """Run one step of the world and return what Slack was sent meanwhile."""
    before = mark(slack)
    await work
    await settle()
    await asyncio.sleep(0.2)
    await settle()
    return slack_seen(slack, before)


async def world(template_db: str, tmp: Path) -> dict[str, str]:
    """Send every shape down every path once; what each path showed."""
    name = f"forge_t_{secrets.token_hex(5)}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    stream = io.StringIO()
    try:
        async with empty_redis(URL) as rdb:
            return await _world(dsn_for(name), rdb, tmp, stream)
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers[:] = []
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _world(state: str, rdb: aioredis.Redis, tmp: Path, stream: io.StringIO) -> dict[str, str]:
    from tests.fakes.slack_double import SlackDouble

    seen: dict[str, str] = {}
    bullmq_redis._discovered.pop(URL, None)
    failed = await NodeBullMQ(5, URL).fail("email", 1, attempts=3, data=job_data())
    job_id = str(failed["ids"][0])
    (tmp / "logs").mkdir()
    (tmp / "logs" / "backend.log").write_text("\n".join(["backend.log", *TEXTS]) + "\n")
    async with SlackDouble() as slack, served(await es_refusing()) as es:
        settings = make_settings(
            Config.model_validate(CONFIG),
            redis_url=URL,
            forge_state_database_url=state,
            slack_api_url=slack.url,
            forge_log_dir=tmp / "logs",
            elasticsearch_url=es,
            forge_alertmanager_token=TOKEN,
        )
        logs.configure(redact, "INFO", stream)
        async with running_forge(settings, slack) as bot:
            seen |= await _commands(bot, job_id, rdb)
            seen |= await _incidents(bot)
            seen["alert card and links"] = await _alerts(bot)
            await _bolt_refusal(bot)
            structlog.get_logger("test").info(
                "shapes_logged " + " ".join(TEXTS), shapes=TEXTS, nested={"a": [job_data()]}
            )
            logging.getLogger("test.stdlib").warning("stdlib %s", " ".join(TEXTS))
            pool = await bot.forge.store.pool()
            seen["audit rows"] = json.dumps(
                [dict(r) for r in await pool.fetch("SELECT * FROM forge.audit_log")], default=str
            )
        seen["logs"] = stream.getvalue()
        seen["terminal"] = _terminal(tmp, state, job_id)
    return seen


async def _commands(bot: Any, job_id: str, rdb: aioredis.Redis) -> dict[str, str]:
    """dlq show, dlq export, archive export, the `logs` command and ES errors, over Slack."""
    seen = {}

    def slash(text: str) -> Awaitable[Any]:
        return bot.client.slash(text, user="U0OPS", channel="C0OPS")

    seen["dlq show"] = await step(bot.slack, bot.settle, slash(f"dlq show email {job_id}"))
    seen["dlq export"] = await step(bot.slack, bot.settle, slash("dlq export email"))
    fields = await rdb.hgetall(f"bull:email:{job_id}")
    packed = msgpack.packb([x for pair in fields.items() for x in pair])
    archive = bot.forge.archive
    batch = await archive.open_batch("email", "test", "U0OPS")
    log = msgpack.packb([len(TEXTS), list(TEXTS)])
    await archive.add(batch, "email", [(job_id, "test-failure", packed, log)], form="msgpack")
    seen["archive export"] = await step(bot.slack, bot.settle, slash(f"dlq archive-export {batch}"))
    seen["logs command"] = await step(bot.slack, bot.settle, slash("logs backend --tail 100"))
    errors = []
    for _ in TEXTS:
        errors.append(await step(bot.slack, bot.settle, slash("es status")))
    seen["error messages"] = "".join(errors)
    return seen


async def _incidents(bot: Any) -> dict[str, str]:
    """Incidents declared with every shape in titles and descriptions, updated with every shape."""
    from tests.scenario.test_incidents import until

    before = mark(bot.slack)
    titles, descriptions = chunks(TEXTS, 180), chunks(TEXTS, 190)
    for n, title in enumerate(titles):
        description = " ".join(descriptions[n]) if n < len(descriptions) else ""
        text = f"incident declare P3 {shlex.quote(' '.join(title))}"
        text += f" --description {shlex.quote(description)}" if description else ""
        await bot.client.slash(text, user="U0OPS", channel="C0OPS")
        await bot.settle()
    for group in chunks(TEXTS, 800):
        update = "incident update --id INC-1 " + " ".join(map(shlex.quote, group))
        await bot.client.slash(update, user="U0OPS", channel="C0INC")
        await bot.settle()
    pool = await bot.forge.store.pool()
    await until(
        lambda: sum("INC-" in c.args.get("text", "") for c in bot.slack.calls) > len(titles),
        what="the incident cards",
    )
    await asyncio.sleep(1.0)  # the board posts the updates in the thread
    stored = [dict(r) for r in await pool.fetch("SELECT * FROM forge.incidents")]
    stored += [dict(r) for r in await pool.fetch("SELECT * FROM forge.incident_events")]
    return {
        "incident stored": json.dumps(stored, default=str),
        "incident posted": slack_seen(bot.slack, before),
    }


async def _alerts(bot: Any) -> str:
    """One alert per shape, with the shape in its annotations, its runbook and its source links."""
    before = mark(bot.slack)
    for n, text in enumerate(TEXTS):
        one = alert(f"SecretShape{n}", description=text, summary=f"shape {n}: {text}")
        one["annotations"]["runbook_url"] = SHAPES["slack-webhook-url"][0]
        one["generatorURL"] = "http://prometheus:9090/graph?g0.expr=up&token=T0kenInUrl"
        status, _ = await send(bot, notification([one], group=f"{{}}:{{n={n}}}"))
        assert status == 200
    from tests.scenario.test_incidents import until

    def cards() -> int:
        posts = bot.slack.calls_to("chat.postMessage")
        return sum("SecretShape" in c.args.get("text", "") for c in posts)

    await until(lambda: cards() >= len(TEXTS), timeout=20, what="a card per alert")
    await asyncio.sleep(0.3)
    return slack_seen(bot.slack, before)


async def _bolt_refusal(bot: Any) -> None:
    """A request with a bad signature whose body holds a response_url, a token and every shape."""
    body = "&".join(
        [
            "token=VerificationT0ken",
            "response_url=" + SHAPES["slack-response-url"][0],
            "text=" + " ".join(TEXTS),
        ]
    )
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": "1",
        "X-Slack-Signature": "v0=" + "0" * 64,
    }
    answer = await bot.client.post_raw(body, headers)
    assert answer.status == 401


def _terminal(tmp: Path, state: str, job_id: str) -> str:
    """`forge run` in a terminal: text and JSON, and what it says on stderr."""
    env = {"FORGE_STATE_DATABASE_URL": state, "REDIS_URL": URL, "FORGE_LOG_DIR": str(tmp / "logs")}
    shown = []
    for args in (("run", f"dlq show email {job_id}"), ("run", "--json", "logs backend")):
        done = forge_cli(tmp, *args, **env)
        shown += [done.stdout, done.stderr]
    return "\n".join(shown)


@pytest.fixture
async def seen(template_db: str) -> dict[str, str]:
    """What every path showed, built by the first cell that asks."""
    if not _seen:
        with tempfile.TemporaryDirectory() as tmp:
            _seen.update(await world(template_db, Path(tmp)))
    return _seen


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("shape", sorted(fragments()))
async def test_no_secret_shape_reaches_any_path(seen: dict[str, str], shape: str, path: str):
    """The shape's secret is not in what the path showed; the path did show its content."""
    shown = seen[path]
    assert MARKERS[path] in shown, f"{path} showed nothing to check"
    assert fragments()[shape] not in shown, f"{shape} leaked through {path}"

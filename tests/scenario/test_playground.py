"""The playground without a browser: when it starts, where it listens, who one can be, its HTTP."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config.settings import Config, Env, Settings, load_config
from bot.core.forge import Forge
from bot.http.server import web_app
from bot.playground import session
from bot.playground.page import mount
from bot.playground.people import channels, people
from bot.playground.web_api import SlackWebApi
from bot.slack.app import SlackSurface
from bot.slack.groups import SlackGroupDirectory
from bot.slack.outbox import close_client, make_client
from tests.conftest import PG_ADMIN
from tests.support.services import redis_url

ROOT = Path(__file__).resolve().parents[2]


def settings(config: Config | None = None, path: Path | None = None, **env: object) -> Settings:
    """Settings with no Slack credentials, read from nowhere but the arguments."""
    return Settings(Env(_env_file=None, **env), config or Config(), path)


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_falls_back_only_without_any_credentials_and_outside_production():
    """No Slack credentials: the playground, unless production; a credential set: serve as usual."""
    assert session.wants_playground(settings())
    assert not session.wants_playground(settings(forge_environment="production"))
    assert not session.wants_playground(settings(slack_bot_token="xoxb-real"))
    assert not session.wants_playground(settings(slack_app_token="xapp-1-real"))


def test_prepare_makes_credentials_and_listens_locally_unless_told(tmp_path):
    """Fresh token and secret each time, Web API on the same port; 127.0.0.1 even with
    FORGE_HTTP_HOST set, unless `public` (forge playground --public) says otherwise."""
    first = session.prepare(settings(forge_http_port=3999))
    second = session.prepare(settings(forge_http_port=3999))
    env = first.settings.env
    assert env.slack_bot_token.get_secret_value().startswith("xoxb-playground-")
    assert env.slack_bot_token != second.settings.env.slack_bot_token
    assert env.slack_signing_secret != second.settings.env.slack_signing_secret
    assert (
        env.slack_api_url == "http://127.0.0.1:3999/playground/api/"
        and env.forge_http_host == "127.0.0.1"
    )
    assert first.events_url == "http://127.0.0.1:3999/slack/events"
    docker_like = session.prepare(settings(forge_http_host="0.0.0.0"))
    assert docker_like.settings.env.forge_http_host == "127.0.0.1" and not docker_like.public
    public = session.prepare(settings(forge_http_host="0.0.0.0"), public=True)
    assert public.settings.env.forge_http_host == "0.0.0.0" and public.public


def test_the_demo_config_is_used_only_without_a_config_file(tmp_path):
    """No forge.yml: the bundled demo config, and the note says so; a config file: its users."""
    demo = session.prepare(settings(path=tmp_path / "forge.yml"))
    assert (
        demo.settings.config.roles.operator == ["U0OPS"]
        and "bundled demo config" in demo.config_note
    )
    example = ROOT / "forge.example.yml"
    staging = load_config(example, required=True).model_copy(update={"environment": "staging"})
    own = session.prepare(settings(staging, example))
    assert (
        own.settings.config.approvers == ["U0LEAD", "S0LEADS"] and str(example) in own.config_note
    )


def test_people_and_channels_come_from_the_config():
    """Role and approver users, a made-up member per user group, a guest; the config's channels."""
    config = load_config(ROOT / "forge.example.yml", required=True)
    api = SlackWebApi()
    ids = [p["id"] for p in people(config, api)]
    assert ids == ["U0ADMIN", "U0OPS", "U0ONCALL", "U0LEAD", "U0LEADS", "U0GUEST"]
    assert api.usergroups == {"S0ONCALL": ["U0ONCALL"], "S0LEADS": ["U0LEADS"]}
    named = {c["id"]: c["name"] for c in channels(config, api)}
    assert named == {
        "C0OPS": "ops",
        "C0ALERTS": "alerts",
        "C0INCIDENTS": "incidents",
        "C0PAGE": "page",
    }


@pytest.fixture
async def playground(state_dsn: str) -> AsyncIterator[str]:
    """forge's app with the playground mounted, as `forge playground` builds it; its base URL."""
    port = free_port()
    play = session.prepare(
        settings(
            forge_http_port=port,
            forge_state_database_url=state_dsn,
            database_url=PG_ADMIN,
            redis_url=redis_url(6),
            elasticsearch_url="http://127.0.0.1:9",
            clientforge_api_url="http://127.0.0.1:9",
        )
    )
    client = make_client(play.settings)
    forge = Forge(play.settings, groups=SlackGroupDirectory(client))
    await forge.start()
    surface = SlackSurface(forge, client, play.settings.env.slack_signing_secret.get_secret_value())
    app = web_app(forge, surface)
    mount(app, play)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await surface.drain()
    await runner.cleanup()
    await forge.aclose()
    await close_client(client)


def page_session() -> aiohttp.ClientSession:
    """An HTTP session that keeps the playground's cookie, as the page's browser does."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def act(http: aiohttp.ClientSession, base: str, **body: object) -> dict:
    """POST one page action as the page does: same origin, JSON, with the session's CSRF token."""
    async with http.get(f"{base}/playground/session") as response:
        token = (await response.json())["csrf"]
    headers = {"Origin": base, "Sec-Fetch-Site": "same-origin", "X-Forge-CSRF": token}
    async with http.post(f"{base}/playground/act", json=body, headers=headers) as response:
        return await response.json()


async def state(http: aiohttp.ClientSession, base: str, user: str, channel: str = "C0OPS") -> dict:
    """The channel as one user sees it (after any change)."""
    async with http.get(
        f"{base}/playground/state", params={"user": user, "channel": channel}
    ) as response:
        return await response.json()


async def test_page_session_and_a_command_round_trip(playground):
    """Page and session load; /forge whoami answers in the channel, an error only to its caller."""
    async with page_session() as http:
        async with http.get(f"{playground}/playground") as page:
            assert page.status == 200 and "forge playground" in await page.text()
        async with http.get(f"{playground}/playground/session") as response:
            users = {u["id"]: (u["role"], u["approver"]) for u in (await response.json())["users"]}
        assert users["U0OPS"] == ("operator", False) and users["U0LEAD"] == ("viewer", True)

        assert (
            await act(
                http, playground, kind="slash", user="U0OPS", channel="C0OPS", text="/forge whoami"
            )
        )["ok"]
        await act(
            http, playground, kind="slash", user="U0OPS", channel="C0OPS", text="/forge audit"
        )
        refused = await act(
            http, playground, kind="slash", user="U0OPS", channel="C0OPS", text="/deploy now"
        )
        assert "only /forge" in refused["error"]
        for _ in range(50):
            mine = await state(http, playground, "U0OPS")
            if len(mine["items"]) >= 2:
                break
            await asyncio.sleep(0.05)
        theirs = await state(http, playground, "U0LEAD")

    said = {
        i["kind"]: i["text"] for i in mine["items"]
    }  # the two commands run concurrently: either may be first
    assert (
        said["message"].startswith("✅ whoami — ok") and "needs the admin role" in said["ephemeral"]
    )
    assert [i["kind"] for i in theirs["items"]] == ["message"]


async def test_the_stand_in_takes_only_the_session_token_and_forge_only_signed_requests(playground):
    """Another bot token is invalid_auth at the stand-in; forge refuses unsigned slash commands."""
    stranger = AsyncWebClient(token="xoxb-someone-else", base_url=f"{playground}/playground/api/")
    with pytest.raises(SlackApiError) as refused:
        await stranger.auth_test()
    assert refused.value.response["error"] == "invalid_auth"
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{playground}/slack/events",
            data="command=/forge&text=help",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Request-Timestamp": "1",
                "X-Slack-Signature": "v0=00",
            },
        ) as response,
    ):
        assert response.status == 401


async def test_a_mention_is_posted_and_answered_in_its_thread(playground):
    """`@forge whoami` in a channel shows as the person's message; forge answers in its thread."""
    async with page_session() as http:
        assert (
            await act(
                http, playground, kind="slash", user="U0OPS", channel="C0OPS", text="@forge whoami"
            )
        )["ok"]
        for _ in range(50):
            items = (await state(http, playground, "U0OPS"))["items"]
            if len(items) >= 2:
                break
            await asyncio.sleep(0.05)
    asked, answer = items[:2]
    assert (asked["user"], asked["text"]) == ("U0OPS", "<@U0BOT> whoami")
    assert answer["thread_ts"] == asked["ts"] and answer["text"].startswith("✅ whoami — ok")


async def test_without_a_state_store_url_the_playground_makes_its_own_database(monkeypatch):
    """No FORGE_STATE_DATABASE_URL: a database of the playground's own on DATABASE_URL's server,
    created once; an explicit URL is kept; a server that is down leaves the settings as they
    were."""
    import secrets

    import asyncpg

    name = f"forge_playground_t{secrets.token_hex(3)}"
    monkeypatch.setattr(session, "STATE_DATABASE", name)
    try:
        made = await session.own_state_store(settings(database_url=PG_ADMIN))
        assert made.state_database_url.endswith(f"/{name}")
        conn = await asyncpg.connect(made.state_database_url)
        await conn.close()
        again = await session.own_state_store(settings(database_url=PG_ADMIN))
        assert again.state_database_url == made.state_database_url
        explicit = settings(database_url=PG_ADMIN, forge_state_database_url=PG_ADMIN)
        assert (await session.own_state_store(explicit)).state_database_url == PG_ADMIN
        down = settings(database_url="postgresql://postgres@127.0.0.1:9/x")
        assert (
            await session.own_state_store(down)
        ).state_database_url == "postgresql://postgres@127.0.0.1:9/x"
    finally:
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

"""The Slack side of HTTP mode: signed requests to the bot, with the bodies Slack really sends."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import aiohttp

from bot.playground.slack_types import APP_ID, BOT_USER, TEAM_ID

if TYPE_CHECKING:
    from bot.playground.web_api import SlackWebApi

VERIFICATION_TOKEN = "verification-token-unused"  # legacy field Slack still sends; bolt ignores it
TEAM_DOMAIN = "forge-test"
USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"
DEFAULT_MESSAGE_TS = "1700000000.000100"


def make_trigger_id() -> str:
    """A well-formed trigger id not issued by any double."""
    return f"{int(time.time())}.{secrets.randbelow(10**12):012d}.{secrets.token_hex(16)}"


def content_type(body: str) -> str:
    """The Content-Type Slack sends with a body: JSON for events, a form for everything else."""
    return "application/json" if body.startswith("{") else "application/x-www-form-urlencoded"


def sign(secret: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    """Slack's v0 signing headers (plus Content-Type) for a request body."""
    ts = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "Content-Type": content_type(body),
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": f"v0={digest}",
    }


def _user(user: str, team: str = TEAM_ID) -> dict[str, str]:
    return {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team}


def _team(team: str = TEAM_ID) -> dict[str, str]:
    return {"id": team, "domain": TEAM_DOMAIN}


def _channel_name(channel: str) -> str:
    return "ops" if channel == "C0OPS" else channel.lower()


def slash_body(
    text: str,
    *,
    user: str = "U0VIEW",
    channel: str = "C0OPS",
    command: str = "/forge",
    response_url: str = "https://hooks.slack.com/commands/T0FORGE/1/unused",
    trigger_id: str | None = None,
    team: str = TEAM_ID,
) -> str:
    """The form-encoded body of a slash command invocation."""
    return urlencode(
        {
            "token": VERIFICATION_TOKEN,
            "team_id": team,
            "team_domain": TEAM_DOMAIN,
            "channel_id": channel,
            "channel_name": _channel_name(channel),
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id or make_trigger_id(),
        }
    )


def block_action_body(
    action_id: str,
    value: str,
    *,
    user: str = "U0VIEW",
    channel: str = "C0OPS",
    message_ts: str = DEFAULT_MESSAGE_TS,
    response_url: str = "https://hooks.slack.com/actions/T0FORGE/1/unused",
    trigger_id: str | None = None,
    block_id: str = "b",
    thread_ts: str | None = None,
    selected_user: str | None = None,
    element: dict[str, Any] | None = None,
    message: dict[str, Any] | None = None,
    is_ephemeral: bool = False,
) -> str:
    """The form-encoded body of a button click (or a user picked) in a message, threaded or not.

    `element` replaces the clicked element's fields (a static_select's selected_option, say) and
    `message` the message Slack echoes back; an ephemeral message is echoed as no message at all.
    """
    container = {
        "type": "message",
        "message_ts": message_ts,
        "channel_id": channel,
        "is_ephemeral": is_ephemeral,
    }
    message = message or {"ts": message_ts, "text": "", "type": "message", "user": BOT_USER}
    if thread_ts:
        container["thread_ts"] = message["thread_ts"] = thread_ts
    action = {
        "action_id": action_id,
        "block_id": block_id,
        "text": {"type": "plain_text", "text": "Button"},
        "value": value,
        "type": "button",
        "action_ts": f"{time.time():.6f}",
    }
    if selected_user:
        action = {
            "action_id": action_id,
            "block_id": block_id,
            "type": "users_select",
            "selected_user": selected_user,
            "action_ts": f"{time.time():.6f}",
        }
    if element:
        action = {
            "action_id": action_id,
            "block_id": block_id,
            "action_ts": f"{time.time():.6f}",
            **element,
        }
    payload = {
        "type": "block_actions",
        "user": _user(user),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "container": container,
        "trigger_id": trigger_id or make_trigger_id(),
        "team": _team(),
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": _channel_name(channel)},
        "message": message,
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [action],
    }
    if is_ephemeral:
        del payload["message"]
    return urlencode({"payload": json.dumps(payload)})


def view_submission_body(
    callback_id: str,
    values: dict[str, dict[str, dict[str, Any]]],
    *,
    user: str = "U0VIEW",
    private_metadata: str = "",
    view_id: str = "V0FORGE01",
    trigger_id: str | None = None,
    stored: dict[str, Any] | None = None,
) -> str:
    """The form-encoded body of a modal submission; `values` is view.state.values, `stored` the view as opened."""
    view = {
        "id": view_id,
        "team_id": TEAM_ID,
        "type": "modal",
        "blocks": [],
        "private_metadata": private_metadata,
        "callback_id": callback_id,
        "state": {"values": values},
        "hash": f"{time.time():.6f}.abc",
        "title": {"type": "plain_text", "text": "Forge"},
        "close": None,
        "submit": None,
        "clear_on_close": False,
        "notify_on_close": False,
        "previous_view_id": None,
        "root_view_id": view_id,
        "app_id": APP_ID,
        "external_id": "",
        "app_installed_team_id": TEAM_ID,
        "bot_id": "B0BOT",
    }
    if stored:
        view |= {
            k: v
            for k, v in stored.items()
            if k not in ("state", "private_metadata", "callback_id", "id")
        }
    payload = {
        "type": "view_submission",
        "team": _team(),
        "user": _user(user),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id or make_trigger_id(),
        "view": view,
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    return urlencode({"payload": json.dumps(payload)})


def event_body(event: dict[str, Any], *, event_id: str | None = None, team: str = TEAM_ID) -> str:
    """The JSON body of an Events API delivery wrapping `event`."""
    return json.dumps(
        {
            "token": VERIFICATION_TOKEN,
            "team_id": team,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{secrets.token_hex(5).upper()}",
            "event_time": int(time.time()),
            "is_ext_shared_channel": False,
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": team,
                    "user_id": BOT_USER,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
        }
    )


@dataclass
class Response:
    """What the bot answered."""

    status: int
    body: str
    headers: dict[str, str]
    elapsed: float

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class SlackClient:
    """Posts signed Slack requests to the bot's /slack/events; response_url and trigger_id come from the stand-in."""

    def __init__(
        self,
        base_url: str,
        secret: str,
        double: SlackWebApi | None = None,
        *,
        path: str = "/slack/events",
    ) -> None:
        """Target `<base_url><path>`; without a stand-in, response_url/trigger_id are inert placeholders."""
        self.url = base_url.rstrip("/") + path
        self.secret = secret
        self.double = double
        self.last_response_url: str | None = None
        self.last_trigger_id: str | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> SlackClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def slash(
        self,
        text: str,
        *,
        user: str = "U0VIEW",
        channel: str = "C0OPS",
        command: str = "/forge",
        signed: bool = True,
    ) -> Response:
        """Invoke a slash command."""
        body = slash_body(
            text,
            user=user,
            channel=channel,
            command=command,
            trigger_id=self._trigger_id(user),
            response_url=self._response_url(channel=channel, user=user),
        )
        return await self._post(body, signed=signed)

    async def click(
        self,
        action_id: str,
        value: str,
        *,
        user: str = "U0VIEW",
        channel: str = "C0OPS",
        message_ts: str = DEFAULT_MESSAGE_TS,
        block_id: str = "b",
        signed: bool = True,
        thread_ts: str | None = None,
        selected_user: str | None = None,
        **echo: Any,
    ) -> Response:
        """Click a button (or pick a user) on the message at channel/message_ts, in a thread when given.

        `echo` passes element, message and is_ephemeral on to block_action_body.
        """
        body = block_action_body(
            action_id,
            value,
            user=user,
            channel=channel,
            message_ts=message_ts,
            block_id=block_id,
            trigger_id=self._trigger_id(user),
            thread_ts=thread_ts,
            selected_user=selected_user,
            **echo,
            response_url=self._response_url(channel=channel, user=user, message_ts=message_ts),
        )
        return await self._post(body, signed=signed)

    async def submit_view(
        self,
        callback_id: str,
        values: dict[str, dict[str, dict[str, Any]]],
        *,
        user: str = "U0VIEW",
        private_metadata: str = "",
        view_id: str = "V0FORGE01",
        signed: bool = True,
        stored: dict[str, Any] | None = None,
    ) -> Response:
        """Submit a modal (`stored`: the view as the stand-in keeps it)."""
        body = view_submission_body(
            callback_id,
            values,
            user=user,
            private_metadata=private_metadata,
            view_id=view_id,
            trigger_id=self._trigger_id(user),
            stored=stored,
        )
        return await self._post(body, signed=signed)

    async def event(
        self,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        signed: bool = True,
    ) -> Response:
        """Deliver an Events API event, optionally as Slack's retry number `retry_num`."""
        headers = {}
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
        if retry_reason is not None:
            headers["X-Slack-Retry-Reason"] = retry_reason
        return await self._post(event_body(event, event_id=event_id), headers, signed=signed)

    async def post_raw(self, body: str, headers: dict[str, str]) -> Response:
        """POST exactly this body and these headers (forged, stale or malformed requests)."""
        session = self._session or aiohttp.ClientSession()
        self._session = session
        started = time.perf_counter()
        async with session.post(self.url, data=body.encode(), headers=headers) as answer:
            text = await answer.text()
        return Response(answer.status, text, dict(answer.headers), time.perf_counter() - started)

    async def _post(
        self, body: str, headers: dict[str, str] | None = None, *, signed: bool = True
    ) -> Response:
        base = sign(self.secret, body) if signed else {"Content-Type": content_type(body)}
        return await self.post_raw(body, {"User-Agent": USER_AGENT, **base, **(headers or {})})

    def _trigger_id(self, user: str) -> str:
        self.last_trigger_id = (
            self.double.new_trigger_id(user) if self.double else make_trigger_id()
        )
        return self.last_trigger_id

    def _response_url(self, **context: str) -> str:
        if self.double is None:
            self.last_response_url = "https://hooks.slack.com/actions/T0FORGE/1/unused"
        else:
            self.last_response_url = self.double.new_response_url(**context)
        return self.last_response_url

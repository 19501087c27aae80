"""The Slack side of HTTP mode: signed requests to the bot, with the bodies Slack really sends."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

from bot.playground.slack_bodies import (
    DEFAULT_MESSAGE_TS,
    block_action_body,
    block_suggestion_body,
    event_body,
    make_trigger_id,
    message_action_body,
    shortcut_body,
    slash_body,
    view_action_body,
    view_submission_body,
)

if TYPE_CHECKING:
    from bot.playground.web_api import SlackWebApi


USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"


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
    """Posts signed requests to /slack/events; the stand-in issues response_url and trigger_id."""

    def __init__(
        self,
        base_url: str,
        secret: str,
        double: SlackWebApi | None = None,
        *,
        path: str = "/slack/events",
    ) -> None:
        """Target `<base_url><path>`; with no stand-in, response_url/trigger_id are placeholders."""
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
        """Click a button (or pick a user) on the message at channel/message_ts, threaded if given.

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

    async def shortcut(self, callback_id: str, *, user: str = "U0VIEW") -> Response:
        """Choose a global shortcut from the shortcuts menu."""
        return await self._post(
            shortcut_body(callback_id, user=user, trigger_id=self._trigger_id(user))
        )

    async def message_action(
        self,
        callback_id: str,
        message: dict[str, Any],
        *,
        user: str = "U0VIEW",
        channel: str = "C0OPS",
    ) -> Response:
        """Choose a message shortcut on `message` in `channel`."""
        body = message_action_body(
            callback_id,
            message,
            user=user,
            channel=channel,
            trigger_id=self._trigger_id(user),
            response_url=self._response_url(channel=channel, user=user),
        )
        return await self._post(body)

    async def suggest(
        self, action_id: str, value: str, *, user: str = "U0VIEW", block_id: str = "b"
    ) -> Response:
        """Type into an external_select: Slack asks for its options."""
        return await self._post(
            block_suggestion_body(action_id, value, user=user, block_id=block_id)
        )

    async def view_click(
        self,
        action_id: str,
        value: str,
        *,
        user: str = "U0VIEW",
        view: dict[str, Any] | None = None,
    ) -> Response:
        """Click a button in a view (the Home tab): no channel, no response_url."""
        body = view_action_body(
            action_id, value, user=user, view=view, trigger_id=self._trigger_id(user)
        )
        return await self._post(body)

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

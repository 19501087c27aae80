"""A Slack Web API stand-in: methods forge calls, message store, modals, uploads, response_url."""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
from typing import Any

from aiohttp import web

from bot.playground.links import LinksMixin, ResponseUrl
from bot.playground.methods import MethodsMixin
from bot.playground.slack_types import (
    APP_ID,
    BOT_ID,
    BOT_USER,
    JSON_ARGS,
    SCOPES,
    TEAM_ID,
    Call,
    Json,
    Result,
    UploadedFile,
    err,
)

__all__ = ["APP_ID", "BOT_ID", "BOT_USER", "TEAM_ID", "Call", "SlackWebApi", "UploadedFile"]


async def _read_args(request: web.Request) -> Json:
    """Merge query string, JSON, form and multipart arguments, decoding JSON-valued fields."""
    args: Json = dict(request.query)
    if request.can_read_body and request.content_type == "application/json":
        args.update(await request.json())
    elif request.can_read_body:
        for key, value in (await request.post()).items():
            args[key] = value.file.read() if isinstance(value, web.FileField) else value
    for key in JSON_ARGS:
        if isinstance(args.get(key), str) and args[key].startswith(("[", "{")):
            args[key] = json.loads(args[key])
    return args


class SlackWebApi(MethodsMixin, LinksMixin):
    """The Slack parts forge uses, served by an aiohttp app mounting routes(); records each call."""

    def __init__(
        self, base: str = "", *, bot_token: str | None = None, keep_calls: int | None = None
    ) -> None:
        """`base`: where the routes are mounted; with `bot_token`, only that token is accepted."""
        self.base = base
        self.bot_token = bot_token
        self.keep_calls = keep_calls
        self.usergroups: dict[str, list[str]] = {}
        self.channel_names: dict[str, str] = {"C0OPS": "ops"}
        self.members: dict[str, set[str]] = {}
        self.trigger_ttl, self.response_url_ttl = 3.0, 1800.0
        self.calls: list[Call] = []
        self.ephemerals: list[Json] = []
        self.views: dict[str, Json] = {}
        self.view_stacks: dict[str, list[str]] = {}  # user -> open modal ids, the top one last
        self.homes: dict[str, Json] = {}  # user -> the Home tab forge published for them
        self.files: list[UploadedFile] = []
        self.responses: list[Json] = []
        self.feed: list[tuple[str, str, Any]] = []  # (kind, channel, object) in arrival order
        self.version = 0
        self.closed = False
        self._changed: asyncio.Event | None = None
        self._messages: dict[str, list[Json]] = {}
        self._triggers: dict[str, tuple[float, str | None]] = {}
        self._used_triggers: set[str] = set()
        self._response_urls: dict[str, ResponseUrl] = {}
        self._uploads: dict[str, UploadedFile] = {}
        self._ts = itertools.count(1_700_000_000_000_100, 100)
        self._ids = itertools.count(1)

    def routes(self) -> list[web.RouteDef]:
        """The Web API, upload and response_url routes, relative to `base`."""
        return [
            web.route("*", "/api/{method}", self._web_api),
            web.post("/upload/{file_id}", self._upload),
            web.post("/response/{url_id}", self._response),
        ]

    @property
    def url(self) -> str:
        """The Web API base URL (SLACK_API_URL), trailing slash kept: slack_sdk urljoins methods."""
        return f"{self.base}/api/"

    # issuing what Slack would put in a request

    def new_trigger_id(self, user: str | None = None) -> str:
        """A trigger id issued now (to `user`); views.open refuses it after trigger_ttl seconds."""
        trigger_id = f"{int(time.time())}.{secrets.randbelow(10**12):012d}.{secrets.token_hex(16)}"
        self._triggers[trigger_id] = (time.monotonic(), user)
        return trigger_id

    def new_response_url(
        self, *, channel: str | None = None, user: str | None = None, message_ts: str | None = None
    ) -> str:
        """A response_url for an interaction in `channel` by `user` (on message `message_ts`)."""
        url_id = secrets.token_hex(8)
        self._response_urls[url_id] = ResponseUrl(channel, user, message_ts, time.monotonic())
        return f"{self.base}/response/{url_id}"

    # reading the state

    def calls_to(self, method: str) -> list[Call]:
        """Recorded calls of one method, oldest first."""
        return [call for call in self.calls if call.method == method]

    def messages(self, channel: str, *, thread_ts: str | None = None) -> list[Json]:
        """Copies of a channel's messages (thread replies included), or of one thread's replies."""
        stored = self._messages.get(channel, [])
        return [dict(m) for m in stored if thread_ts is None or m.get("thread_ts") == thread_ts]

    def message_at(self, channel: str, ts: str) -> Json | None:
        """The message stored at channel/ts, or None."""
        return self._find(channel, ts)

    def replace_view(self, view_id: str, view: Json) -> Json:
        """Replace an open modal, as a response_action "update" does."""
        return self._save_view(view_id, view)

    def is_stored(self, channel: str, message: Json) -> bool:
        """Whether this very message object is still in the channel (not deleted)."""
        return any(m is message for m in self._messages.get(channel, []))

    def clear(self) -> None:
        """Forget everything recorded and stored (settings stay)."""
        for recorded in (self.calls, self.ephemerals, self.files, self.responses, self.feed):
            recorded.clear()
        self._messages.clear()
        self.views.clear()
        self.view_stacks.clear()
        self.homes.clear()

    async def wait_change(self, since: int, timeout: float) -> int:
        """Wait until the state's version passes `since` (or `timeout`, or close()); the version."""
        if self.version <= since and not self.closed:
            self._changed = self._changed or asyncio.Event()
            try:
                await asyncio.wait_for(self._changed.wait(), timeout)
            except TimeoutError:
                pass
        return self.version

    def close(self) -> None:
        """Wake every waiter for good, so a server shutting down is not held up by long polls."""
        self.closed = True
        self.touch()

    def touch(self) -> None:
        """Note a change, waking wait_change()."""
        self.version += 1
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    # Web API plumbing

    async def _web_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            args: Json | None = await _read_args(request)
        except (ValueError, TypeError):  # malformed JSON, or a JSON body that is not an object
            args = None
        call = self._record(method, args or {}, request)
        status, body, headers = await self._answer(method, args, call.headers)
        call.status, call.response = status, body
        self.touch()
        return web.json_response(body, status=status, headers={"x-oauth-scopes": SCOPES, **headers})

    def _record(self, method: str, args: Json, request: web.Request) -> Call:
        call = Call(
            method, args, {k.lower(): v for k, v in request.headers.items()}, time.monotonic()
        )
        self.calls.append(call)
        if self.keep_calls is not None and len(self.calls) > self.keep_calls:
            del self.calls[: -self.keep_calls]
        return call

    async def _scripted(self, method: str) -> Result | None:
        """A scripted answer that replaces the real one (a test double's failures); none here."""
        return None

    def _limited(self, method: str, args: Json) -> bool:
        """Whether this call is rate limited; never here."""
        return False

    async def _answer(self, method: str, args: Json | None, headers: dict[str, str]) -> Result:
        scripted = await self._scripted(method)
        if scripted:
            return scripted
        if args is None:
            return 200, err("invalid_json"), {}
        auth_error = self._auth_error(method, headers, args)
        if auth_error:
            return 200, err(auth_error), {}
        handler = getattr(
            self, "_api_" + method.replace(".", "_"), None
        )  # e.g. _api_chat_postMessage
        if handler is None:
            return 200, err("unknown_method"), {}
        if self._limited(method, args):
            return 429, err("ratelimited"), {"Retry-After": "1"}
        return 200, handler(args), {}

    def _auth_error(self, method: str, headers: dict[str, str], args: Json) -> str | None:
        auth = headers.get("authorization", "")
        token = (
            auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else args.get("token", "")
        )
        if not token:
            return "not_authed"
        token, wanted = str(token), "xapp-" if method == "apps.connections.open" else "xoxb-"
        if (
            self.bot_token
            and wanted == "xoxb-"
            and not secrets.compare_digest(token, self.bot_token)
        ):
            return "invalid_auth"
        if token.startswith(wanted):
            return None
        return "not_allowed_token_type" if token.startswith(("xapp-", "xoxb-")) else "invalid_auth"

    def _next_ts(self) -> str:
        micros = next(self._ts)
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}0{next(self._ids):08X}"

    def _find(self, channel: str | None, ts: str | None) -> Json | None:
        return next((m for m in self._messages.get(str(channel), []) if m["ts"] == ts), None)

    def post_as_user(
        self, channel: str, user: str, text: str, thread_ts: str | None = None
    ) -> Json:
        """A message a person typed into a channel (or thread), as Slack would store it."""
        message = {
            "type": "message",
            "user": user,
            "team": TEAM_ID,
            "text": text,
            "blocks": [],
            "ts": self._next_ts(),
        } | ({"thread_ts": thread_ts} if thread_ts else {})
        self._messages.setdefault(channel, []).append(message)
        self.feed.append(("message", channel, message))
        self.touch()
        return message

    def _store(self, channel: str, args: Json) -> Json:
        message = {
            "type": "message",
            "user": BOT_USER,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            "text": args.get("text") or "",
            "blocks": args.get("blocks") or [],
            "ts": self._next_ts(),
        }
        message |= {k: args[k] for k in ("attachments", "thread_ts", "metadata") if args.get(k)}
        self._messages.setdefault(channel, []).append(message)
        self.feed.append(("message", channel, message))
        return message

    def _ephemeral(self, channel: str, user: str | None, body: Json, **extra: Any) -> None:
        ephemeral = {
            "channel": channel,
            "user": user,
            "text": body.get("text") or "",
            "blocks": body.get("blocks") or [],
            "thread_ts": body.get("thread_ts"),
            **extra,
        }
        self.ephemerals.append(ephemeral)
        self.feed.append(("ephemeral", channel, ephemeral))

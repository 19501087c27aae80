"""A recording, scriptable stand-in for Slack: Web API, file uploads, response_url and Socket Mode."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import secrets
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Callable

from aiohttp import WSCloseCode, web

from .slack_links import APP_ID, LinksMixin, _ResponseUrl

TEAM_ID, BOT_USER, BOT_ID = "T0FORGE", "U0BOT", "B0BOT"
SCOPES = "chat:write,chat:write.public,commands,files:write,usergroups:read,channels:read"
TRIGGER_RE = re.compile(r"^\d+\.\d+\.[0-9A-Za-z]+$")
JSON_ARGS = ("blocks", "attachments", "view", "files", "metadata")  # JSON strings when sent form-encoded

Json = dict[str, Any]
Result = tuple[int, Json, dict[str, str]]  # HTTP status, JSON body, extra headers


def _err(error: str) -> Json:
    """Slack's error body."""
    return {"ok": False, "error": error}


def _missing(args: Json, **errors: str) -> Json | None:
    """The error body for the first required argument that is absent, if any."""
    return next((_err(error) for name, error in errors.items() if not args.get(name)), None)


@dataclass
class Call:
    """One request the double received."""
    method: str  # Web API method, or "upload" / "response_url"
    args: Json
    headers: dict[str, str]  # keys lower-cased
    at: float  # time.monotonic() on arrival
    status: int = 200
    response: Json | None = None


@dataclass
class UploadedFile:
    """A file uploaded through the files_upload_v2 flow."""
    id: str
    filename: str
    length: int
    content: bytes = b""
    title: str | None = None
    channel_id: str | None = None
    initial_comment: str | None = None
    thread_ts: str | None = None


@dataclass
class _Failure:
    status: int
    error: str
    times: int
    retry_after: int


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


class SlackDouble(LinksMixin):
    """An aiohttp server on 127.0.0.1 that behaves like the parts of Slack forge uses, and records it all."""

    def __init__(self, *, enforce_channel_rate: bool = False, port: int = 0) -> None:
        """Configure the double; call start() (or use `async with`) to serve on `port` (0: any free one)."""
        self.enforce_channel_rate = enforce_channel_rate
        self.usergroups: dict[str, list[str]] = {}
        self.channel_names: dict[str, str] = {"C0OPS": "ops"}
        self.members: dict[str, set[str]] = {}
        self.trigger_ttl, self.response_url_ttl = 3.0, 1800.0
        self.calls: list[Call] = []
        self.ephemerals: list[Json] = []
        self.views: dict[str, Json] = {}
        self.files: list[UploadedFile] = []
        self.responses: list[Json] = []
        self.envelopes: list[Json] = []
        self.socket_acks: list[Json] = []
        self.socket_connected = asyncio.Event()
        self.socket_connections = 0
        self.port = port
        self._messages: dict[str, list[Json]] = {}
        self._failures: dict[str, deque[_Failure]] = {}
        self._delays: dict[str, float] = {}
        self._buckets: dict[str, tuple[float, float]] = {}
        self._triggers: dict[str, float] = {}
        self._used_triggers: set[str] = set()
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._uploads: dict[str, UploadedFile] = {}
        self._sockets: list[web.WebSocketResponse] = []
        self._ts = itertools.count(1_700_000_000_000_100, 100)
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None

    # lifecycle

    async def start(self) -> SlackDouble:
        """Serve on the configured port, or a random free one."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._web_api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_post("/response/{url_id}", self._response)
        app.router.add_get("/link/", self._link)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        """Close open sockets, then the server."""
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SlackDouble:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base(self) -> str:
        """The server root, e.g. http://127.0.0.1:5555."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The Web API base URL (SLACK_API_URL); slack_sdk urljoins method names, so the trailing slash matters."""
        return f"{self.base}/api/"

    # scripting

    def fail(self, method: str, status: int = 429, error: str = "ratelimited", times: int = 1,
             retry_after: int = 1) -> None:
        """Make the next `times` calls of `method` (or "response_url") fail, after any earlier fail()."""
        self._failures.setdefault(method, deque()).append(_Failure(status, error, times, retry_after))

    def delay(self, method: str, seconds: float) -> None:
        """Make every later call of `method` (or "response_url") wait `seconds` before answering; 0 undoes."""
        self._delays[method] = seconds

    def new_trigger_id(self) -> str:
        """A well-formed trigger id issued now; views.open refuses it after trigger_ttl seconds."""
        trigger_id = f"{int(time.time())}.{secrets.randbelow(10**12):012d}.{secrets.token_hex(16)}"
        self._triggers[trigger_id] = time.monotonic()
        return trigger_id

    def new_response_url(self, *, channel: str | None = None, user: str | None = None,
                         message_ts: str | None = None) -> str:
        """A response_url for an interaction in `channel` by `user` (on the message at `message_ts`)."""
        url_id = secrets.token_hex(8)
        self._response_urls[url_id] = _ResponseUrl(channel, user, message_ts, time.monotonic())
        return f"{self.base}/response/{url_id}"

    # inspection

    def calls_to(self, method: str) -> list[Call]:
        """Recorded calls of one method, oldest first."""
        return [call for call in self.calls if call.method == method]

    def messages(self, channel: str, *, thread_ts: str | None = None) -> list[Json]:
        """Copies of the messages now in a channel (thread replies included), or of one thread's replies."""
        stored = self._messages.get(channel, [])
        return [dict(m) for m in stored if thread_ts is None or m.get("thread_ts") == thread_ts]

    def clear(self) -> None:
        """Forget everything recorded and stored (scripted failures and settings stay)."""
        for recorded in (self.calls, self.ephemerals, self.files, self.responses, self.envelopes, self.socket_acks):
            recorded.clear()
        self._messages.clear()
        self.views.clear()

    async def wait_for(self, method: str, count: int = 1, timeout: float = 3.0) -> list[Call]:
        """Wait until `method` has been called `count` times; its calls."""
        await self._poll(lambda: len(self.calls_to(method)) >= count, timeout,
                         lambda: f"expected {count} call(s) to {method!r} within {timeout}s, "
                                 f"got {len(self.calls_to(method))}; received: {self._summary()}")
        return self.calls_to(method)

    def _summary(self) -> str:
        return ", ".join(f"{m} x{n}" for m, n in Counter(c.method for c in self.calls).items()) or "nothing"

    @staticmethod
    async def _poll(done: Callable[[], bool], timeout: float, message: Callable[[], str]) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() >= deadline:
                raise AssertionError(message())
            await asyncio.sleep(0.01)

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
        return web.json_response(body, status=status, headers={"x-oauth-scopes": SCOPES, **headers})

    def _record(self, method: str, args: Json, request: web.Request) -> Call:
        call = Call(method, args, {k.lower(): v for k, v in request.headers.items()}, time.monotonic())
        self.calls.append(call)
        return call

    async def _scripted(self, method: str) -> Result | None:
        """Apply delay(), then answer with the pending fail(), if any."""
        await asyncio.sleep(self._delays.get(method, 0))
        queue = self._failures.get(method)
        if not queue:
            return None
        failure = queue[0]
        failure.times -= 1
        if failure.times <= 0:
            queue.popleft()
        headers = {"Retry-After": str(failure.retry_after)} if failure.status == 429 else {}
        return failure.status, _err(failure.error), headers

    async def _answer(self, method: str, args: Json | None, headers: dict[str, str]) -> Result:
        scripted = await self._scripted(method)
        if scripted:
            return scripted
        if args is None:
            return 200, _err("invalid_json"), {}
        auth_error = self._auth_error(method, headers, args)
        if auth_error:
            return 200, _err(auth_error), {}
        handler = getattr(self, "_api_" + method.replace(".", "_"), None)  # e.g. _api_chat_postMessage
        if handler is None:
            return 200, _err("unknown_method"), {}
        if method == "chat.postMessage" and self.enforce_channel_rate and not self._rate_ok(args.get("channel")):
            return 429, _err("ratelimited"), {"Retry-After": "1"}
        return 200, handler(args), {}

    @staticmethod
    def _auth_error(method: str, headers: dict[str, str], args: Json) -> str | None:
        auth = headers.get("authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else args.get("token", "")
        if not token:
            return "not_authed"
        token, wanted = str(token), "xapp-" if method == "apps.connections.open" else "xoxb-"
        if token.startswith(wanted):
            return None
        return "not_allowed_token_type" if token.startswith(("xapp-", "xoxb-")) else "invalid_auth"

    def _rate_ok(self, channel: str | None) -> bool:
        """Token bucket per channel: a burst of 3, refilled at 1 per second."""
        now = time.monotonic()
        tokens, last = self._buckets.get(str(channel), (3.0, now))
        tokens = min(3.0, tokens + (now - last))
        self._buckets[str(channel)] = (tokens - 1 if tokens >= 1 else tokens, now)
        return tokens >= 1

    def _next_ts(self) -> str:
        micros = next(self._ts)
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}0{next(self._ids):08X}"

    def _find(self, channel: str | None, ts: str | None) -> Json | None:
        return next((m for m in self._messages.get(str(channel), []) if m["ts"] == ts), None)

    def _store(self, channel: str, args: Json) -> Json:
        message = {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "app_id": APP_ID, "team": TEAM_ID,
                   "text": args.get("text") or "", "blocks": args.get("blocks") or [], "ts": self._next_ts()}
        message |= {k: args[k] for k in ("attachments", "thread_ts", "metadata") if args.get(k)}
        self._messages.setdefault(channel, []).append(message)
        return message

    def _ephemeral(self, channel: str, user: str | None, body: Json, **extra: Any) -> None:
        self.ephemerals.append({"channel": channel, "user": user, "text": body.get("text") or "",
                                "blocks": body.get("blocks") or [], "thread_ts": body.get("thread_ts"), **extra})

    # Web API methods: _api_<method with dots as underscores>(args) -> JSON body

    def _api_auth_test(self, args: Json) -> Json:
        return {"ok": True, "url": "https://forge-test.slack.com/", "team": "Forge Test", "user": "forge",
                "team_id": TEAM_ID, "user_id": BOT_USER, "bot_id": BOT_ID, "is_enterprise_install": False}

    def _api_chat_postMessage(self, args: Json) -> Json:
        if error := _missing(args, channel="channel_not_found"):
            return error
        if not (args.get("text") or args.get("blocks") or args.get("attachments")):
            return _err("no_text")
        message = self._store(args["channel"], args)
        return {"ok": True, "channel": args["channel"], "ts": message["ts"], "message": dict(message)}

    def _api_chat_update(self, args: Json) -> Json:
        message = self._find(args.get("channel"), args.get("ts"))
        if message is None:
            return _err("message_not_found")
        message |= {k: args[k] for k in ("text", "blocks", "attachments", "metadata") if k in args}
        message["edited"] = {"user": BOT_USER, "ts": self._next_ts()}
        return {"ok": True, "channel": args["channel"], "ts": message["ts"], "text": message["text"],
                "message": dict(message)}

    def _api_chat_delete(self, args: Json) -> Json:
        message = self._find(args.get("channel"), args.get("ts"))
        if message is None:
            return _err("message_not_found")
        self._messages[args["channel"]].remove(message)
        return {"ok": True, "channel": args["channel"], "ts": message["ts"]}

    def _api_chat_postEphemeral(self, args: Json) -> Json:
        if error := _missing(args, channel="channel_not_found", user="user_not_in_channel"):
            return error
        ts = self._next_ts()
        self._ephemeral(args["channel"], args["user"], args, message_ts=ts)
        return {"ok": True, "message_ts": ts}

    def _api_views_open(self, args: Json) -> Json:
        error = self._exchange_trigger(args.get("trigger_id"))
        if error:
            return _err(error)
        if not isinstance(args.get("view"), dict):
            return _err("invalid_arguments")
        return {"ok": True, "view": self._save_view(self._next_id("V"), args["view"])}

    _api_views_push = _api_views_open  # push needs a fresh trigger_id too

    def _api_views_update(self, args: Json) -> Json:
        view_id = args.get("view_id")
        if view_id not in self.views:
            return _err("not_found")
        if args.get("hash") and args["hash"] != self.views[view_id]["hash"]:
            return _err("hash_conflict")
        if not isinstance(args.get("view"), dict):
            return _err("invalid_arguments")
        return {"ok": True, "view": self._save_view(view_id, args["view"])}

    def _exchange_trigger(self, trigger_id: Any) -> str | None:
        """Consume a trigger id; the Slack error code if it cannot be used."""
        if not isinstance(trigger_id, str) or not TRIGGER_RE.match(trigger_id):
            return "invalid_trigger_id"
        if trigger_id in self._used_triggers:
            return "exchanged_trigger_id"
        self._used_triggers.add(trigger_id)
        issued = self._triggers.get(trigger_id)
        return "expired_trigger_id" if issued is not None and time.monotonic() - issued > self.trigger_ttl else None

    def _save_view(self, view_id: str, view: Json) -> Json:
        base = self.views.get(view_id) or {
            "id": view_id, "team_id": TEAM_ID, "app_id": APP_ID, "bot_id": BOT_ID, "type": "modal",
            "blocks": [], "private_metadata": "", "callback_id": "", "external_id": "", "state": {"values": {}},
            "root_view_id": view_id, "previous_view_id": None, "clear_on_close": False, "notify_on_close": False}
        self.views[view_id] = {**base, **view, "id": view_id, "hash": f"{time.time():.6f}.{secrets.token_hex(4)}"}
        return dict(self.views[view_id])

    def _api_usergroups_users_list(self, args: Json) -> Json:
        users = self.usergroups.get(str(args.get("usergroup")))
        return _err("no_such_subteam") if users is None else {"ok": True, "users": list(users)}

    def _api_conversations_info(self, args: Json) -> Json:
        if error := _missing(args, channel="channel_not_found"):
            return error
        channel = args["channel"]
        return {"ok": True, "channel": {
            "id": channel, "name": self.channel_names.get(channel, channel.lower()), "is_channel": True,
            "is_private": False, "is_member": True, "is_archived": False, "created": 1_700_000_000}}

    def _api_conversations_create(self, args: Json) -> Json:
        name = str(args.get("name") or "")
        if not name or len(name) > 80 or name != name.lower() or " " in name:
            return _err("invalid_name")
        if name in self.channel_names.values():
            return _err("name_taken")
        channel = f"C0NEW{len(self.channel_names) + 1:04d}"
        self.channel_names[channel] = name
        self.members[channel] = {BOT_USER}
        return {"ok": True, "channel": {"id": channel, "name": name, "is_channel": True, "is_private": False,
                                        "created": 1_700_000_000, "creator": BOT_USER}}

    def _api_conversations_invite(self, args: Json) -> Json:
        channel = str(args.get("channel") or "")
        if channel not in self.members:
            return _err("channel_not_found")
        self.members[channel].update(u for u in str(args.get("users") or "").split(",") if u)
        return {"ok": True, "channel": {"id": channel, "name": self.channel_names[channel]}}

    def _api_files_getUploadURLExternal(self, args: Json) -> Json:
        if (error := _missing(args, filename="invalid_arguments")) or not str(args.get("length")).isdigit():
            return error or _err("invalid_arguments")
        file_id = self._next_id("F")
        self._uploads[file_id] = UploadedFile(file_id, args["filename"], int(args["length"]))
        return {"ok": True, "upload_url": f"{self.base}/upload/{file_id}", "file_id": file_id}

    def _api_files_completeUploadExternal(self, args: Json) -> Json:
        wanted = args.get("files")
        if not isinstance(wanted, list) or not wanted:
            return _err("invalid_arguments")
        if any(item.get("id") not in self._uploads for item in wanted):
            return _err("file_not_found")
        shared = []
        for item in wanted:
            upload = self._uploads.pop(item["id"])
            upload.title = item.get("title") or upload.filename
            upload.channel_id, upload.initial_comment = args.get("channel_id"), args.get("initial_comment")
            upload.thread_ts = args.get("thread_ts")
            self.files.append(upload)
            shared.append({"id": upload.id, "name": upload.filename, "title": upload.title, "user": BOT_USER,
                           "size": len(upload.content), "mimetype": "text/plain", "filetype": "text",
                           "channels": [upload.channel_id] if upload.channel_id else []})
        return {"ok": True, "files": shared}

    def _api_apps_connections_open(self, args: Json) -> Json:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/link/?ticket={secrets.token_hex(8)}"}

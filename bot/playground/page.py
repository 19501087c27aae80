"""The playground's HTTP side: the page, its live state, its actions as signed Slack requests."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.http.server import FORGE
from bot.playground import demo_routes
from bot.playground.guard import Guard
from bot.playground.people import channels, people
from bot.playground.session import Playground, refuse_production
from bot.playground.slack_requests import Response, SlackClient
from bot.slack.manifest import SHORTCUTS

STATIC = Path(__file__).with_name("static")
PLAYGROUND = web.AppKey("playground", Playground)
GUARD = web.AppKey("guard", Guard)
CLIENT = web.AppKey("client", SlackClient)
LONG_POLL = 20.0
NO_CACHE = {"Cache-Control": "no-store"}
Json = dict[str, Any]
PNG = b"\x89PNG\r\n\x1a\n"


def mount(app: web.Application, playground: Playground) -> None:
    """Add /playground (the page, its API and the Slack stand-in) to forge's app; never in prod."""
    refuse_production(playground.settings)
    guard = Guard(public=playground.public, bound_host=playground.settings.env.forge_http_host)
    sub = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[guard.middleware])
    sub[PLAYGROUND] = playground
    sub[GUARD] = guard
    sub.add_routes(playground.api.routes())
    sub.router.add_get("/", index)
    sub.router.add_static("/static", STATIC)
    sub.router.add_get("/session", session)
    sub.router.add_get("/state", state)
    sub.router.add_post("/act", act)
    sub.router.add_get("/files/{file_id}", download)
    demo_routes.add(sub, playground)
    sub.cleanup_ctx.append(_client)
    sub.on_shutdown.append(_end_long_polls)
    sub[FORGE] = app[FORGE]
    app.router.add_get("/playground", to_page)
    app.add_subapp("/playground", sub)


async def to_page(_: web.Request) -> web.Response:
    """/playground without its slash: the page is one level down, so its relative links work."""
    raise web.HTTPFound("/playground/")


async def _client(sub: web.Application) -> Any:
    """The signed-request client the page's actions go through, for as long as the app runs."""
    playground = sub[PLAYGROUND]
    secret = playground.settings.env.slack_signing_secret.get_secret_value()  # type: ignore[union-attr]
    sub[CLIENT] = SlackClient(
        playground.events_url.removesuffix("/slack/events"), secret, playground.api
    )
    yield
    await sub[CLIENT].close()


async def _end_long_polls(sub: web.Application) -> None:
    """Answer the pending long polls now, so shutting down does not wait for them."""
    sub[PLAYGROUND].api.close()


async def index(_: web.Request) -> web.FileResponse:
    """The page."""
    return web.FileResponse(STATIC / "index.html", headers=NO_CACHE)


async def session(request: web.Request) -> web.Response:
    """Who one can be (and the role forge resolves now), the channels, and the config's source."""
    playground, forge = request.app[PLAYGROUND], request.app[FORGE]
    users = [
        person | _grant(await forge.dispatcher.actor(person["id"], "playground"))
        for person in people(playground.settings.config, playground.api)
    ]
    csrf, remember = request.app[GUARD].issue(request)
    response = web.json_response(
        {
            "users": users,
            "channels": channels(playground.settings.config, playground.api),
            "note": playground.config_note,
            "environment": playground.settings.environment,
            "shortcuts": SHORTCUTS,
            "csrf": csrf,
            "demo": demo_routes.describe(playground),
        },
        headers=NO_CACHE,
    )
    remember(response)
    return response


def _grant(actor: Any) -> Json:
    return {
        "role": actor.role.name.lower() if actor.role else "none",
        "approver": bool(actor.approver),
    }


async def state(request: web.Request) -> web.Response:
    """One channel as one user sees it; waits for a change past `since` first (long polling)."""
    api = request.app[PLAYGROUND].api
    query = request.query
    since = int(query.get("since", "-1")) if query.get("since", "-1").lstrip("-").isdigit() else -1
    version = await api.wait_change(since, LONG_POLL)
    user, channel = query.get("user", ""), query.get("channel", "")
    stack = api.view_stacks.get(user) or []
    view = api.views.get(stack[-1]) if stack else None
    return web.json_response(
        {
            "version": version,
            "items": timeline(api, channel, user),
            "view": view,
            "home": api.homes.get(user),
            "channels": channels(request.app[PLAYGROUND].settings.config, api),
        },
        headers=NO_CACHE,
    )


def timeline(api: Any, channel: str, user: str) -> list[Json]:
    """Messages, this user's ephemerals and shared files of a channel, in the order they arrived."""
    items: list[Json] = []
    for n, (kind, where, obj) in enumerate(api.feed):
        if where != channel:
            continue
        if kind == "message" and api.is_stored(channel, obj):
            items.append({"kind": "message", "key": obj["ts"], **obj})
        elif kind == "ephemeral" and obj.get("user") == user:
            items.append(
                {
                    "kind": "ephemeral",
                    "key": f"e{n}",
                    "ts": obj.get("message_ts") or f"e{n}",
                    "text": obj["text"],
                    "blocks": obj["blocks"],
                    "thread_ts": obj.get("thread_ts"),
                }
            )
        elif kind == "file":
            items.append(
                {
                    "kind": "file",
                    "key": obj.id,
                    "id": obj.id,
                    "title": obj.title,
                    "name": obj.filename,
                    "size": len(obj.content),
                    "image": obj.content.startswith(PNG),
                    "thread_ts": obj.thread_ts,
                    "comment": obj.initial_comment,
                }
            )
    return items


async def download(request: web.Request) -> web.Response:
    """An uploaded file: a PNG shown inline (the page's <img>), anything else as an attachment."""
    file_id = request.match_info["file_id"]
    upload = next((f for f in request.app[PLAYGROUND].api.files if f.id == file_id), None)
    if upload is None:
        raise web.HTTPNotFound(text="no such file")
    name = upload.filename.replace('"', "")
    picture = upload.content.startswith(PNG)
    return web.Response(
        body=upload.content,
        content_type="image/png" if picture else "application/octet-stream",
        headers={
            "Content-Disposition": f'{"inline" if picture else "attachment"}; filename="{name}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


async def act(request: web.Request) -> web.Response:
    """Do what the person did on the page as Slack would: a signed request to /slack/events."""
    try:
        body = await request.json()
    except ValueError:
        body = None
    kind, user = _text(body, "kind"), _text(body, "user")
    if not kind or not user:
        return web.json_response(
            {"ok": False, "error": "expected a JSON object with kind and user"}, status=400
        )
    handler = ACTIONS.get(kind)
    if handler is None:
        return web.json_response({"ok": False, "error": f"unknown action {kind!r}"}, status=400)
    answer = await handler(request.app, user, body)
    request.app[PLAYGROUND].api.touch()
    return web.json_response(answer)


def _text(body: Any, key: str) -> str:
    """A string field of the page's JSON, or "" when it is missing or not a string."""
    value = body.get(key) if isinstance(body, dict) else None
    return value if isinstance(value, str) else ""


def _answer(response: Response) -> Json:
    """forge's HTTP answer, for the page."""
    text = response.body.strip()
    try:
        parsed = json.loads(text) if text.startswith("{") else None
    except ValueError:
        parsed = None
    return {"ok": response.status == 200, "status": response.status, "body": parsed or text or None}


async def _slash(app: web.Application, user: str, body: Json) -> Json:
    """`/forge …` typed in a channel; plain text is posted, an @forge mention sent as an event."""
    text, channel = _text(body, "text").strip(), _text(body, "channel")
    command, _, rest = text.partition(" ")
    if command == "/forge":
        return _answer(await app[CLIENT].slash(rest.strip(), user=user, channel=channel))
    if text.startswith("/"):
        return {"ok": False, "error": f"{command} is not a command here: only /forge is installed"}
    message = app[PLAYGROUND].api.post_as_user(
        channel, user, text.replace("@forge", "<@U0BOT>"), _text(body, "thread_ts") or None
    )
    if "<@U0BOT>" not in message["text"]:
        return {"ok": True}
    event = {
        "type": "app_mention",
        "user": user,
        "text": message["text"],
        "ts": message["ts"],
        "channel": channel,
        "event_ts": message["ts"],
        "team": "T0FORGE",
    } | ({"thread_ts": message["thread_ts"]} if message.get("thread_ts") else {})
    return _answer(await app[CLIENT].event(event))


async def _click(app: web.Application, user: str, body: Json) -> Json:
    """A button clicked, or an option or a user picked, in a message."""
    channel, ts, action = _text(body, "channel"), _text(body, "ts"), body.get("action")
    action = action if isinstance(action, dict) else {}
    ephemeral = bool(body.get("ephemeral"))
    stored = None if ephemeral else app[PLAYGROUND].api.message_at(channel, ts)
    element = {
        k: action[k]
        for k in ("type", "value", "text", "selected_user", "selected_option")
        if k in action
    }
    response = await app[CLIENT].click(
        str(action.get("action_id", "")),
        str(action.get("value", "")),
        user=user,
        channel=channel,
        message_ts=ts,
        block_id=str(action.get("block_id") or "b"),
        thread_ts=_text(body, "thread_ts") or None,
        element=element,
        message=dict(stored) if stored else None,
        is_ephemeral=ephemeral,
    )
    return _answer(response)


async def _submit(app: web.Application, user: str, body: Json) -> Json:
    """A modal submitted: forge's answer closes it, shows errors in it, or replaces it."""
    api = app[PLAYGROUND].api
    view = api.views.get(_text(body, "view_id"))
    values = body.get("values")
    if view is None:
        return {"ok": False, "error": "that dialog is gone"}
    response = await app[CLIENT].submit_view(
        view.get("callback_id", ""),
        values if isinstance(values, dict) else {},
        user=user,
        private_metadata=view.get("private_metadata", ""),
        view_id=view["id"],
        stored=view,
    )
    answer = _answer(response)
    reply = answer["body"] if isinstance(answer["body"], dict) else {}
    stack = api.view_stacks.get(user) or []
    action = reply.get("response_action")
    if action == "update" and isinstance(reply.get("view"), dict):
        api.replace_view(view["id"], reply["view"])
    elif action == "clear":
        stack.clear()
    elif action != "errors" and answer["ok"] and view["id"] in stack:
        stack.remove(view["id"])
    return answer | {"errors": reply.get("errors") or {}}


async def _close(app: web.Application, user: str, body: Json) -> Json:
    """A modal cancelled."""
    stack = app[PLAYGROUND].api.view_stacks.get(user) or []
    if _text(body, "view_id") in stack:
        stack.remove(body["view_id"])
    return {"ok": True}


async def _home(app: web.Application, user: str, body: Json) -> Json:
    """The Home tab opened: Slack's app_home_opened event."""
    event = {"type": "app_home_opened", "user": user, "channel": "D0HOME", "tab": "home"}
    return _answer(await app[CLIENT].event(event | {"event_ts": f"{time.time():.6f}"}))


async def _home_click(app: web.Application, user: str, body: Json) -> Json:
    """A button clicked on the Home tab."""
    found = body.get("action")
    action: Json = found if isinstance(found, dict) else {}
    home = app[PLAYGROUND].api.homes.get(user)
    return _answer(
        await app[CLIENT].view_click(
            str(action.get("action_id", "")), str(action.get("value", "")), user=user, view=home
        )
    )


async def _shortcut(app: web.Application, user: str, body: Json) -> Json:
    """A shortcut chosen from the menu: global, or on the message at channel/ts."""
    callback_id, ts = _text(body, "callback_id"), _text(body, "ts")
    if not ts:
        return _answer(await app[CLIENT].shortcut(callback_id, user=user))
    channel = _text(body, "channel")
    stored = app[PLAYGROUND].api.message_at(channel, ts)
    if stored is None:
        return {"ok": False, "error": "that message is gone"}
    message = {k: stored[k] for k in ("ts", "text", "user", "bot_id") if k in stored}
    return _answer(
        await app[CLIENT].message_action(callback_id, message, user=user, channel=channel)
    )


async def _suggest(app: web.Application, user: str, body: Json) -> Json:
    """Typing in an external_select: the options forge offers."""
    response = await app[CLIENT].suggest(_text(body, "action_id"), _text(body, "value"), user=user)
    return _answer(response)


ACTIONS = {
    "slash": _slash,
    "click": _click,
    "submit": _submit,
    "close": _close,
    "home": _home,
    "home_click": _home_click,
    "shortcut": _shortcut,
    "suggest": _suggest,
}

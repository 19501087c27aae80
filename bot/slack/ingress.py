"""Slack's requests at the door: the body read, its shape checked, its delivery key; one place.

Every listener may rely on what `problem` checks: a slash command has a user, a channel and text;
a click has its user, its actions and, on a message, its channel; a modal has its user and a view
whose private_metadata is a string; an app mention has its user, channel, ts and text. Anything
else is refused here, with a short reason, before Bolt or a listener touches it. Only the kinds
in CHECKS get in: a listener for a new kind of request needs its check here first.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

Body = dict[str, Any]
USER = re.compile(r"[UW][A-Z0-9]{1,30}")
CHANNEL = re.compile(r"[CGD][A-Z0-9]{1,30}")
EVENT_FIELDS = {
    "app_mention": ("user", "channel", "ts", "text"),
    "app_home_opened": ("user", "tab"),
}
MESSAGE_CONTAINERS = {"message", "message_attachment"}
# buttons whose value is forge's own: a page button's is the command that lists its page
ACTION_VALUES = {"forge_page": re.compile(r"\S.{0,1990} --page \d{1,6}", re.DOTALL)}


@dataclass(frozen=True)
class Refusal:
    """Why a request is not handled, and who sent it as far as the body says."""

    reason: str
    kind: str = "unknown"
    actor: str | None = None
    channel: str | None = None


def read(raw: bytes, content_type: str) -> Body | Refusal:
    """The body as Slack meant it: a JSON object, a form, or a form's `payload` JSON object."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Refusal("the body is not UTF-8")
    if content_type == "application/json" or text.startswith("{"):
        return _object(text, "the JSON body")
    form = dict(parse_qsl(text, keep_blank_values=True))
    return _object(form["payload"], "payload") if "payload" in form else form


def _object(text: str, what: str) -> Body | Refusal:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return Refusal(f"{what} is not JSON")
    return value if isinstance(value, dict) else Refusal(f"{what} is not a JSON object")


def kind_of(body: Body) -> str:
    """slash, block_actions, view_submission, event_callback, …, or unknown."""
    if "command" in body:
        return "slash"
    if "ssl_check" in body:
        return "ssl_check"
    kind = body.get("type")
    return kind if isinstance(kind, str) and kind else "unknown"


def problem(body: Body) -> Refusal | None:
    """Why this body cannot be handled, or None; the one check every listener relies on."""
    kind = kind_of(body)
    check = CHECKS.get(kind)
    if check is not None:
        reason = check(body)
    elif kind == "unknown":
        reason = "not a Slack request: no command and no type"
    else:
        reason = f"not a kind of request forge handles ({kind[:40]})"
    if reason is None:
        return None
    return Refusal(reason, kind, actor_of(body), channel_of(body))


def actor_of(body: Body) -> str | None:
    """The Slack user the body says acted, if it names one well-formed."""
    for value in (body.get("user_id"), _at(body, "user", "id"), _at(body, "event", "user")):
        if isinstance(value, str) and USER.fullmatch(value):
            return value
    return None


def channel_of(body: Body) -> str | None:
    """The channel the body names, if well-formed."""
    for value in (
        body.get("channel_id"),
        _at(body, "channel", "id"),
        _at(body, "container", "channel_id"),
        _at(body, "event", "channel"),
    ):
        if isinstance(value, str) and CHANNEL.fullmatch(value):
            return value
    return None


def _at(body: Any, *path: str) -> Any:
    """body[path[0]][path[1]]…, or None where a step is missing or not an object."""
    for key in path:
        if not isinstance(body, dict):
            return None
        body = body.get(key)
    return body


def _id(value: Any, pattern: re.Pattern[str], what: str) -> str | None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        return f"no valid {what}"
    return None


def _strings(obj: Any, *keys: str, where: str) -> str | None:
    """Each of these keys, when present, holds a string."""
    for key in keys:
        if isinstance(obj, dict) and key in obj and not isinstance(obj[key], str):
            return f"{where}{key} is not a string"
    return None


def _slash(body: Body) -> str | None:
    return (
        _id(body.get("user_id"), USER, "user_id")
        or _id(body.get("channel_id"), CHANNEL, "channel_id")
        or _strings(body, "command", "text", "response_url", "trigger_id", where="")
    )


def _actions(body: Body) -> str | None:
    actions = body.get("actions")
    if not isinstance(actions, list) or not actions:
        return "no actions"
    for action in actions:
        if not isinstance(action, dict) or not isinstance(action.get("action_id"), str):
            return "an action without an action_id"
        found = _strings(action, "value", "block_id", "selected_user", where="action ")
        if found:
            return found
        value_form = ACTION_VALUES.get(action["action_id"].partition(":")[0])
        if value_form and not value_form.fullmatch(action.get("value") or ""):
            return f"a {action['action_id'][:40]} button without its command"
    return None


def _block_actions(body: Body) -> str | None:
    found = _id(_at(body, "user", "id"), USER, "user")
    found = found or _actions(body) or _shapes(body, "container", "message", "channel", "state")
    on_message = _at(body, "container", "type") in (None, *MESSAGE_CONTAINERS)
    if not found and on_message and channel_of(body) is None:
        found = "no channel"
    return found or _strings(body, "response_url", "trigger_id", where="")


def _shapes(body: Body, *keys: str) -> str | None:
    """Each of these keys, when present and not null, holds an object."""
    for key in keys:
        if body.get(key) is not None and not isinstance(body[key], dict):
            return f"{key} is not an object"
    return None


def _view(body: Body) -> str | None:
    view = body.get("view")
    found = _id(_at(body, "user", "id"), USER, "user")
    if found or not isinstance(view, dict):
        return found or "no view"
    found = _strings(view, "private_metadata", "id", "hash", where="view ")
    for key in ("callback_id", "type"):
        if not isinstance(view.get(key), str):
            found = found or f"no view {key}"
    values = _at(view, "state", "values")
    if values is not None and not (
        isinstance(values, dict)
        and all(
            isinstance(block, dict) and all(isinstance(v, dict) for v in block.values())
            for block in values.values()
        )
    ):
        found = found or "view state values are not objects of objects"
    return found


def _event(body: Body) -> str | None:
    event = body.get("event")
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return "no event, or an event without a type"
    found = _strings(body, "event_id", "team_id", where="")
    for field in EVENT_FIELDS.get(event["type"], ()):
        if not isinstance(event.get(field), str):
            found = found or f"{event['type']} without {field}"
    return found or _strings(event, "thread_ts", "bot_id", where="event ")


def _url_verification(body: Body) -> str | None:
    return _strings(body, "challenge", where="") or (
        None if "challenge" in body else "no challenge"
    )


def _user_and_callback(body: Body) -> str | None:
    """A shortcut (global or on a message): its user, callback, trigger, and the message's shape."""
    return (
        _id(_at(body, "user", "id"), USER, "user")
        or (None if isinstance(body.get("callback_id"), str) else "no callback_id")
        or _strings(body, "trigger_id", "response_url", "message_ts", where="")
        or _shapes(body, "channel", "message", "team")
    )


def _suggestion(body: Body) -> str | None:
    """A picker asking for options: its user, its action and the text typed so far."""
    return (
        _id(_at(body, "user", "id"), USER, "user")
        or (None if isinstance(body.get("action_id"), str) else "no action_id")
        or _strings(body, "value", "block_id", where="")
    )


CHECKS = {
    "ssl_check": lambda _: None,
    "slash": _slash,
    "block_actions": _block_actions,
    "view_submission": _view,
    "view_closed": _view,
    "event_callback": _event,
    "url_verification": _url_verification,
    "shortcut": _user_and_callback,
    "message_action": _user_and_callback,
    "block_suggestion": _suggestion,
}


def delivery_key(body: Body, raw: str) -> str | None:
    """What makes a delivery the same one again: an event's id (Slack's retries), else the body's
    bytes (a replay, or a retry of anything else); None for what is answered the same anyway
    (a picker asking twice for the same typed text gets its options twice)."""
    if kind_of(body) in ("url_verification", "ssl_check", "block_suggestion"):
        return None
    if kind_of(body) == "event_callback" and isinstance(body.get("event_id"), str):
        return f"event:{body.get('team_id')}:{body['event_id']}"
    content = raw or json.dumps(body, sort_keys=True, separators=(",", ":"))
    return "body:" + hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()

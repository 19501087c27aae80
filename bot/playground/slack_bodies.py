"""The bodies Slack really sends: slash commands, clicks, modal submissions and events."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

from bot.playground.slack_types import APP_ID, BOT_USER, TEAM_ID

VERIFICATION_TOKEN = "verification-token-unused"  # legacy field Slack still sends; bolt ignores it
TEAM_DOMAIN = "forge-test"
DEFAULT_MESSAGE_TS = "1700000000.000100"


def make_trigger_id() -> str:
    """A well-formed trigger id not issued by any double."""
    return f"{int(time.time())}.{secrets.randbelow(10**12):012d}.{secrets.token_hex(16)}"


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
    payload: dict[str, Any] = {
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
    """A modal submission's form body; `values` is view.state.values, `stored` the opened view."""
    view: dict[str, Any] = {
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


def shortcut_body(callback_id: str, *, user: str = "U0VIEW", trigger_id: str | None = None) -> str:
    """A global shortcut chosen from the shortcuts menu: no channel, a trigger id."""
    payload = {
        "type": "shortcut",
        "token": VERIFICATION_TOKEN,
        "action_ts": f"{time.time():.6f}",
        "team": _team(),
        "user": _user(user),
        "is_enterprise_install": False,
        "enterprise": None,
        "callback_id": callback_id,
        "trigger_id": trigger_id or make_trigger_id(),
    }
    return urlencode({"payload": json.dumps(payload)})


def message_action_body(
    callback_id: str,
    message: dict[str, Any],
    *,
    user: str = "U0VIEW",
    channel: str = "C0OPS",
    trigger_id: str | None = None,
    response_url: str = "https://hooks.slack.com/app/T0FORGE/1/unused",
) -> str:
    """A message shortcut chosen on `message` in `channel`."""
    payload = {
        "type": "message_action",
        "token": VERIFICATION_TOKEN,
        "action_ts": f"{time.time():.6f}",
        "team": _team(),
        "user": _user(user),
        "channel": {"id": channel, "name": _channel_name(channel)},
        "is_enterprise_install": False,
        "enterprise": None,
        "callback_id": callback_id,
        "trigger_id": trigger_id or make_trigger_id(),
        "response_url": response_url,
        "message_ts": message.get("ts", DEFAULT_MESSAGE_TS),
        "message": {"type": "message", **message},
    }
    return urlencode({"payload": json.dumps(payload)})


def block_suggestion_body(
    action_id: str, value: str, *, user: str = "U0VIEW", block_id: str = "b", view_id: str = ""
) -> str:
    """What Slack asks when someone types into an external_select (in a modal or on Home)."""
    payload = {
        "type": "block_suggestion",
        "user": _user(user),
        "container": {"type": "view", "view_id": view_id or "V0FORGE01"},
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "action_id": action_id,
        "block_id": block_id,
        "value": value,
        "team": _team(),
        "enterprise": None,
        "is_enterprise_install": False,
    }
    return urlencode({"payload": json.dumps(payload)})


def view_action_body(
    action_id: str,
    value: str,
    *,
    user: str = "U0VIEW",
    view: dict[str, Any] | None = None,
    trigger_id: str | None = None,
    block_id: str = "b",
) -> str:
    """A button clicked in a view (the Home tab, say): the view is the container, no channel."""
    view = view or {"id": "V0HOME01", "type": "home", "callback_id": "", "private_metadata": ""}
    payload = {
        "type": "block_actions",
        "user": _user(user),
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "container": {"type": "view", "view_id": view.get("id", "V0HOME01")},
        "trigger_id": trigger_id or make_trigger_id(),
        "team": _team(),
        "enterprise": None,
        "is_enterprise_install": False,
        "view": {**view, "state": {"values": {}}, "hash": f"{time.time():.6f}.abc"},
        "actions": [
            {
                "action_id": action_id,
                "block_id": block_id,
                "text": {"type": "plain_text", "text": "Button"},
                "value": value,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)})

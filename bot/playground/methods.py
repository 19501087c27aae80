"""The Slack stand-in's Web API methods: _api_<method, dots as underscores>(args) -> JSON body."""

from __future__ import annotations

import secrets
import time
from typing import Any

from bot.playground.slack_types import (
    APP_ID,
    BOT_ID,
    BOT_USER,
    TEAM_ID,
    TRIGGER_RE,
    Json,
    UploadedFile,
    err,
    missing,
)
from bot.playground.table_rules import table_error


class MethodsMixin:
    """chat.*, views.*, conversations.*, usergroups.*, files.*, auth.test on SlackWebApi's state."""

    def _api_auth_test(self, args: Json) -> Json:
        return {
            "ok": True,
            "url": "https://forge-test.slack.com/",
            "team": "Forge Test",
            "user": "forge",
            "team_id": TEAM_ID,
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _api_chat_postMessage(self, args: Json) -> Json:
        if error := missing(args, channel="channel_not_found"):
            return error
        if not (args.get("text") or args.get("blocks") or args.get("attachments")):
            return err("no_text")
        if error := table_error(args.get("blocks")):
            return error
        if self._unknown_image(args):
            return err("invalid_blocks")
        message = self._store(args["channel"], args)
        return {
            "ok": True,
            "channel": args["channel"],
            "ts": message["ts"],
            "message": dict(message),
        }

    def _api_chat_update(self, args: Json) -> Json:
        message = self._find(args.get("channel"), args.get("ts"))
        if message is None:
            return err("message_not_found")
        if error := table_error(args.get("blocks")):
            return error
        if self._unknown_image(args):
            return err("invalid_blocks")
        message |= {k: args[k] for k in ("text", "blocks", "attachments", "metadata") if k in args}
        message["edited"] = {"user": BOT_USER, "ts": self._next_ts()}
        return {
            "ok": True,
            "channel": args["channel"],
            "ts": message["ts"],
            "text": message["text"],
            "message": dict(message),
        }

    def _unknown_image(self, args: Json) -> bool:
        """True when an image block names a Slack file that was never uploaded, as Slack refuses."""
        blocks = args.get("blocks")
        known = {f.id for f in self.files}
        return isinstance(blocks, list) and any(
            isinstance(b, dict)
            and b.get("type") == "image"
            and "slack_file" in b
            and (b["slack_file"] or {}).get("id") not in known
            for b in blocks
        )

    def _api_chat_delete(self, args: Json) -> Json:
        message = self._find(args.get("channel"), args.get("ts"))
        if message is None:
            return err("message_not_found")
        self._messages[args["channel"]].remove(message)
        return {"ok": True, "channel": args["channel"], "ts": message["ts"]}

    def _api_chat_postEphemeral(self, args: Json) -> Json:
        if error := missing(args, channel="channel_not_found", user="user_not_in_channel"):
            return error
        if error := table_error(args.get("blocks")):
            return error
        ts = self._next_ts()
        self._ephemeral(args["channel"], args["user"], args, message_ts=ts)
        return {"ok": True, "message_ts": ts}

    def _api_views_open(self, args: Json) -> Json:
        return self._open_view(args, push=False)

    def _api_views_push(self, args: Json) -> Json:
        return self._open_view(args, push=True)  # push needs a fresh trigger_id too

    def _open_view(self, args: Json, *, push: bool) -> Json:
        trigger_id = args.get("trigger_id")
        error = self._exchange_trigger(trigger_id)
        if error:
            return err(error)
        if not isinstance(args.get("view"), dict):
            return err("invalid_arguments")
        view = self._save_view(self._next_id("V"), args["view"])
        user = self._triggers.get(trigger_id, (0.0, None))[1]
        if user is not None:
            stack = self.view_stacks.get(user, []) if push else []
            self.view_stacks[user] = [*stack, view["id"]]
        return {"ok": True, "view": view}

    def _api_views_update(self, args: Json) -> Json:
        view_id = args.get("view_id")
        if view_id not in self.views:
            return err("not_found")
        if args.get("hash") and args["hash"] != self.views[view_id]["hash"]:
            return err("hash_conflict")
        if not isinstance(args.get("view"), dict) or not isinstance(view_id, str):
            return err("invalid_arguments")
        return {"ok": True, "view": self._save_view(view_id, args["view"])}

    def _api_views_publish(self, args: Json) -> Json:
        user, view = args.get("user_id"), args.get("view")
        if not isinstance(user, str) or not user:
            return err("invalid_arguments")
        if not isinstance(view, dict) or view.get("type") != "home":
            return err("invalid_arguments")
        home = self.homes.get(user)
        if args.get("hash") and home and args["hash"] != home["hash"]:
            return err("hash_conflict")
        saved = self._save_view(home["id"] if home else self._next_id("V"), view)
        self.homes[user] = saved
        return {"ok": True, "view": saved}

    def _exchange_trigger(self, trigger_id: Any) -> str | None:
        """Consume a trigger id; the Slack error code if it cannot be used."""
        if not isinstance(trigger_id, str) or not TRIGGER_RE.match(trigger_id):
            return "invalid_trigger_id"
        if trigger_id in self._used_triggers:
            return "exchanged_trigger_id"
        self._used_triggers.add(trigger_id)
        issued = self._triggers.get(trigger_id)
        return (
            "expired_trigger_id"
            if issued is not None and time.monotonic() - issued[0] > self.trigger_ttl
            else None
        )

    def _save_view(self, view_id: str, view: Json) -> Json:
        base = self.views.get(view_id) or {
            "id": view_id,
            "team_id": TEAM_ID,
            "app_id": APP_ID,
            "bot_id": BOT_ID,
            "type": "modal",
            "blocks": [],
            "private_metadata": "",
            "callback_id": "",
            "external_id": "",
            "state": {"values": {}},
            "root_view_id": view_id,
            "previous_view_id": None,
            "clear_on_close": False,
            "notify_on_close": False,
        }
        self.views[view_id] = {
            **base,
            **view,
            "id": view_id,
            "hash": f"{time.time():.6f}.{secrets.token_hex(4)}",
        }
        return dict(self.views[view_id])

    def _api_usergroups_users_list(self, args: Json) -> Json:
        users = self.usergroups.get(str(args.get("usergroup")))
        return err("no_such_subteam") if users is None else {"ok": True, "users": list(users)}

    def _api_conversations_info(self, args: Json) -> Json:
        if error := missing(args, channel="channel_not_found"):
            return error
        channel = args["channel"]
        return {
            "ok": True,
            "channel": {
                "id": channel,
                "name": self.channel_names.get(channel, channel.lower()),
                "is_channel": True,
                "is_private": False,
                "is_member": True,
                "is_archived": False,
                "created": 1_700_000_000,
            },
        }

    def _api_conversations_create(self, args: Json) -> Json:
        name = str(args.get("name") or "")
        if not name or len(name) > 80 or name != name.lower() or " " in name:
            return err("invalid_name")
        if name in self.channel_names.values():
            return err("name_taken")
        channel = f"C0NEW{len(self.channel_names) + 1:04d}"
        self.channel_names[channel] = name
        self.members[channel] = {BOT_USER}
        return {
            "ok": True,
            "channel": {
                "id": channel,
                "name": name,
                "is_channel": True,
                "is_private": False,
                "created": 1_700_000_000,
                "creator": BOT_USER,
            },
        }

    def _api_conversations_invite(self, args: Json) -> Json:
        channel = str(args.get("channel") or "")
        if channel not in self.members:
            return err("channel_not_found")
        self.members[channel].update(u for u in str(args.get("users") or "").split(",") if u)
        return {"ok": True, "channel": {"id": channel, "name": self.channel_names[channel]}}

    def _api_files_getUploadURLExternal(self, args: Json) -> Json:
        if (error := missing(args, filename="invalid_arguments")) or not str(
            args.get("length")
        ).isdigit():
            return error or err("invalid_arguments")
        file_id = self._next_id("F")
        self._uploads[file_id] = UploadedFile(file_id, args["filename"], int(args["length"]))
        return {"ok": True, "upload_url": f"{self.base}/upload/{file_id}", "file_id": file_id}

    def _api_files_completeUploadExternal(self, args: Json) -> Json:
        wanted = args.get("files")
        if not isinstance(wanted, list) or not wanted:
            return err("invalid_arguments")
        if any(item.get("id") not in self._uploads for item in wanted):
            return err("file_not_found")
        return {
            "ok": True,
            "files": [self._share(self._uploads.pop(item["id"]), item, args) for item in wanted],
        }

    def _share(self, upload: UploadedFile, item: Json, args: Json) -> Json:
        """Complete one upload: keep it, show it in its channel, and describe it as Slack does."""
        upload.title = item.get("title") or upload.filename
        upload.channel_id, upload.initial_comment = (
            args.get("channel_id"),
            args.get("initial_comment"),
        )
        upload.thread_ts = args.get("thread_ts")
        self.files.append(upload)
        self.feed.append(("file", upload.channel_id or "", upload))
        return {
            "id": upload.id,
            "name": upload.filename,
            "title": upload.title,
            "user": BOT_USER,
            "size": len(upload.content),
            **_file_type(upload.content),
            "channels": [upload.channel_id] if upload.channel_id else [],
        }


def _file_type(content: bytes) -> Json:
    """Slack's mimetype and filetype of an upload: PNG pictures, else text."""
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return {"mimetype": "image/png", "filetype": "png"}
    return {"mimetype": "text/plain", "filetype": "text"}

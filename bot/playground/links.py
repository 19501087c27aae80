"""The Slack stand-in's links to the outside: the upload URLs and response_url."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from bot.playground.slack_types import MAX_RESPONSES, Json, ResponseUrl
from bot.playground.table_rules import table_error


class LinksMixin:
    """Uploads and response_url posts for SlackWebApi, which owns the state they touch."""

    async def _upload(self, request: web.Request) -> web.Response:
        if request.content_type == "multipart/form-data":
            content = next(
                v.file.read()
                for v in (await request.post()).values()
                if isinstance(v, web.FileField)
            )
        else:
            content = await request.read()  # slack_sdk posts the raw bytes
        file_id = request.match_info["file_id"]
        call = self._record("upload", {"file_id": file_id, "length": len(content)}, request)
        if file_id not in self._uploads:
            call.status = 404
            return web.Response(status=404, text="file_not_found")
        self._uploads[file_id].content = content
        return web.Response(text=f"OK - {len(content)}")

    async def _response(self, request: web.Request) -> web.Response:
        url_id = request.match_info["url_id"]
        try:
            body = await request.json()
        except ValueError:
            body = None
        call = self._record(
            "response_url", {"url_id": url_id, **(body if isinstance(body, dict) else {})}, request
        )
        scripted = await self._scripted("response_url")
        status, text = (
            (scripted[0], scripted[1]["error"]) if scripted else self._respond(url_id, body)
        )
        call.status = status
        self.touch()
        return web.Response(status=status, text=text)

    def _respond(self, url_id: str, body: Any) -> tuple[int, str]:
        entry = self._response_urls.get(url_id)
        if entry is None:
            return 404, "no_service"
        if time.monotonic() - entry.issued > self.response_url_ttl:
            return 404, "expired_url"
        if entry.uses >= MAX_RESPONSES:
            return 404, "used_url"
        if not isinstance(body, dict):
            return 400, "invalid_payload"
        if table_error(body.get("blocks")):
            return 400, "invalid_blocks"
        entry.uses += 1
        self.responses.append({"url_id": url_id, **body})
        self._apply_response(entry, body)
        return 200, "ok"

    def _apply_response(self, entry: ResponseUrl, body: Json) -> None:
        """What the user sees: original replaced or deleted, a channel message, or an ephemeral."""
        original = self._find(entry.channel, entry.message_ts)
        if body.get("delete_original") and original:
            self._messages[str(entry.channel)].remove(original)
        elif body.get("replace_original") and original:
            original |= {k: body[k] for k in ("text", "blocks") if k in body}
        elif body.get("response_type") == "in_channel" and entry.channel:
            self._store(entry.channel, body)
        elif entry.channel:
            self._ephemeral(entry.channel, entry.user, body, via="response_url")

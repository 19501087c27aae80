"""The Slack double's links to the outside: upload URLs, response_url and the Socket Mode WebSocket."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

APP_ID = "A0FORGE"
MAX_RESPONSES = 5  # Slack accepts five posts per response_url (within 30 minutes)
Json = dict[str, Any]


@dataclass
class _ResponseUrl:
    channel: str | None
    user: str | None
    message_ts: str | None
    issued: float
    uses: int = 0


class LinksMixin:
    """Uploads, response_url posts and Socket Mode for SlackDouble, which owns the state they touch."""

    async def wait_for_ack(self, envelope_id: str, timeout: float = 3.0) -> Json:
        """Wait for the Socket Mode client to acknowledge an envelope; the ack."""
        def find() -> Json | None:
            return next((a for a in self.socket_acks if a.get("envelope_id") == envelope_id), None)
        await self._poll(lambda: find() is not None, timeout,
                         lambda: f"no ack for envelope {envelope_id} within {timeout}s; acks: {self.socket_acks}")
        return find()  # type: ignore[return-value]

    # upload URL and response_url

    async def _upload(self, request: web.Request) -> web.Response:
        if request.content_type == "multipart/form-data":
            content = next(v.file.read() for v in (await request.post()).values() if isinstance(v, web.FileField))
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
        call = self._record("response_url", {"url_id": url_id, **(body if isinstance(body, dict) else {})}, request)
        scripted = await self._scripted("response_url")
        status, text = (scripted[0], scripted[1]["error"]) if scripted else self._respond(url_id, body)
        call.status = status
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
        entry.uses += 1
        self.responses.append({"url_id": url_id, **body})
        self._apply_response(entry, body)
        return 200, "ok"

    def _apply_response(self, entry: _ResponseUrl, body: Json) -> None:
        """What the user would see: the original replaced or deleted, a channel message, or an ephemeral."""
        original = self._find(entry.channel, entry.message_ts)
        if body.get("delete_original") and original:
            self._messages[str(entry.channel)].remove(original)
        elif body.get("replace_original") and original:
            original |= {k: body[k] for k in ("text", "blocks") if k in body}
        elif body.get("response_type") == "in_channel" and entry.channel:
            self._store(entry.channel, body)
        elif entry.channel:
            self._ephemeral(entry.channel, entry.user, body, via="response_url")

    # Socket Mode

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()  # autoping answers the client's pings with pongs
        await ws.prepare(request)
        self._sockets.append(ws)
        self.socket_connections += 1
        self.socket_connected.set()
        await ws.send_json({"type": "hello", "num_connections": len(self._sockets),
                            "debug_info": {"host": "applink-forge-double", "approximate_connection_time": 18060},
                            "connection_info": {"app_id": APP_ID}})
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    ack = json.loads(message.data) if message.data.startswith("{") else None
                    self.socket_acks.append(ack if isinstance(ack, dict) else {"raw": message.data})
        finally:
            self._sockets.remove(ws)
            if not self._sockets:
                self.socket_connected.clear()
        return ws

    async def _socket(self, timeout: float = 3.0) -> web.WebSocketResponse:
        try:
            await asyncio.wait_for(self.socket_connected.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"no Socket Mode client connected within {timeout}s") from None
        return self._sockets[-1]

    async def send_envelope(self, type_: str, payload: Json, *, retry_attempt: int | None = None,
                            retry_reason: str | None = None) -> str:
        """Push a slash_commands / interactive / events_api envelope to the newest socket; its envelope_id."""
        envelope_id = secrets.token_hex(16)
        envelope: Json = {"envelope_id": envelope_id, "type": type_, "payload": payload,
                          "accepts_response_payload": type_ != "events_api"}
        if type_ == "events_api" or retry_attempt is not None or retry_reason is not None:
            envelope |= {"retry_attempt": retry_attempt or 0, "retry_reason": retry_reason or ""}
        await (await self._socket()).send_json(envelope)
        self.envelopes.append(envelope)
        return envelope_id

    async def send_disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask the client to reconnect, as Slack does before recycling a socket."""
        await (await self._socket()).send_json({"type": "disconnect", "reason": reason,
                                                "debug_info": {"host": "applink-forge-double"}})

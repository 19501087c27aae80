"""The Slack double's Socket Mode: the WebSockets for pushed envelopes, and the acks it records.

As Slack does with an app's several connections, each envelope goes to one connection only (in
turn); an envelope a connection had not acked when it closed is delivered again on another one,
with retry_attempt raised, as soon as one is open.
"""

from __future__ import annotations

import asyncio
import json
import secrets

from aiohttp import WSMsgType, web

from bot.playground.slack_types import APP_ID, Json


class SocketModeMixin:
    """Socket Mode for SlackDouble, which owns the state it touches."""

    async def wait_for_ack(self, envelope_id: str, timeout: float = 3.0) -> Json:
        """Wait for the Socket Mode client to acknowledge an envelope; the ack."""

        def find() -> Json | None:
            return next((a for a in self.socket_acks if a.get("envelope_id") == envelope_id), None)

        await self._poll(
            lambda: find() is not None,
            timeout,
            lambda: (
                f"no ack for envelope {envelope_id} within {timeout}s; acks: {self.socket_acks}"
            ),
        )
        return find()  # type: ignore[return-value]

    @property
    def open_sockets(self) -> int:
        """How many Socket Mode connections are open now."""
        return len(self._sockets)

    # Socket Mode

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()  # autoping answers the client's pings with pongs
        await ws.prepare(request)
        self._sockets.append(ws)
        self.socket_connections += 1
        self.socket_connected.set()
        await self._redeliver()
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": len(self._sockets),
                "debug_info": {
                    "host": "applink-forge-double",
                    "approximate_connection_time": 18060,
                },
                "connection_info": {"app_id": APP_ID},
            }
        )
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    ack = json.loads(message.data) if message.data.startswith("{") else None
                    self.socket_acks.append(ack if isinstance(ack, dict) else {"raw": message.data})
                    if isinstance(ack, dict):
                        self._unacked.pop(str(ack.get("envelope_id")), None)
        finally:
            self._sockets.remove(ws)
            if not self._sockets:
                self.socket_connected.clear()
            await self._redeliver()
        return ws

    async def _redeliver(self) -> None:
        """Envelopes whose connection closed unacked go, each once more, to an open connection."""
        for envelope_id, (ws, envelope) in list(self._unacked.items()):
            if ws in self._sockets or not self._sockets:
                continue
            again = envelope | {
                "retry_attempt": int(envelope.get("retry_attempt") or 0) + 1,
                "retry_reason": "connection_closed",
            }
            target = self._pick()
            self._unacked[envelope_id] = (target, again)
            self.redelivered.append(envelope_id)
            await self._push(target, again)

    @staticmethod
    def _ticket() -> str:
        return secrets.token_hex(8)

    async def _socket(self, timeout: float = 3.0) -> web.WebSocketResponse:
        try:
            await asyncio.wait_for(self.socket_connected.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"no Socket Mode client connected within {timeout}s") from None
        return self._sockets[-1]

    def _pick(self) -> web.WebSocketResponse:
        """The next open connection, in turn."""
        self._turn = (self._turn + 1) % len(self._sockets)
        return self._sockets[self._turn]

    async def _push(self, ws: web.WebSocketResponse, envelope: Json) -> None:
        self.deliveries.append((envelope["envelope_id"], id(ws)))
        try:
            await ws.send_json(envelope)
        except (ConnectionError, RuntimeError):
            pass  # the connection is closing; its close redelivers the envelope

    async def send_envelope(
        self,
        type_: str,
        payload: Json,
        *,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
        spread: bool = False,
    ) -> str:
        """Push an envelope (slash_commands, interactive, events_api) to the last socket, or with
        `spread` to each open connection in turn; its id."""
        envelope_id = secrets.token_hex(16)
        envelope: Json = {
            "envelope_id": envelope_id,
            "type": type_,
            "payload": payload,
            "accepts_response_payload": type_ != "events_api",
        }
        if type_ == "events_api" or retry_attempt is not None or retry_reason is not None:
            envelope |= {"retry_attempt": retry_attempt or 0, "retry_reason": retry_reason or ""}
        ws = await self._socket()
        if spread:
            ws = self._pick()
        self.envelopes.append(envelope)
        self._unacked[envelope_id] = (ws, envelope)
        await self._push(ws, envelope)
        return envelope_id

    async def send_disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask the client to reconnect, as Slack does before recycling a socket."""
        await (await self._socket()).send_json(
            {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-forge-double"}}
        )

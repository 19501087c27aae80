"""The playground's doors: its own Host names only, and acts only as same-origin JSON with a token.

The page lets anyone act as anyone, so a request that changes something must come from the page
itself: a POST whose `Origin` is the page's own, whose `Sec-Fetch-Site` (when the browser sends
it) is `same-origin`, whose body is `application/json`, and which carries the CSRF token the page
got from `/playground/session` for its session cookie. The stand-in's Slack routes serve forge's
own Slack client, which is no browser: a request a browser sent there is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from bot.log import get_logger

log = get_logger(__name__)
COOKIE = "forge_playground_session"
HEADER = "X-Forge-CSRF"
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}
STAND_IN = ("/playground/api/", "/playground/upload/", "/playground/response/")
READS = {"GET", "HEAD"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def host_name(host: str) -> str:
    """The name part of a Host header: `[::1]:3100` -> `::1`, `Localhost:80` -> `localhost`."""
    try:
        return (urlsplit(f"http://{host}").hostname or "").lower()
    except ValueError:
        return ""


class Guard:
    """Checks every playground request; mints and checks the per-session CSRF tokens."""

    def __init__(self, *, public: bool, bound_host: str) -> None:
        self.public = public
        self._names = LOOPBACK_NAMES | {bound_host.lower()}
        self._key = secrets.token_bytes(32)

    def token(self, session_id: str) -> str:
        """The CSRF token of one session: an HMAC of its cookie under this process's key."""
        return hmac.new(self._key, session_id.encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def session_id(request: web.Request) -> str | None:
        """The request's session cookie, when it is one this guard could have set."""
        session_id = request.cookies.get(COOKIE, "")
        return session_id if len(session_id) == 32 and session_id.isalnum() else None

    def issue(self, request: web.Request) -> tuple[str, Callable[[web.StreamResponse], None]]:
        """The session's token, and what sets the cookie of a new session on the response."""
        session_id = self.session_id(request)
        if session_id is not None:
            return self.token(session_id), lambda _: None
        fresh = secrets.token_hex(16)

        def set_cookie(response: web.StreamResponse) -> None:
            response.set_cookie(COOKIE, fresh, path="/playground", httponly=True, samesite="Strict")

        return self.token(fresh), set_cookie

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Refuse before any handler runs: 403 for a stranger, 415 for a body that is not JSON."""
        refusal = self.refusal(request)
        if refusal is not None:
            status, reason = refusal
            log.warning(
                "playground_request_refused",
                path=request.path[:100],
                method=request.method,
                status=status,
                reason=reason,
            )
            return web.json_response({"ok": False, "error": reason}, status=status)
        return await handler(request)

    def refusal(self, request: web.Request) -> tuple[int, str] | None:
        """Why this request may not go on (status, reason), or None."""
        if not self.public and host_name(request.host) not in self._names:
            return 403, "the playground answers only on its loopback address"
        if request.path.startswith(STAND_IN):
            return self._for_forge_only(request)
        if request.method in READS:
            return None
        return self._same_origin(request) or self._json(request) or self._csrf(request)

    @staticmethod
    def _for_forge_only(request: web.Request) -> tuple[int, str] | None:
        if "Origin" in request.headers or "Sec-Fetch-Site" in request.headers:
            return 403, "the Slack stand-in answers forge, not a browser"
        return None

    @staticmethod
    def _same_origin(request: web.Request) -> tuple[int, str] | None:
        origin = request.headers.get("Origin", "")
        try:
            netloc = urlsplit(origin).netloc.lower()
        except ValueError:
            netloc = ""
        if not origin or netloc != request.host.lower():
            return 403, "only the playground's own page may act (Origin)"
        if request.headers.get("Sec-Fetch-Site", "same-origin") != "same-origin":
            return 403, "only the playground's own page may act (Sec-Fetch-Site)"
        return None

    @staticmethod
    def _json(request: web.Request) -> tuple[int, str] | None:
        if request.content_type != "application/json":
            return 415, "acts are application/json"
        return None

    def _csrf(self, request: web.Request) -> tuple[int, str] | None:
        session_id = self.session_id(request)
        given = request.headers.get(HEADER, "").encode("utf-8", "replace")
        if session_id is None or not hmac.compare_digest(given, self.token(session_id).encode()):
            return 403, "missing or wrong CSRF token: reload the page"
        return None

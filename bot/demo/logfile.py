"""The demo's `backend.log`: ClientForge's winston lines, a few carrying secrets as real logs do."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

MAX_BYTES = 4 * 1024 * 1024  # past this the log starts over, so a forgotten demo stays small
ROUTES = (
    ("GET", "/api/v1/contacts?page=2", 200),
    ("GET", "/api/v1/deals?stage=proposal", 200),
    ("POST", "/api/v1/search", 200),
    ("PATCH", "/api/v1/deals/4121", 200),
    ("GET", "/api/v1/contacts/99999", 404),
    ("POST", "/api/v1/auth/login", 401),
)
# Every 10th line: what leaks into real logs. `logs` shows each one redacted.
LEAKS = (
    "error: [mailer] SMTP auth failed for smtp://mailer:Sup3r-s3cret-relay@smtp.clientforge.example:587",
    "debug: [billing] Stripe request with api_key=sk_live_51HdemoDemoDemo4eC39HqLyjWDarjtT1zdp7dc",
    "warn: [auth] rejected Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJkZW1vIn0.c2ln",
    "error: [db] connection lost: postgresql://crm_admin:crm-Pa55word@db.internal:5432/clientforge_crm",
)


class BackendLog:
    """Appends lines to one file, starting over past MAX_BYTES."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def line(self, level: str, message: str) -> None:
        """One timestamped line."""
        if self.path.exists() and self.path.stat().st_size > MAX_BYTES:
            self.path.write_text("", encoding="utf-8")
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        with self.path.open("a", encoding="utf-8") as out:
            out.write(f"{stamp} {level}: {message}\n")

    def api_line(self, n: int) -> None:
        """The n-th line of the API's own traffic."""
        if n % 10 == 3:
            level, _, message = LEAKS[(n // 10) % len(LEAKS)].partition(": ")
            self.line(level, message)
            return
        method, path, status = ROUTES[n % len(ROUTES)]
        level = "info" if status < 400 else "warn"
        self.line(level, f"[http] {method} {path} {status} {12 + (n * 37) % 400}ms tenant=acme")

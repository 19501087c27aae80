"""What the Slack stand-in's parts share: identities, error bodies, recorded calls, uploads."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

APP_ID = "A0FORGE"
TEAM_ID, BOT_USER, BOT_ID = "T0FORGE", "U0BOT", "B0BOT"
SCOPES = "chat:write,chat:write.public,commands,files:write,usergroups:read,channels:read"
TRIGGER_RE = re.compile(r"^\d+\.\d+\.[0-9A-Za-z]+$")
JSON_ARGS = (
    "blocks",
    "attachments",
    "view",
    "files",
    "metadata",
)  # JSON strings when sent form-encoded
MAX_RESPONSES = 5  # Slack accepts five posts per response_url (within 30 minutes)

Json = dict[str, Any]
Result = tuple[int, Json, dict[str, str]]  # HTTP status, JSON body, extra headers


def err(error: str) -> Json:
    """Slack's error body."""
    return {"ok": False, "error": error}


def missing(args: Json, **errors: str) -> Json | None:
    """The error body for the first required argument that is absent, if any."""
    return next((err(error) for name, error in errors.items() if not args.get(name)), None)


@dataclass
class Call:
    """One request the stand-in received."""

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
class ResponseUrl:
    """A response_url issued for one interaction."""

    channel: str | None
    user: str | None
    message_ts: str | None
    issued: float
    uses: int = 0

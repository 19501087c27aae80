"""Off-site copies: each dump PUT to S3-compatible storage (R2, MinIO, AWS), SigV4 over httpx."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx

from bot.backends.clients import call
from bot.config.settings import Settings
from bot.core.context import Context
from bot.core.errors import BackendError, BackendUnavailable, CommandError

CHUNK = 1 << 20


@dataclass(frozen=True)
class Bucket:
    """Where copies go: `FORGE_BACKUP_S3_URL` is `https://endpoint/bucket[/prefix]` (path style)."""

    endpoint: str
    path: str
    key_id: str
    secret: str
    region: str

    def url(self, name: str) -> str:
        """The object URL of one dump."""
        return f"{self.endpoint}{quote(self.path.rstrip('/') + '/' + name, safe='/-_.~')}"


def bucket(settings: Settings) -> Bucket | None:
    """The configured bucket, or None when off-site copies are not set up."""
    env = settings.env
    if not env.forge_backup_s3_url:
        return None
    parts = urlsplit(env.forge_backup_s3_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/") == "":
        raise CommandError(
            "FORGE_BACKUP_S3_URL must look like https://host/bucket or https://host/bucket/prefix."
        )
    if not (env.forge_backup_s3_access_key_id and env.forge_backup_s3_secret_access_key):
        raise CommandError(
            "FORGE_BACKUP_S3_URL is set but FORGE_BACKUP_S3_ACCESS_KEY_ID or "
            "FORGE_BACKUP_S3_SECRET_ACCESS_KEY is not."
        )
    return Bucket(
        f"{parts.scheme}://{parts.netloc}",
        "/" + parts.path.strip("/"),
        env.forge_backup_s3_access_key_id.get_secret_value(),
        env.forge_backup_s3_secret_access_key.get_secret_value(),
        env.forge_backup_s3_region,
    )


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signed(method: str, url: str, payload_sha256: str, b: Bucket, now: datetime) -> dict[str, str]:
    """AWS Signature Version 4 headers for a request without a query string."""
    parts = urlsplit(url)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    headers = {"host": parts.netloc, "x-amz-content-sha256": payload_sha256, "x-amz-date": stamp}
    names = ";".join(sorted(headers))
    canonical = "\n".join(
        [
            method,
            parts.path,
            "",
            *(f"{k}:{headers[k]}" for k in sorted(headers)),
            "",
            names,
            payload_sha256,
        ]
    )
    scope = f"{day}/{b.region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac(
        _hmac(_hmac(_hmac(("AWS4" + b.secret).encode(), day), b.region), "s3"), "aws4_request"
    )
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={b.key_id}/{scope}, SignedHeaders={names}, "
        f"Signature={signature}"
    )
    return headers


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def _why(response: httpx.Response) -> str:
    code = (
        response.text.split("<Code>", 1)[1].split("</Code>", 1)[0]
        if "<Code>" in response.text
        else ""
    )
    return f"HTTP {response.status_code}" + (f" {code}" if code else "")


async def upload(ctx: Context, b: Bucket, path: Path, sha256: str, timeout: float) -> str:
    """PUT the dump, its SHA-256 signed as payload hash so the store checks it; the object URL."""
    url = b.url(path.name)
    headers = signed("PUT", url, sha256, b, ctx.clock.now())
    headers["content-length"] = str(path.stat().st_size)  # noqa: ASYNC240  (a stat)
    response = await call(
        "s3", ctx.backends.http().put(url, content=_chunks(path), headers=headers), timeout
    )
    if response.status_code != 200:
        raise BackendUnavailable("s3", _why(response))
    return url


async def present(ctx: Context, b: Bucket, name: str, size: int) -> str:
    """Whether the dump's copy is there with the right size: `yes`, `missing`, or why not known."""
    url = b.url(name)
    empty = hashlib.sha256(b"").hexdigest()
    try:
        response = await call(
            "s3",
            ctx.backends.http().head(url, headers=signed("HEAD", url, empty, b, ctx.clock.now())),
            ctx.settings.config.timeouts.backend,
        )
    except BackendError as exc:
        return f"unknown ({exc.detail})"
    if response.status_code == 404:
        return "missing"
    if response.status_code != 200:
        return f"unknown ({_why(response)})"
    return "yes" if response.headers.get("content-length") == str(size) else "size differs"

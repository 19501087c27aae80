"""Off-site copies: each dump uploaded to S3-compatible storage (R2, MinIO, AWS) by aiobotocore.

botocore signs every request (SigV4), retries each one on its own (standard mode: throttling,
5xx, dropped connections), and the store checks a SHA-256 checksum per request. A dump above
MULTIPART_ABOVE goes up as a multipart upload, part by part, so one failed part is retried alone
and there is no 5 GB ceiling; an upload that fails for good is aborted, leaving no parts behind.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from bot.backends.clients import call
from bot.config.settings import Settings
from bot.core.context import Context
from bot.core.errors import BackendError, BackendUnavailable, CommandError

MULTIPART_ABOVE = 100 * 1024 * 1024
PART = 16 * 1024 * 1024  # S3 allows 5 MiB to 5 GiB per part and 10,000 parts
ATTEMPTS = 4  # per request, the first included


@dataclass(frozen=True)
class Bucket:
    """Where copies go: `FORGE_BACKUP_S3_URL` is `https://endpoint/bucket[/prefix]` (path style)."""

    endpoint: str
    name: str
    prefix: str
    key_id: str
    secret: str
    region: str

    def key(self, file: str) -> str:
        """The object key of one dump."""
        return f"{self.prefix}/{file}" if self.prefix else file

    def url(self, file: str) -> str:
        """The object URL of one dump."""
        return f"{self.endpoint}/{self.name}/{quote(self.key(file), safe='/-_.~')}"


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
    name, _, prefix = parts.path.strip("/").partition("/")
    return Bucket(
        f"{parts.scheme}://{parts.netloc}",
        name,
        prefix.strip("/"),
        env.forge_backup_s3_access_key_id.get_secret_value(),
        env.forge_backup_s3_secret_access_key.get_secret_value(),
        env.forge_backup_s3_region,
    )


@asynccontextmanager
async def client(b: Bucket, timeout: float) -> AsyncIterator[Any]:
    """An S3 client for the bucket: path-style addressing, timeouts, standard retries."""
    from aiobotocore.session import get_session
    from botocore.config import Config

    config = Config(
        region_name=b.region,
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"max_attempts": ATTEMPTS, "mode": "standard"},
        s3={"addressing_style": "path"},
    )
    async with get_session().create_client(
        "s3",
        endpoint_url=b.endpoint,
        aws_access_key_id=b.key_id,
        aws_secret_access_key=b.secret,
        config=config,
    ) as s3:
        yield s3


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _failure(exc: BaseException) -> BackendError:
    """botocore's error as one line: `HTTP 403 SignatureDoesNotMatch`, or what the client said."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = response.get("Error", {}).get("Code", "")
        return BackendUnavailable("s3", f"HTTP {status} {code}".strip())
    if isinstance(exc, BackendError):
        return exc
    return BackendUnavailable("s3", type(exc).__name__)


async def upload(
    ctx: Context,
    b: Bucket,
    path: Path,
    sha256: str,
    timeout: float,
    *,
    multipart_above: int = MULTIPART_ABOVE,
    part_size: int = PART,
) -> str:
    """Upload the dump (multipart when large), checked by SHA-256; the object URL."""
    size = path.stat().st_size  # noqa: ASYNC240  (a stat)
    request_timeout = ctx.settings.config.timeouts.backend * 6
    try:
        async with client(b, request_timeout) as s3:
            work = (
                _single(s3, b, path, sha256)
                if size <= multipart_above
                else _multipart(s3, b, path, sha256, part_size)
            )
            await call("s3", work, timeout)
    except Exception as exc:  # botocore's tree is its own; the caller gets one line
        raise _failure(exc.__cause__ or exc) from None
    return b.url(path.name)


async def _single(s3: Any, b: Bucket, path: Path, sha256: str) -> None:
    """One PUT; the store refuses it unless the body's SHA-256 is the catalog's."""
    body = await asyncio.to_thread(path.read_bytes)
    await s3.put_object(
        Bucket=b.name,
        Key=b.key(path.name),
        Body=body,
        ChecksumSHA256=_b64(bytes.fromhex(sha256)),
        Metadata={"sha256": sha256},
    )


async def _multipart(s3: Any, b: Bucket, path: Path, sha256: str, part_size: int) -> None:
    """Parts of `part_size`, each with its own checksum; the whole file's hash must match too."""
    key = b.key(path.name)
    started = await s3.create_multipart_upload(
        Bucket=b.name, Key=key, ChecksumAlgorithm="SHA256", Metadata={"sha256": sha256}
    )
    upload_id = started["UploadId"]
    try:
        parts, whole = await _parts(s3, b, key, upload_id, path, part_size)
        if whole != sha256:
            raise BackendUnavailable("s3", "the dump changed while it was uploaded")
        await s3.complete_multipart_upload(
            Bucket=b.name, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
    except BaseException:
        await asyncio.shield(s3.abort_multipart_upload(Bucket=b.name, Key=key, UploadId=upload_id))
        raise


async def _parts(
    s3: Any, b: Bucket, key: str, upload_id: str, path: Path, part_size: int
) -> tuple[list[dict[str, Any]], str]:
    """Upload every part in order; the parts for completion and the whole file's SHA-256."""
    whole, parts = hashlib.sha256(), []
    with path.open("rb") as f:
        number = 1
        while chunk := await asyncio.to_thread(f.read, part_size):
            whole.update(chunk)
            checksum = _b64(hashlib.sha256(chunk).digest())
            answer = await s3.upload_part(
                Bucket=b.name,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=chunk,
                ChecksumSHA256=checksum,
            )
            parts.append({"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": checksum})
            number += 1
    return parts, whole.hexdigest()


async def present(ctx: Context, b: Bucket, name: str, size: int) -> str:
    """Whether the dump's copy is there with the right size: `yes`, `missing`, or why not known."""
    seconds = ctx.settings.config.timeouts.backend
    try:
        async with client(b, seconds) as s3:
            head = await call("s3", s3.head_object(Bucket=b.name, Key=b.key(name)), seconds)
    except Exception as exc:  # one line for the table, whatever the client raised
        failure = _failure(exc.__cause__ or exc)
        return "missing" if failure.detail.startswith("HTTP 404") else f"unknown ({failure.detail})"
    return "yes" if head.get("ContentLength") == size else "size differs"

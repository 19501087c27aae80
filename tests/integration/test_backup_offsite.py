"""Off-site copies to a local S3-compatible server (moto_server) checking SigV4 signatures."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.core.errors import BackendError
from bot.core.forge import Forge
from tests.support.backup_fixtures import backup_settings, clientforge_db, run

boto3 = pytest.importorskip("boto3")
pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
MOTO = Path(sys.executable).with_name("moto_server")
UNSIGNED_SETUP = (
    4  # create_user, put_user_policy, create_access_key, create_bucket; everything after is checked
)


@dataclass(frozen=True)
class S3:
    """The running server, a bucket, and a key pair that IAM knows."""

    endpoint: str
    key_id: str
    secret: str

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.key_id,
            aws_secret_access_key=self.secret,
            region_name="us-east-1",
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(port: int, proc: subprocess.Popen) -> None:
    for _ in range(100):
        if proc.poll() is not None:
            raise RuntimeError("moto_server exited")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("moto_server did not start")


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    """moto_server, auth on after setup; user `forge` may use S3; bucket `cf-backups`."""
    if not MOTO.exists():
        pytest.skip("moto[server] is not installed")
    port = _free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(UNSIGNED_SETUP)}
    proc = subprocess.Popen(
        [str(MOTO), "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait(port, proc)
        endpoint = f"http://127.0.0.1:{port}"
        setup = {
            "endpoint_url": endpoint,
            "aws_access_key_id": "setup",
            "aws_secret_access_key": "setup",
            "region_name": "us-east-1",
        }
        iam = boto3.client("iam", **setup)
        iam.create_user(UserName="forge")
        iam.put_user_policy(
            UserName="forge",
            PolicyName="s3",
            PolicyDocument='{"Version": "2012-10-17", "Statement": '
            '[{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}',
        )
        key = iam.create_access_key(UserName="forge")["AccessKey"]
        boto3.client("s3", **setup).create_bucket(Bucket="cf-backups")
        yield S3(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
async def forge_s3(state_dsn, s3, tmp_path: Path) -> AsyncIterator[Forge]:
    """forge with off-site copies to `cf-backups/nightly/` on the moto server."""
    async with clientforge_db() as cf:
        f = Forge(
            backup_settings(
                state_dsn,
                cf,
                tmp_path,
                forge_backup_s3_url=f"{s3.endpoint}/cf-backups/nightly",
                forge_backup_s3_access_key_id=s3.key_id,
                forge_backup_s3_secret_access_key=s3.secret,
            )
        )
        await f.start()
        yield f
        await f.aclose()


async def test_each_dump_is_copied_and_list_shows_the_copy(forge_s3, s3):
    """The object equals the dump (same SHA-256); `backup list` says yes, then missing once gone."""
    result = (await run(forge_s3, "backup create")).result
    assert result.ok and dict(result.fields)["Off-site copy"] == "copied", result.summary
    name = result.data["file"]
    body = s3.client().get_object(Bucket="cf-backups", Key=f"nightly/{name}")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == result.data["sha256"]
    listed = (await run(forge_s3, "backup list")).result
    assert listed.ok and listed.data["backups"][0]["off-site"] == "yes"
    s3.client().delete_object(Bucket="cf-backups", Key=f"nightly/{name}")
    listed = (await run(forge_s3, "backup list")).result
    assert listed.status.value == "warning" and listed.data["backups"][0]["off-site"] == "missing"


async def test_a_bad_signature_is_refused_and_the_local_dump_stands(state_dsn, s3, tmp_path):
    """A wrong secret: the signature is refused; create warns, names the error, never the secret."""
    wrong = "wrong-secret-" + "x" * 20
    async with clientforge_db() as cf:
        f = Forge(
            backup_settings(
                state_dsn,
                cf,
                tmp_path,
                forge_backup_s3_url=f"{s3.endpoint}/cf-backups",
                forge_backup_s3_access_key_id=s3.key_id,
                forge_backup_s3_secret_access_key=wrong,
            )
        )
        await f.start()
        try:
            outcome = await run(f, "backup create")
            listed = (await run(f, "backup list")).result
        finally:
            await f.aclose()
    result = outcome.result
    assert (
        result.status.value == "warning"
        and "off-site copy failed (s3: HTTP 403 SignatureDoesNotMatch)" in result.summary
    )
    assert (
        wrong not in str(result)
        and (tmp_path / "backups" / "database" / result.data["file"]).is_file()
    )
    assert listed.data["backups"][0]["off-site"].startswith("unknown (HTTP 403")


async def test_a_large_dump_goes_up_in_checked_parts(state_dsn, s3, tmp_path):
    """Above the threshold the copy is a multipart upload: three parts, each checksummed, the
    object equal to the file; a dump that changed since its hash was taken is refused and the
    upload aborted, leaving no parts behind."""
    from commands.backup import s3 as offsite
    from tests.support.ops_support import started_forge

    dump = tmp_path / "large.dump"
    dump.write_bytes(os.urandom(12 * 1024 * 1024))
    sha256 = hashlib.sha256(dump.read_bytes()).hexdigest()
    env = {
        "forge_backup_s3_url": f"{s3.endpoint}/cf-backups/parts",
        "forge_backup_s3_access_key_id": s3.key_id,
        "forge_backup_s3_secret_access_key": s3.secret,
    }
    async with started_forge(state_dsn, **env) as forge:
        ctx = forge.dispatcher.context(*_actor_and_invocation())
        target = offsite.bucket(forge.settings)
        part = 5 * 1024 * 1024
        url = await offsite.upload(
            ctx, target, dump, sha256, 60, multipart_above=part, part_size=part
        )
        client = s3.client()
        head = client.head_object(Bucket="cf-backups", Key="parts/large.dump", PartNumber=1)
        assert url.endswith("/cf-backups/parts/large.dump") and head["PartsCount"] == 3
        body = client.get_object(Bucket="cf-backups", Key="parts/large.dump")["Body"].read()
        assert hashlib.sha256(body).hexdigest() == sha256
        assert await offsite.present(ctx, target, "large.dump", len(body)) == "yes"
        with pytest.raises(BackendError, match="changed while it was uploaded"):
            await offsite.upload(
                ctx, target, dump, "0" * 64, 60, multipart_above=part, part_size=part
            )
    pending = client.list_multipart_uploads(Bucket="cf-backups").get("Uploads", [])
    assert pending == []


def _actor_and_invocation():
    from bot.core.context import Actor
    from bot.core.dispatch import Invocation
    from bot.core.registry import Role

    return Actor("U0ADMIN", Role.ADMIN, source="cli"), Invocation("backup create", "U0ADMIN")

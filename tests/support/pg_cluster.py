"""Throwaway PostgreSQL 15 clusters (pg_stat_statements preloaded) for `db …` tests and bench."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SETTINGS = {
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.track": "all",
    "pg_stat_statements.max": "10000",
    "track_io_timing": "on",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "60",
    "listen_addresses": "127.0.0.1",
}


def bindir() -> Path | None:
    """Where initdb and postgres live, from pg_config or Debian's layout."""
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run(
            [found, "--bindir"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
        if out and (Path(out) / "initdb").exists():
            return Path(out)
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return debian[-1].parent if debian else None


def unavailable_reason() -> str | None:
    """Why no cluster can be started here, or None."""
    if os.environ.get("FORGE_TEST_PGSS_DSN"):
        return None
    if bindir() is None:
        return "PostgreSQL server binaries (initdb) not found"
    if os.geteuid() == 0 and _postgres_uid() is None:
        return "running as root without a `postgres` user to own the cluster"
    return None


def _postgres_uid() -> int | None:
    try:
        return pwd.getpwnam("postgres").pw_uid
    except KeyError:
        return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_owner(argv: list[str]) -> list[str]:
    """initdb and postgres refuse root: run them as `postgres` when we are root."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@contextmanager
def pg_stat_statements_cluster() -> Iterator[str]:
    """Yield a fresh cluster's superuser DSN (or FORGE_TEST_PGSS_DSN); stop and delete it after."""
    given = os.environ.get("FORGE_TEST_PGSS_DSN")
    if given:
        yield given
        return
    with throwaway_cluster() as dsn:
        yield dsn


@contextmanager
def throwaway_cluster(
    settings: dict[str, str] | None = None, password: str | None = None, port: int | None = None
) -> Iterator[str]:
    """A fresh cluster (SETTINGS plus `settings`) on `port` or a free one: its superuser DSN.

    With `password`, TCP logins need it (scram-sha-256) and the DSN carries it."""
    bins, port = bindir(), port or _free_port()
    assert bins is not None
    root = Path(tempfile.mkdtemp(prefix="forge-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        os.chown(root, _postgres_uid(), -1)  # type: ignore[arg-type]
    try:
        _initdb(bins, root, password)
        options = " ".join(f"-c {k}={v}" for k, v in {**SETTINGS, **(settings or {})}.items())
        subprocess.run(
            _as_owner(
                [
                    str(bins / "pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(root / "log"),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    f"-p {port} -k {root} {options}",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=90,
        )
        user = f"postgres:{password}" if password else "postgres"
        yield f"postgresql://{user}@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                _as_owner([str(bins / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                capture_output=True,
                timeout=60,
                check=False,
            )
        shutil.rmtree(root, ignore_errors=True)


def _initdb(bins: Path, root: Path, password: str | None) -> None:
    """initdb into root/data: trust, or (with a password) scram over TCP and trust on the socket."""
    auth = ["--auth=trust"]
    if password:
        (root / "pw").write_text(password, encoding="utf-8")
        if os.geteuid() == 0:
            os.chown(root / "pw", _postgres_uid(), -1)  # type: ignore[arg-type]
        auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={root / 'pw'}"]
    subprocess.run(
        _as_owner(
            [
                str(bins / "initdb"),
                "-D",
                str(root / "data"),
                "-U",
                "postgres",
                *auth,
                "-E",
                "UTF8",
                "--no-sync",
            ]
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )

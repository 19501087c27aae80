"""Replicas for real: `forge serve` processes sharing PostgreSQL and Redis, behind Debian's HAProxy.

HAProxy balances round robin, checks /readyz every 250 ms, and retries a request on another
replica when the connection fails or the replica closes it without answering; that retry is safe
because forge ignores a byte-identical signed delivery it has already run. A check may take 2 s
and a replica leaves the rotation after two failed checks: a replica busy with a burst is slow to
answer /readyz, not gone.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import yaml

from tests.conftest import PG_ADMIN, REDIS_URL, SECRET

HAPROXY = shutil.which("haproxy")
SKIP_REASON = "HAProxy is not installed (apt-get install haproxy)"
FORGE = str(Path(sys.executable).with_name("forge"))
ROOT = Path(__file__).resolve().parents[2]
CONFIG = {
    "roles": {"viewer": ["*"], "operator": ["U0OPS"], "admin": ["U0ADMIN"]},
    "approvers": ["U0LEAD"],
    "channels": {"alerts": "C0ALERTS", "incidents": "C0INCIDENTS"},
    "replicas": {"lease_seconds": 6, "deregister_seconds": 1.0, "drain_seconds": 15},
}
HAPROXY_CONFIG = """\
global
    maxconn 4096
    stats socket {socket} level admin
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 10s
    timeout check 2s
    option http-server-close
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response
frontend slack
    bind 127.0.0.1:{port}
    default_backend forge
backend forge
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 250ms fastinter 250ms downinter 250ms rise 2 fall 2
{servers}
"""


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(folder: Path, **overrides: object) -> Path:
    """forge.yml for the replicas: the test roles and channels, short leases and drains."""
    config = {**CONFIG, **overrides}
    path = folder / "forge.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def base_env(state_dsn: str, slack_url: str, config: Path, **extra: str) -> dict[str, str]:
    """The environment of every replica: local services, the Slack double, closed ports else."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "FORGE_", "DATABASE_", "REDIS_"))
    }
    env.update(
        DATABASE_URL=PG_ADMIN,
        REDIS_URL=REDIS_URL,
        ELASTICSEARCH_URL="http://127.0.0.1:9",
        CLIENTFORGE_API_URL="http://127.0.0.1:9",
        PROMETHEUS_URL="http://127.0.0.1:9",
        GRAFANA_URL="http://127.0.0.1:9",
        FORGE_CONFIG=str(config),
        FORGE_STATE_DATABASE_URL=state_dsn,
        FORGE_HTTP_HOST="127.0.0.1",
        SLACK_API_URL=slack_url,
        SLACK_BOT_TOKEN="xoxb-replica-test",
        SLACK_SIGNING_SECRET=SECRET,
        PYTHONPATH=str(ROOT),
        **extra,
    )
    return env


class Replica:
    """One `forge serve` process on a port of its own; restartable under the same port."""

    def __init__(self, name: str, env: dict[str, str], folder: Path) -> None:
        self.name, self.port, self.folder = name, free_port(), folder
        self.env = {**env, "FORGE_HTTP_PORT": str(self.port)}
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: asyncio.subprocess.Process | None = None
        self.generation = 0

    @property
    def log(self) -> Path:
        """This generation's stderr (forge's JSON log lines)."""
        return self.folder / f"{self.name}.{self.generation}.log"

    async def start(self, ready: bool = True, timeout: float = 40.0) -> None:
        """Start a new process (a new replica id), and wait until /readyz says ready."""
        self.generation += 1
        env = {**self.env, "FORGE_REPLICA_ID": f"{self.name}-{self.generation}"}
        with self.log.open("wb") as err:
            self.process = await asyncio.create_subprocess_exec(
                FORGE, "serve", cwd=self.folder, env=env, stdout=err, stderr=err
            )
        if ready:
            await self.wait_ready(timeout)

    @property
    def replica_id(self) -> str:
        """The id this generation holds leases and journal rows under."""
        return f"{self.name}-{self.generation}"

    async def wait_ready(self, timeout: float = 40.0) -> None:
        """Until /readyz answers 200; fails if the process exits."""
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                assert self.process and self.process.returncode is None, self.tail()
                try:
                    async with session.get(self.url + "/readyz") as answer:
                        if answer.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready after {timeout:g} s: {self.tail()}")

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 40.0) -> int:
        """Signal this replica's process and wait for it to exit; its exit code."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(sig)
        return await asyncio.wait_for(self.process.wait(), timeout)

    def tail(self, chars: int = 1500) -> str:
        """The end of this generation's log, for failure messages."""
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


class HAProxy:
    """Debian's haproxy in the foreground, balancing over the replicas."""

    def __init__(self, replicas: list[Replica], folder: Path) -> None:
        assert HAPROXY, SKIP_REASON
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        servers = "\n".join(f"    server {r.name} 127.0.0.1:{r.port} check" for r in replicas)
        self.config = folder / "haproxy.cfg"
        self.socket = folder / "haproxy.sock"
        self.config.write_text(
            HAPROXY_CONFIG.format(port=self.port, servers=servers, socket=self.socket)
        )
        self.log = folder / "haproxy.log"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start it and wait until it accepts connections."""
        with self.log.open("wb") as err:
            self.process = await asyncio.create_subprocess_exec(
                HAPROXY, "-db", "-f", str(self.config), stdout=err, stderr=err
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise TimeoutError(f"haproxy did not start: {self.log.read_text()[-800:]}")

    async def states(self) -> dict[str, str]:
        """Each replica's state as HAProxy sees it (UP, DOWN, …), from its stats socket."""
        reader, writer = await asyncio.open_unix_connection(str(self.socket))
        writer.write(b"show stat\n")
        await writer.drain()
        text = (await reader.read()).decode()
        writer.close()
        rows = [line.split(",") for line in text.splitlines() if line.startswith("forge,")]
        return {row[1]: row[17] for row in rows if row[1] not in ("FRONTEND", "BACKEND")}

    async def wait_state(self, name: str, wanted: str, timeout: float = 15.0) -> None:
        """Until HAProxy holds replica `name` in state `wanted` (UP: back in rotation)."""
        deadline = time.monotonic() + timeout
        while (await self.states()).get(name, "").split(" ")[0] != wanted:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} not {wanted} in HAProxy: {await self.states()}")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Stop the process this object started."""
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await asyncio.wait_for(self.process.wait(), 10)


class Cluster:
    """`count` replicas behind HAProxy, sharing one state store and the Slack double."""

    def __init__(
        self,
        count: int,
        state_dsn: str,
        slack_url: str,
        *,
        balanced: bool = True,
        config: dict | None = None,
        **env: str,
    ) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="forge-replicas-"))
        config = write_config(self.folder, **(config or {}))
        shared = base_env(state_dsn, slack_url, config, **env)
        self.replicas = [Replica(f"r{i + 1}", shared, self.folder) for i in range(count)]
        self.haproxy = HAProxy(self.replicas, self.folder) if balanced else None

    @property
    def url(self) -> str:
        """Where Slack sends requests: HAProxy."""
        assert self.haproxy is not None
        return self.haproxy.url

    async def __aenter__(self) -> Cluster:
        await asyncio.gather(*(r.start(ready=False) for r in self.replicas))
        await asyncio.gather(*(r.wait_ready() for r in self.replicas))
        if self.haproxy is not None:
            await self.haproxy.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for replica in self.replicas:
            if replica.process and replica.process.returncode is None:
                await replica.stop(signal.SIGKILL)
        if self.haproxy is not None:
            await self.haproxy.stop()
        if exc[0] is None:
            shutil.rmtree(self.folder, ignore_errors=True)

    async def rolling_restart(self) -> list[int]:
        """SIGTERM each replica in turn, wait for its exit, start it again and wait until HAProxy
        has it back in rotation (Kubernetes' maxUnavailable 0); the exit codes."""
        assert self.haproxy is not None
        codes = []
        for replica in self.replicas:
            codes.append(await replica.stop())
            await replica.start()
            await self.haproxy.wait_state(replica.name, "UP")
        return codes

"""Real Node BullMQ (3.15.8, the runbook's; 5.63.0, the one ClientForge ships) driven from Python.

`NodeBullMQ(version, redis_url)` runs `tests/node/bullmq_tool.js` with `node`, one subprocess per
call, and returns its one-line JSON result. The npm packages come from
`tests/node/package-lock.json` (`cd tests/node && npm ci`); `node_available()` tells whether they
are installed. This is a plain module: fixtures live with the tests that use it.

    node = NodeBullMQ(5, redis_url(15))
    await node.fail("q", 20, attempts=3)          # 20 jobs in the failed set, attempts exhausted
    await node.counts("q")                        # {"counts": {...}, "paused": False, ...}
    async with node.worker("q", "W1") as proc:    # a named worker, connected until the block ends
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from tests.support.services import redis_url

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
TOOL = NODE_DIR / "bullmq_tool.js"
VERSIONS = (3, 5)
PACKAGES = {3: "bullmq3", 5: "bullmq5"}  # npm aliases of bullmq@3.15.8 and bullmq@5.63.0
DEFAULT_REDIS_URL = redis_url(15)

Json = dict[str, Any]


def node_unavailable_reason() -> str | None:
    """Why the Node harness cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "the node binary is not on PATH"
    missing = [
        p
        for p in PACKAGES.values()
        if not (NODE_DIR / "node_modules" / p / "package.json").is_file()
    ]
    if missing:
        return f"tests/node/node_modules lacks {', '.join(missing)}: run `cd tests/node && npm ci`"
    return None


def node_available() -> bool:
    """True when `node` is on PATH and tests/node/node_modules has both BullMQ versions."""
    return node_unavailable_reason() is None


class NodeBullMQError(RuntimeError):
    """A bullmq_tool.js call that exited non-zero, printed no JSON, or timed out."""

    def __init__(
        self,
        message: str,
        *,
        args: list[str],
        returncode: int | None,
        stdout: str = "",
        stderr: str = "",
        result: Json | None = None,
    ) -> None:
        super().__init__(
            f"{message}\n  command: {' '.join(args)}\n  stdout: {stdout[-2000:]}"
            f"\n  stderr: {stderr[-4000:]}"
        )
        self.argv, self.returncode, self.stdout, self.stderr, self.result = (
            args,
            returncode,
            stdout,
            stderr,
            result,
        )


def _flags(options: dict[str, Any]) -> list[str]:
    """`max_len=5, data={...}` -> ["--max-len", "5", "--data", "{...}"]; None values are dropped."""
    out: list[str] = []
    for key, value in options.items():
        if value is None:
            continue
        if isinstance(value, (dict, list)):
            value = json.dumps(value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        out += [f"--{key.replace('_', '-')}", str(value)]
    return out


def _last_json(stdout: str) -> Json | None:
    for line in reversed(stdout.strip().splitlines()):
        with contextlib.suppress(ValueError):
            parsed = json.loads(line)
            if isinstance(parsed, dict):
                return parsed
    return None


@dataclass
class NodeProcess:
    """A long-running bullmq_tool.js (worker or plain queue), started by `NodeBullMQ.worker`."""

    proc: asyncio.subprocess.Process
    argv: list[str]
    ready: Json = field(default_factory=dict)
    result: Json | None = None  # the final JSON line, once the process has ended
    stderr: bytearray = field(default_factory=bytearray)

    @property
    def pid(self) -> int:
        return self.proc.pid


@dataclass
class NodeBullMQ:
    """One Node BullMQ version (3 or 5) against one Redis URL (its db number included)."""

    version: int = 5
    redis_url: str = DEFAULT_REDIS_URL
    timeout: float = 60.0  # seconds, for each short call
    node: str = "node"

    def __post_init__(self) -> None:
        if self.version not in PACKAGES:
            raise ValueError(f"version must be one of {VERSIONS}, got {self.version!r}")

    def argv(self, subcommand: str, **options: Any) -> list[str]:
        """The command line for one call."""
        return [
            self.node,
            str(TOOL),
            subcommand,
            "--bullmq",
            str(self.version),
            "--redis",
            self.redis_url,
            *_flags(options),
        ]

    async def run(self, subcommand: str, *, timeout: float | None = None, **options: Any) -> Json:
        """Run one subcommand to its end; its JSON result, or NodeBullMQError with stderr."""
        args = self.argv(subcommand, **options)
        proc = await asyncio.create_subprocess_exec(
            *args,
            cwd=NODE_DIR,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout or self.timeout)
        except (TimeoutError, asyncio.CancelledError) as exc:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            out, err = await proc.communicate()
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise NodeBullMQError(
                f"bullmq_tool.js {subcommand} timed out after {timeout or self.timeout} s",
                args=args,
                returncode=None,
                stdout=out.decode(errors="replace"),
                stderr=err.decode(errors="replace"),
            ) from None
        stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
        result = _last_json(stdout)
        if proc.returncode != 0 or result is None or "error" in result:
            raise NodeBullMQError(
                f"bullmq_tool.js {subcommand} failed (exit {proc.returncode})",
                args=args,
                returncode=proc.returncode,
                stdout=stdout,
                stderr=stderr,
                result=result,
            )
        return result

    # ---- short calls -----------------------------------------------------------------------------

    async def fail(
        self,
        queue: str,
        count: int,
        attempts: int = 3,
        name: str = "test-failure",
        data: Json | None = None,
        *,
        concurrency: int = 200,
        timeout: float = 600.0,
    ) -> Json:
        """Add `count` jobs that always throw `Error("boom <n>")` and run them until all are failed.

        -> {"failed": count, "ids": [first 10 ids], "elapsed_ms": ...}. Job data is
        `{**data, "n": i}`."""
        return await self.run(
            "fail",
            queue=queue,
            count=count,
            attempts=attempts,
            name=name,
            data=data,
            concurrency=concurrency,
            timeout_ms=int(timeout * 1000),
            timeout=timeout + 30,
        )

    async def add(
        self,
        queue: str,
        count: int = 1,
        name: str = "test-job",
        *,
        delay: int | None = None,
        priority: int | None = None,
        attempts: int | None = None,
        data: Json | None = None,
    ) -> Json:
        """Add `count` jobs (data `{**data, "n": i}`) -> {"added": count, "ids": [...all ids]}."""
        return await self.run(
            "add",
            queue=queue,
            count=count,
            name=name,
            delay=delay,
            priority=priority,
            attempts=attempts,
            data=data,
        )

    async def process(
        self, queue: str, expect: int, timeout_ms: int = 10000, *, concurrency: int = 1
    ) -> Json:
        """Complete jobs until `expect` were processed or `timeout_ms` passed.

        -> {"processed": [ids], "names": [...], "timed_out": bool}; may hold more than `expect`
        ids."""
        return await self.run(
            "process",
            queue=queue,
            expect=expect,
            timeout_ms=timeout_ms,
            concurrency=concurrency,
            timeout=timeout_ms / 1000 + 30,
        )

    async def counts(self, queue: str) -> Json:
        """-> {"counts": queue.getJobCounts() with the version's defaults, "paused": isPaused()}."""
        return await self.run("counts", queue=queue)

    async def pause(self, queue: str) -> Json:
        """Node's own `queue.pause()` -> {"paused": True}."""
        return await self.run("pause", queue=queue)

    async def resume(self, queue: str) -> Json:
        """Node's own `queue.resume()` -> {"paused": False}."""
        return await self.run("resume", queue=queue)

    async def clean(
        self, queue: str, limit: int = 0, grace_ms: int = 0, type: str = "failed"
    ) -> Json:
        """`queue.clean(grace_ms, limit, type)` -> {"removed": n, "elapsed_ms": …}; limit 0: all."""
        return await self.run(
            "clean", queue=queue, limit=limit, grace_ms=grace_ms, type=type, timeout=600
        )

    async def get(self, queue: str, id: str) -> Json:
        """-> {"job": job.toJSON() or None, "state": await job.getState() or None}."""
        return await self.run("get", queue=queue, id=id)

    # ---- long-running ----------------------------------------------------------------------------

    def worker(
        self,
        queue: str,
        name: str = "forge-test",
        *,
        seconds: int = 300,
        ready_timeout: float = 20.0,
    ) -> contextlib.AbstractAsyncContextManager[NodeProcess]:
        """`async with node.worker(q, "W") as proc:` a Worker (name W) connected for the block."""
        return self._long("worker", ready_timeout, queue=queue, name=name, seconds=seconds)

    def hold_queue(
        self, queue: str, *, seconds: int = 300, ready_timeout: float = 20.0
    ) -> contextlib.AbstractAsyncContextManager[NodeProcess]:
        """`async with node.hold_queue(q) as proc:` a plain Queue (no worker) open for the block."""
        return self._long("hold-queue", ready_timeout, queue=queue, seconds=seconds)

    @contextlib.asynccontextmanager
    async def _long(
        self, subcommand: str, ready_timeout: float, **options: Any
    ) -> AsyncIterator[NodeProcess]:
        args = self.argv(subcommand, **options)
        proc = await asyncio.create_subprocess_exec(
            *args,
            cwd=NODE_DIR,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        handle = NodeProcess(proc=proc, argv=args)
        assert proc.stdout is not None and proc.stderr is not None

        async def drain_stderr() -> None:  # never let a full stderr pipe stall the worker
            assert proc.stderr is not None
            while chunk := await proc.stderr.read(65536):
                handle.stderr += chunk
                del handle.stderr[:-65536]

        drain = asyncio.create_task(drain_stderr())
        try:
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), ready_timeout)
            except TimeoutError:
                line = b""
            ready = _last_json(line.decode(errors="replace")) or {}
            if not ready.get("ready"):
                await _stop(proc, 5.0)
                await drain
                rest = (line + await proc.stdout.read()).decode(errors="replace")
                raise NodeBullMQError(
                    f"bullmq_tool.js {subcommand} did not report ready",
                    args=args,
                    returncode=proc.returncode,
                    stdout=rest,
                    stderr=handle.stderr.decode(errors="replace"),
                )
            handle.ready = ready
            yield handle
        finally:
            await _stop(proc, 15.0)
            if proc.stdout is not None:
                handle.result = _last_json((await proc.stdout.read()).decode(errors="replace"))
            await drain


async def _stop(proc: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM (the tool then closes its worker cleanly), SIGKILL after `grace` seconds."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


# ---- Redis helpers (redis.asyncio) ---------------------------------------------------------------


def redis_db(redis_url: str) -> int:
    """The db number of a redis:// URL (0 when absent)."""
    path = urlparse(redis_url).path.strip("/")
    return int(path) if path else 0


async def flush_db(redis_url: str = DEFAULT_REDIS_URL) -> None:
    """FLUSHDB on the URL's db. Refuses db 0, which other tests share."""
    import redis.asyncio as aioredis

    if redis_db(redis_url) == 0:
        raise ValueError(
            "flush_db refuses db 0: other tests use it; give the harness its own db (e.g. /15)"
        )
    client = aioredis.from_url(redis_url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


async def delete_queue(redis_url: str, queue: str, prefix: str = "bull") -> int:
    """Delete every key of one queue (`<prefix>:<queue>:*`); the number deleted."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    deleted = 0
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{prefix}:{_glob_escape(queue)}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += await client.unlink(*batch)
                batch.clear()
        if batch:
            deleted += await client.unlink(*batch)
    finally:
        await client.aclose()
    return deleted


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


async def client_list(redis: str | Any = DEFAULT_REDIS_URL) -> list[Json]:
    """CLIENT LIST as dicts (id, name, db, cmd, ...), for every connection to the server.

    Pass a redis.asyncio client to reuse its connection (a URL opens, and lists, a new one)."""
    import redis.asyncio as aioredis

    if not isinstance(redis, str):
        return [
            {k: v.decode() if isinstance(v, bytes) else v for k, v in c.items()}
            for c in await redis.client_list()
        ]
    client = aioredis.from_url(redis, decode_responses=True)
    try:
        return list(await client.client_list())
    finally:
        await client.aclose()

"""`dlq clear` and `queue health` at scale, on jobs written and failed by real Node BullMQ 5.63.0.

Run from the repository root (after `cd tests/node && npm ci`): `.venv/bin/python bench/dlq.py`.

1. Node BullMQ 5.63.0 fails 100,000 jobs (3 attempts each) in queue `bench-src`.
2. Each round copies that queue key by key (DUMP/RESTORE) to `bench-a`, `bench-b` and `bench-c`,
   so every side starts from identical data, then times three things, in an order that rotates
   from round to round so none always runs on a warmer or busier machine:
   - forge's `dlq clear` of `bench-a` (execution only: the approved handler on the scope its
     untimed dry run froze, archive included);
   - Node's own `queue.clean(0, 100000, 'failed')` of `bench-b`;
   - reading every record of `bench-c` once, as the clear does, archiving and removing nothing:
     the work an archive needs and BullMQ's clean does not do.
   Redis SLOWLOG shows the longest single command or script call of each; INFO shows the CPU
   Redis's main thread spent on each and the commands it spent it in. The target: the clear
   costs at most that read plus BullMQ's clean (the median of the rounds' ratios).
3. `queue health` over 5 queues holding 1,000,000 jobs in total.
4. A failure storm: Node BullMQ 5.63.0 fails 200,000 jobs in `bench-storm`. `queue health
   bench-storm` is timed on its first look (every failed job read), then warm (only what changed
   since the last look), then after 1,000 more failures and after a retry that takes an old job
   out; each DLQ count is checked against one read from scratch (the pre-incremental way, timed)."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.config.settings import Config, Env, Settings  # noqa: E402
from bot.core.context import Actor  # noqa: E402
from bot.core.dispatch import Invocation  # noqa: E402
from bot.core.forge import Forge  # noqa: E402
from bot.core.registry import REGISTRY, Role  # noqa: E402
from bot.core.scope import Scope  # noqa: E402
from commands.queues.bullmq import full_dlq_count  # noqa: E402
from commands.queues.clear import Take, take_next  # noqa: E402
from tests.fakes.bullmq_node import NodeBullMQ, node_unavailable_reason  # noqa: E402

PG_ADMIN = os.environ.get("FORGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("FORGE_BENCH_REDIS", "redis://127.0.0.1:6379/13")
HEALTH_QUEUES = ["email", "data-sync", "embeddings", "file-processing", "notifications"]


async def copy_queue(client: aioredis.Redis, source: str, target: str) -> int:
    """Copy every key of one BullMQ queue to another queue name, byte for byte."""
    copied = 0
    async for batch in _key_batches(client, f"bull:{source}:*"):
        dumps = await _pipeline(client, [("DUMP", k) for k in batch])
        commands = [
            ("RESTORE", k.replace(f"bull:{source}:", f"bull:{target}:", 1), 0, d, "REPLACE")
            for k, d in zip(batch, dumps, strict=True)
            if d is not None
        ]
        await _pipeline(client, commands)
        copied += len(commands)
    return copied


async def delete_queue(client: aioredis.Redis, queue: str) -> None:
    """Delete every key of one BullMQ queue."""
    async for batch in _key_batches(client, f"bull:{queue}:*"):
        await client.delete(*batch)


async def _key_batches(client: aioredis.Redis, pattern: str, size: int = 2000):  # type: ignore[no-untyped-def]
    batch: list[bytes] = []
    async for key in client.scan_iter(match=pattern, count=5000):
        batch.append(key.decode() if isinstance(key, bytes) else key)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


async def _pipeline(client: aioredis.Redis, commands: list[tuple]) -> list:
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    return await pipe.execute()


async def slowest(client: aioredis.Redis) -> tuple[float, str]:
    """The longest entry in SLOWLOG (ms) and its command, then reset the log."""
    entries = await client.slowlog_get(1000)
    await client.slowlog_reset()
    if not entries:
        return 0.0, "-"
    worst = max(entries, key=lambda e: e["duration"])
    command = worst["command"]
    command = command.decode() if isinstance(command, bytes) else str(command)
    return worst["duration"] / 1000, command[:60]


async def redis_usage(client: aioredis.Redis) -> tuple[float, dict[str, float]]:
    """CPU seconds of Redis's main thread so far, and seconds spent inside each command."""
    cpu = await client.info("cpu")
    stats = await client.info("commandstats")
    used = float(cpu["used_cpu_user_main_thread"]) + float(cpu["used_cpu_sys_main_thread"])
    return used, {name.removeprefix("cmdstat_"): v["usec"] / 1e6 for name, v in stats.items()}


async def measured(client: aioredis.Redis, work):  # type: ignore[no-untyped-def]
    """Run `work`: its result, seconds, Redis CPU seconds, top commands by time, longest call."""
    await client.slowlog_reset()
    cpu0, usec0 = await redis_usage(client)
    started = time.perf_counter()
    result = await work
    seconds = time.perf_counter() - started
    cpu1, usec1 = await redis_usage(client)
    spent = sorted(((usec1[c] - usec0.get(c, 0.0), c) for c in usec1), reverse=True)
    top = ", ".join(
        f"{c} {t:.2f}" for t, c in spent[:8] if t >= 0.01 and c not in ("evalsha", "eval")
    )
    return result, seconds, cpu1 - cpu0, top, await slowest(client)


async def read_all(forge: Forge, queue: str) -> int:
    """Read every DLQ record of the queue once, as `dlq clear` does, removing nothing; how many."""
    ctx = forge.dispatcher.context(
        Actor("U0BENCH", Role.OPERATOR, source="cli"),
        Invocation(f"dlq list {queue}", "U0BENCH", source="cli"),
    )
    take, read = Take(queue, 3, cutoff=int(time.time() * 1000)), 0
    while not take.done:
        read += len((await take_next(ctx, take)).jobs)
    return read


def settings_for(state_dsn: str) -> Settings:
    """forge pointed at the bench Redis db and a scratch state store."""
    env = Env(
        _env_file=None,
        redis_url=REDIS_URL,
        forge_state_database_url=state_dsn,
        database_url=PG_ADMIN,
    )
    return Settings(env, Config(queues=HEALTH_QUEUES + ["bench-a"]))


def clear_context(forge: Forge, queue: str):  # type: ignore[no-untyped-def]
    """A handler context for `dlq clear` of this queue."""
    actor = Actor("U0BENCH", Role.OPERATOR, source="cli")
    return forge.dispatcher.context(
        actor, Invocation(f"dlq clear {queue}", "U0BENCH", "C0OPS", source="cli")
    )


async def clear_scope(forge: Forge, queue: str) -> Scope | None:
    """The scope the request's dry run freezes (at request time, so not timed)."""
    spec = REGISTRY.get("dlq clear")
    args = spec.args.model_validate({"queue": queue})
    return (await spec.preview(clear_context(forge, queue), args)).scope


async def forge_clear(forge: Forge, queue: str, scope: Scope | None) -> str:
    """Run the approved `dlq clear` handler once on its frozen scope, as the engine does; its
    summary."""
    spec = REGISTRY.get("dlq clear")
    ctx = clear_context(forge, queue)
    ctx.scope = scope
    return (await spec.handler(ctx, spec.args.model_validate({"queue": queue}))).summary


async def forge_health(forge: Forge, text: str = "queue health") -> tuple[float, str]:
    """Run `queue health` once through the dispatcher; seconds and its summary."""
    started = time.perf_counter()
    outcome = await forge.dispatcher.run(
        Invocation(text, "U0BENCH", source="cli"), actor=Actor("U0BENCH", Role.VIEWER, source="cli")
    )
    return (
        time.perf_counter() - started,
        outcome.result.summary if outcome.result else outcome.message,
    )


async def storm_look(forge: Forge) -> tuple[float, int, int]:
    """`queue health bench-storm` once: milliseconds, its DLQ count, and the count from scratch."""
    started = time.perf_counter()
    outcome = await forge.dispatcher.run(
        Invocation("queue health bench-storm", "U0BENCH", source="cli"),
        actor=Actor("U0BENCH", Role.VIEWER, source="cli"),
    )
    took = (time.perf_counter() - started) * 1000
    ctx = forge.dispatcher.context(
        Actor("U0BENCH", Role.VIEWER, source="cli"), Invocation("queue health", "U0BENCH")
    )
    return (
        took,
        outcome.result.data["queues"][0]["dlq"],
        await full_dlq_count(ctx, "bench-storm", 3),
    )


async def storm(client: aioredis.Redis, forge: Forge, failed: int) -> None:
    """Part 4: `queue health` on one queue holding `failed` jobs Node failed, cold then warm."""
    node = NodeBullMQ(5, REDIS_URL)
    print(f"failing {failed:,} jobs in bench-storm with Node BullMQ 5.63.0 …", flush=True)
    made = await node.fail("bench-storm", failed, attempts=3, timeout=3600)
    print(f"  failed in {made['elapsed_ms'] / 1000:.1f} s")
    ctx = forge.dispatcher.context(
        Actor("U0BENCH", Role.VIEWER, source="cli"), Invocation("queue health", "U0BENCH")
    )
    started = time.perf_counter()
    await full_dlq_count(ctx, "bench-storm", 3)
    scratch = (time.perf_counter() - started) * 1000
    cold, cold_dlq, truth = await storm_look(forge)
    warm = [(await storm_look(forge))[0] for _ in range(10)]
    await node.fail("bench-storm", 1000, attempts=3)
    after_new, new_dlq, new_truth = await storm_look(forge)
    oldest = (await client.zrange("bull:bench-storm:failed", 0, 0))[0].decode()
    await forge.dispatcher.run(
        Invocation(f"dlq retry bench-storm --job {oldest}", "U0BENCH", "C0OPS", source="cli"),
        actor=Actor("U0BENCH", Role.OPERATOR, source="cli"),
    )
    after_retry, retry_dlq, retry_truth = await storm_look(forge)
    exact = (cold_dlq, new_dlq, retry_dlq) == (truth, new_truth, retry_truth)
    print(
        f"queue health bench-storm, {failed:,} failed: first look {cold:.0f} ms; warm median "
        f"{sorted(warm)[5]:.1f} ms, worst {max(warm):.1f} ms (target < 100 ms); after 1,000 "
        f"new failures {after_new:.1f} ms; after a retry of the oldest job {after_retry:.1f} ms"
    )
    print(
        f"  DLQ {cold_dlq:,} → {new_dlq:,} → {retry_dlq:,}, "
        f"{'exact' if exact else 'WRONG'} against a count from scratch, which takes "
        f"{scratch:.0f} ms (the whole DLQ count before it was incremental)\n"
    )


@dataclass(frozen=True)
class Timed:
    """One side of a round: seconds, Redis CPU seconds, top commands, longest Redis call."""

    seconds: float
    cpu: float
    top: str
    longest: tuple[float, str]


SIDES = ("forge dlq clear", "BullMQ queue.clean", "read every record once")


def ratio(timed: dict[str, Timed]) -> float:
    """forge's clear over the read plus BullMQ's clean, in one round."""
    forge_s, clean_s, read_s = (timed[side].seconds for side in SIDES)
    return forge_s / (read_s + clean_s)


async def clear_round(
    client: aioredis.Redis, forge: Forge, jobs: int, number: int
) -> dict[str, Timed]:
    """Part 2, one round: the three sides on fresh copies of `bench-src`, in rotated order."""
    for queue in ("bench-a", "bench-b", "bench-c"):
        await delete_queue(client, queue)
        await copy_queue(client, "bench-src", queue)
    scope = await clear_scope(forge, "bench-a")
    timed: dict[str, Timed] = {}
    for side in SIDES[number % 3 :] + SIDES[: number % 3]:
        if side == SIDES[0]:
            summary, seconds, cpu, top, longest = await measured(
                client, forge_clear(forge, "bench-a", scope)
            )
            print(f"  forge said: {summary}")
        elif side == SIDES[1]:
            node, _, cpu, top, longest = await measured(
                client, NodeBullMQ(5, REDIS_URL).clean("bench-b", limit=jobs, grace_ms=0)
            )
            seconds = node["elapsed_ms"] / 1000
        else:
            _, seconds, cpu, top, longest = await measured(client, read_all(forge, "bench-c"))
            await delete_queue(client, "bench-c")
        timed[side] = Timed(seconds, cpu, top, longest)
    print(f"round {number + 1}:")
    for side in SIDES:
        t = timed[side]
        print(
            f"  {side:<24}{t.seconds:>7.2f} s  Redis CPU {t.cpu:5.2f} s  longest call "
            f"{t.longest[0]:7.1f} ms  ({t.top})"
        )
    print(f"  forge / (read + clean) = {ratio(timed):.2f}\n", flush=True)
    return timed


def summarise(rounds: list[dict[str, Timed]]) -> None:
    """Part 2's medians, and the comparisons the issues ask for."""
    median = {side: statistics.median(r[side].seconds for r in rounds) for side in SIDES}
    ratios = sorted(ratio(r) for r in rounds)
    longest = max(r[SIDES[0]].longest[0] for r in rounds)
    print(
        f"median of {len(rounds)} rounds: forge {median[SIDES[0]]:.2f} s, BullMQ clean "
        f"{median[SIDES[1]]:.2f} s, read {median[SIDES[2]]:.2f} s"
    )
    print(
        f"forge's clear / (reading every record once + BullMQ's clean): median "
        f"{statistics.median(ratios):.2f} (rounds {', '.join(f'{r:.2f}' for r in ratios)}; "
        "target ≤ 1.0)"
    )
    print(
        f"forge / BullMQ's clean: {median[SIDES[0]] / median[SIDES[1]]:.2f} (target ≤ 2.0); "
        f"forge's longest Redis call {longest:.1f} ms (target ≤ 50 ms)\n"
    )


async def build_million(client: aioredis.Redis, per_queue: int, failed_per_queue: int) -> None:
    """5 queues × (waiting + failed DLQ) jobs written straight into BullMQ's key layout."""
    now = int(time.time() * 1000)
    for queue in HEALTH_QUEUES:
        await client.delete(*[f"bull:{queue}:{k}" for k in ("wait", "failed", "id", "meta")])
        waiting = per_queue - failed_per_queue
        for start in range(0, waiting, 10_000):
            ids = [str(i) for i in range(start, min(start + 10_000, waiting))]
            await client.lpush(f"bull:{queue}:wait", *ids)
        await client.hset(
            f"bull:{queue}:0", mapping={"name": "job", "data": "{}", "timestamp": now - 60_000}
        )
        for start in range(0, failed_per_queue, 5_000):
            pipe = client.pipeline(transaction=False)
            for i in range(start, min(start + 5_000, failed_per_queue)):
                job_id = f"f{i}"
                pipe.hset(
                    f"bull:{queue}:{job_id}",
                    mapping={
                        "name": "job",
                        "data": "{}",
                        "atm": 3,
                        "timestamp": now,
                        "finishedOn": now,
                    },
                )
                pipe.zadd(f"bull:{queue}:failed", {job_id: now + i})
            await pipe.execute()
        await client.set(f"bull:{queue}:id", per_queue)


async def main(jobs: int, million: int, failed: int, rounds_wanted: int) -> None:
    """Both benchmarks, printed side by side."""
    reason = node_unavailable_reason()
    if reason:
        sys.exit(f"bench/dlq.py: {reason}")
    client = aioredis.Redis.from_url(REDIS_URL)
    await client.flushdb()
    database = f"forge_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{database}"')
    forge = Forge(settings_for(PG_ADMIN.rsplit("/", 1)[0] + "/" + database))
    await forge.start()
    try:
        print(f"failing {jobs:,} jobs with Node BullMQ 5.63.0 …", flush=True)
        made = await NodeBullMQ(5, REDIS_URL).fail("bench-src", jobs, attempts=3, timeout=1800)
        print(f"  failed in {made['elapsed_ms'] / 1000:.1f} s\n")
        await client.config_set("slowlog-log-slower-than", 0)
        rounds = [await clear_round(client, forge, jobs, n) for n in range(rounds_wanted)]
        summarise(rounds)
        await client.config_set("slowlog-log-slower-than", 10000)
        await build_million(client, million // len(HEALTH_QUEUES), 2_000)
        await forge_health(forge)
        timings = [(await forge_health(forge))[0] for _ in range(10)]
        print(
            f"queue health over {len(HEALTH_QUEUES)} queues, {million:,} jobs: median "
            f"{sorted(timings)[5] * 1000:.1f} ms, worst {max(timings) * 1000:.1f} ms "
            "(target < 50 ms)"
        )
        await storm(client, forge, failed)
    finally:
        await client.config_set("slowlog-log-slower-than", 10000)
        await client.flushdb()
        await client.aclose()
        await forge.aclose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--million", type=int, default=1_000_000)
    parser.add_argument("--storm", type=int, default=200_000, help="failed jobs of part 4")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of part 2")
    options = parser.parse_args()
    asyncio.run(main(options.jobs, options.million, options.storm, options.rounds))

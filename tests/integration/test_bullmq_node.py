"""Real Node BullMQ workers (3.15.8, the runbook's; 5.63.0, the one ClientForge ships) on Redis.

These prove the harness in tests/fakes/bullmq_node.py and pin down, as assertions, the facts about
what Node BullMQ and the Python `bullmq` 3.4.4 package do to the same Redis keys: job hash fields,
pause semantics, worker client names, retries. If one of them changes (an npm or PyPI upgrade), the
test that recorded it fails and says what moved.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from bullmq import Job, Queue

from tests.fakes.bullmq_node import (
    DEFAULT_REDIS_URL,
    NodeBullMQ,
    client_list,
    delete_queue,
    node_unavailable_reason,
    redis_db,
)

REDIS_URL = (
    DEFAULT_REDIS_URL  # db 15 unless FORGE_TEST_NODE_REDIS says otherwise; never flushed here
)
_why = node_unavailable_reason()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(_why is not None, reason=f"Node BullMQ harness: {_why}"),
]

# Queue-level keys that exist after `fail` (the job hashes aside), in both versions.
FAILED_QUEUE_KEYS = {"events", "failed", "id", "meta", "stalled-check"}
# Raw hash fields of a job that failed for good with attempts=3, per Node version.
FAILED_JOB_FIELDS = {
    3: {
        "name",
        "data",
        "opts",
        "timestamp",
        "delay",
        "priority",
        "processedOn",
        "finishedOn",
        "failedReason",
        "stacktrace",
        "attemptsMade",
    },
    5: {
        "name",
        "data",
        "opts",
        "timestamp",
        "delay",
        "priority",
        "processedOn",
        "finishedOn",
        "failedReason",
        "stacktrace",
        "atm",
        "ats",
    },
}
# The hash field that counts attempts made, per Node version.
ATTEMPTS_FIELD = {3: "attemptsMade", 5: "atm"}
# queue.getJobCounts() with no arguments: the types each library counts by default.
NODE_DEFAULT_COUNT_TYPES = {
    3: {"active", "completed", "delayed", "failed", "paused", "waiting", "waiting-children"},
    5: {
        "active",
        "completed",
        "delayed",
        "failed",
        "paused",
        "prioritized",
        "waiting",
        "waiting-children",
    },
}
PYTHON_DEFAULT_COUNT_TYPES = {
    "active",
    "completed",
    "delayed",
    "failed",
    "prioritized",
    "waiting",
    "waiting-children",
}


@pytest.fixture(params=[3, 5], ids=["bullmq3", "bullmq5"])
def node(request: pytest.FixtureRequest) -> NodeBullMQ:
    return NodeBullMQ(request.param, REDIS_URL)


@pytest.fixture
async def queue_name(node: NodeBullMQ) -> AsyncIterator[str]:
    """A queue name no other test uses; all its keys are deleted afterwards."""
    name = f"forge-node{node.version}-{secrets.token_hex(4)}"
    yield name
    await delete_queue(REDIS_URL, name)


@pytest.fixture
async def rds() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def pyqueue(queue_name: str) -> AsyncIterator[Queue]:
    """The Python `bullmq` package's Queue on the same queue."""
    queue = Queue(queue_name, {"connection": REDIS_URL})
    yield queue
    await queue.close()


async def queue_keys(rds: aioredis.Redis, queue: str) -> set[str]:
    """The suffixes of every `bull:<queue>:*` key."""
    return {k.split(":", 2)[2] async for k in rds.scan_iter(match=f"bull:{queue}:*", count=1000)}


# ---- the harness itself --------------------------------------------------------------------------


async def test_add_process_counts_clean_and_get(node: NodeBullMQ, queue_name: str):
    """Every short subcommand works, and counts reflect delayed and prioritized jobs per version."""
    added = await node.add(queue_name, 3, name="plain")
    assert added["ids"] == ["1", "2", "3"]
    await node.add(queue_name, 1, name="later", delay=60_000)
    await node.add(queue_name, 1, name="urgent", priority=5)
    counts = (await node.counts(queue_name))["counts"]
    assert set(counts) == NODE_DEFAULT_COUNT_TYPES[node.version]
    assert counts["delayed"] == 1
    if (
        node.version == 3
    ):  # 3.x keeps prioritized jobs in the wait list (ordered by a `priority` zset)
        assert counts["waiting"] == 4
    else:  # 5.x keeps them in their own `prioritized` zset
        assert (counts["waiting"], counts["prioritized"]) == (3, 1)

    done = await node.process(queue_name, expect=4, timeout_ms=10_000)
    assert sorted(done["processed"]) == ["1", "2", "3", "5"]
    if node.version == 3:  # 3.x: a job with a priority goes before the jobs that have none
        assert done["processed"][0] == "5"
    else:  # 5.x: jobs without a priority (the `wait` list) go before any prioritized job
        assert done["processed"] == ["1", "2", "3", "5"]
    got = await node.get(queue_name, "5")
    assert got["state"] == "completed" and got["job"]["returnvalue"] == {"ok": True}
    assert (await node.get(queue_name, "404")) == {
        "job": None,
        "state": None,
        "bullmq": str(node.version),
    }

    await node.fail(queue_name, 10, attempts=1)
    cleaned = await node.clean(queue_name, limit=0, grace_ms=0, type="failed")
    assert cleaned["removed"] == 10
    assert (await node.counts(queue_name))["counts"]["failed"] == 0


# ---- 4a: failed jobs, counted by Python and Node; the attempts field -----------------------------


async def test_failed_counts_agree_and_attempts_field_name(node, queue_name, pyqueue, rds):
    """After `fail(q, 20, attempts=3)` both libraries count 20 failed; 3.x writes the attempts made
    to the job hash as `attemptsMade`, 5.x as `atm` (with `ats`, attempts started, beside it)."""
    result = await node.fail(queue_name, 20, attempts=3)
    assert result["failed"] == 20 and result["ids"] == [str(i) for i in range(1, 11)]

    py_counts = await pyqueue.getJobCounts()
    node_counts = (await node.counts(queue_name))["counts"]
    assert py_counts["failed"] == node_counts["failed"] == 20
    assert set(py_counts) == PYTHON_DEFAULT_COUNT_TYPES  # no "paused": see the pause tests
    assert set(node_counts) == NODE_DEFAULT_COUNT_TYPES[node.version]

    fields = await rds.hgetall(f"bull:{queue_name}:1")
    assert fields[ATTEMPTS_FIELD[node.version]] == "3"
    other = ATTEMPTS_FIELD[5 if node.version == 3 else 3]
    assert other not in fields
    if node.version == 5:
        assert fields["ats"] == "3"
    else:
        assert "ats" not in fields
    job = await Job.fromId(pyqueue, "1")
    assert job.attemptsMade == 3  # Python reads either field


# ---- 4e: the failed job's hash and the keys around it --------------------------------------------


async def test_failed_job_hash_fields_and_keys(node, queue_name, rds):
    """A failed job is one hash; no `:lock` or `:logs` key stays; the queue has five other keys."""
    before_ms = int(time.time() * 1000)
    await node.fail(queue_name, 2, attempts=3, data={"tenant": "acme"})
    fields = await rds.hgetall(f"bull:{queue_name}:1")
    assert set(fields) == FAILED_JOB_FIELDS[node.version]
    assert fields["name"] == "test-failure"
    assert json.loads(fields["data"]) == {"tenant": "acme", "n": 0}
    assert fields["failedReason"] == "boom 0"
    stack = json.loads(fields["stacktrace"])
    assert isinstance(stack, list) and len(stack) == 3  # one entry per attempt
    assert all(entry.startswith("Error: boom 0\n    at ") for entry in stack)
    opts = json.loads(fields["opts"])
    assert opts["attempts"] == 3 and "backoff" not in opts
    assert (
        before_ms
        <= int(fields["timestamp"])
        <= int(fields["processedOn"])
        <= int(fields["finishedOn"])
    )
    assert (fields["delay"], fields["priority"]) == ("0", "0")

    keys = await queue_keys(rds, queue_name)
    assert keys == FAILED_QUEUE_KEYS | {"1", "2"}  # no 1:lock, 1:logs, marker, wait, active
    assert await rds.type(f"bull:{queue_name}:failed") == "zset"
    assert await rds.zrange(f"bull:{queue_name}:failed", 0, -1) == ["1", "2"]
    got = await node.get(queue_name, "1")
    assert got["state"] == "failed" and got["job"]["attemptsMade"] == 3
    assert got["job"]["failedReason"] == "boom 0" and len(got["job"]["stacktrace"]) == 3


# ---- 4b: pause semantics -------------------------------------------------------------------------


async def test_node_pause_renames_wait_to_paused(node, queue_name, pyqueue, rds):
    """Node's own pause (both versions) RENAMEs `wait` to `paused` and sets `meta.paused` = 1 (5.x
    also deletes `marker`). Python's default getJobCounts() does not count `paused`, so those jobs
    are invisible to it unless asked for by name. Python's resume moves them back and Node processes
    them."""
    await node.add(queue_name, 3)
    assert (await node.pause(queue_name))["paused"] is True
    keys = await queue_keys(rds, queue_name)
    assert "wait" not in keys and "paused" in keys and "marker" not in keys
    assert await rds.lrange(f"bull:{queue_name}:paused", 0, -1) == ["3", "2", "1"]
    assert (await rds.hgetall(f"bull:{queue_name}:meta"))["paused"] == "1"
    counts = await node.counts(queue_name)
    assert counts["paused"] is True and (
        counts["counts"]["paused"],
        counts["counts"]["waiting"],
    ) == (3, 0)
    assert await pyqueue.isPaused() is True
    py_counts = await pyqueue.getJobCounts()
    assert "paused" not in py_counts and py_counts["waiting"] == 0
    assert await pyqueue.getJobCounts("paused") == {"paused": 3}
    assert (await node.process(queue_name, expect=1, timeout_ms=1500))["processed"] == []

    await pyqueue.resume()
    keys = await queue_keys(rds, queue_name)
    assert "paused" not in keys and await rds.llen(f"bull:{queue_name}:wait") == 3
    assert "paused" not in await rds.hgetall(f"bull:{queue_name}:meta")
    done = await node.process(queue_name, expect=3, timeout_ms=10_000)
    assert sorted(done["processed"]) == ["1", "2", "3"]


async def test_python_pause_sets_meta_only_and_leaves_jobs_in_wait(node, queue_name, pyqueue, rds):
    """Python `bullmq` 3.4.4's pause does NOT rename `wait`: it sets `meta.paused` = 1 and deletes
    `marker`, leaving the jobs in `wait`. Node's counts then say paused, with the jobs as
    waiting."""
    await node.add(queue_name, 3)
    await pyqueue.pause()
    keys = await queue_keys(rds, queue_name)
    assert "paused" not in keys and "marker" not in keys
    assert await rds.lrange(f"bull:{queue_name}:wait", 0, -1) == ["3", "2", "1"]
    assert (await rds.hgetall(f"bull:{queue_name}:meta"))["paused"] == "1"
    counts = await node.counts(queue_name)
    assert counts["paused"] is True and (
        counts["counts"]["waiting"],
        counts["counts"]["paused"],
    ) == (3, 0)


@pytest.mark.parametrize("node", [3], indirect=True, ids=["bullmq3"])
async def test_python_pause_does_not_stop_a_node3_worker(node, queue_name, pyqueue, rds):
    """MISMATCH: a Node BullMQ 3.15.8 worker keeps taking jobs from a queue that Python paused.

    3.x workers BRPOPLPUSH straight from `bull:Q:wait` and rely on pause having RENAMEd `wait` to
    `paused`; Python 3.4.4's pause only sets `meta.paused` (and deletes `marker`), so the jobs stay
    in `wait` and a 3.x worker processes them all while the queue still reports paused. Pausing for
    a 3.x fleet needs Node-style semantics (rename `wait` to `paused` as well as setting
    `meta.paused`)."""
    await node.add(queue_name, 3)
    await pyqueue.pause()
    done = await node.process(queue_name, expect=3, timeout_ms=5000)
    assert sorted(done["processed"]) == ["1", "2", "3"] and not done["timed_out"]
    assert await pyqueue.isPaused() is True  # still "paused" while the jobs ran
    assert (await node.counts(queue_name))["counts"]["completed"] == 3


@pytest.mark.parametrize("node", [5], indirect=True, ids=["bullmq5"])
async def test_python_pause_stops_a_node5_worker_and_resume_restarts_it(node, queue_name, pyqueue):
    """A Node BullMQ 5.63.0 worker honours Python's pause (5.x checks `meta.paused` when it moves a
    job to active), and processes the jobs after Python's resume."""
    await node.add(queue_name, 3)
    await pyqueue.pause()
    assert (await node.process(queue_name, expect=1, timeout_ms=1500))["processed"] == []
    await pyqueue.resume()
    done = await node.process(queue_name, expect=3, timeout_ms=10_000)
    assert sorted(done["processed"]) == ["1", "2", "3"]


async def test_node_jobs_added_during_python_pause_go_to_paused_list(
    node, queue_name, pyqueue, rds
):
    """While Python has paused the queue, jobs that Node adds land in `bull:Q:paused` (Node's add
    checks `meta.paused`), where Python's default getJobCounts() does not see them; jobs that Python
    adds land in `wait`. Python's resume moves `paused` into `wait` and Node processes them all."""
    await pyqueue.pause()
    await node.add(queue_name, 2, name="from-node")
    await pyqueue.add("from-python", {}, {})
    assert await rds.lrange(f"bull:{queue_name}:paused", 0, -1) == ["2", "1"]
    assert await rds.lrange(f"bull:{queue_name}:wait", 0, -1) == ["3"]
    py_counts = await pyqueue.getJobCounts()
    assert py_counts["waiting"] == 1 and await pyqueue.getJobCounts("paused") == {"paused": 2}

    await pyqueue.resume()
    assert "paused" not in await queue_keys(rds, queue_name)
    done = await node.process(queue_name, expect=3, timeout_ms=10_000)
    assert sorted(done["processed"]) == ["1", "2", "3"]


# ---- 4c: client names ----------------------------------------------------------------------------


async def new_clients(
    rds: aioredis.Redis, before: set[str], *, want: int, timeout: float = 10.0
) -> list[dict]:
    """Connections to our db opened since `before` (client ids), once `want` of them are up."""
    db = str(redis_db(REDIS_URL))
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        fresh = [c for c in await client_list(rds) if c["id"] not in before and c.get("db") == db]
        if len(fresh) >= want or asyncio.get_running_loop().time() > deadline:
            return fresh
        await asyncio.sleep(0.05)


async def test_worker_connection_names(node, queue_name, rds):
    """A Node worker opens two connections: an unnamed one for commands and a blocking one named
    `bull:<base64(queue)>` in 3.x, and `bull:<base64(queue)>:w:<worker name>` in 5.x (3.x ignores
    the worker's name option). 3.x blocks in BRPOPLPUSH on `wait`, 5.x in BZPOPMIN on `marker`."""
    before = {c["id"] for c in await client_list(rds)}
    b64 = base64.b64encode(queue_name.encode()).decode()
    async with node.worker(queue_name, "W1") as proc:
        assert proc.ready["ready"] is True
        fresh = await new_clients(rds, before, want=2)
        names = sorted(c["name"] for c in fresh)
        blocking = next(c for c in fresh if c["name"])
        if node.version == 3:
            assert names == ["", f"bull:{b64}"]
        else:
            assert names == ["", f"bull:{b64}:w:W1"]
        deadline = asyncio.get_running_loop().time() + 5
        while (
            blocking["cmd"] not in {"brpoplpush", "bzpopmin"}
            and asyncio.get_running_loop().time() < deadline
        ):
            await asyncio.sleep(0.05)
            blocking = next(c for c in await client_list(rds) if c["id"] == blocking["id"])
        assert blocking["cmd"] == ("brpoplpush" if node.version == 3 else "bzpopmin")
    assert proc.result is not None and proc.result["closed"] is True


async def test_plain_queue_sets_no_client_name(node, queue_name, rds):
    """A Node `Queue` object without a worker opens one connection and gives it no name (both
    versions): only workers (and QueueEvents) can be found by name in CLIENT LIST."""
    before = {c["id"] for c in await client_list(rds)}
    async with node.hold_queue(queue_name):
        await new_clients(rds, before, want=1)
        await asyncio.sleep(0.2)  # time for any second connection to show up
        fresh = await new_clients(rds, before, want=1)
        assert [c["name"] for c in fresh] == [""]


# ---- 4d: Python retries, Node processes ----------------------------------------------------------


async def test_python_retry_jobs_then_node_worker_processes_them(node, queue_name, pyqueue, rds):
    """Python's `retryJobs({"state": "failed"})` moves Node-failed jobs to `wait` (with a `marker`),
    and a Node worker of either version processes them. The attempts counter is NOT reset
    (`attemptsMade` / `atm` stays at the exhausted value), so a retried job that fails again goes
    straight back to failed."""
    await node.fail(queue_name, 5, attempts=2)
    await pyqueue.retryJobs({"state": "failed"})
    counts = await pyqueue.getJobCounts()
    assert (counts["failed"], counts["waiting"]) == (0, 5)
    fields = await rds.hgetall(f"bull:{queue_name}:1")
    assert fields[ATTEMPTS_FIELD[node.version]] == "2"
    assert not {"finishedOn", "processedOn", "failedReason"} & set(fields)
    assert "marker" in await queue_keys(rds, queue_name)
    done = await node.process(queue_name, expect=5, timeout_ms=10_000)
    assert sorted(done["processed"], key=int) == ["1", "2", "3", "4", "5"]
    assert (await node.get(queue_name, "1"))["state"] == "completed"


async def test_python_job_retry_then_node_worker_processes_it(node, queue_name, pyqueue):
    """Python's per-job `Job.retry("failed")` on a Node-failed job: a Node worker processes it."""
    await node.fail(queue_name, 2, attempts=1)
    job = await Job.fromId(pyqueue, "2")
    await job.retry("failed")
    done = await node.process(queue_name, expect=1, timeout_ms=10_000)
    assert done["processed"] == ["2"]
    assert (await node.get(queue_name, "1"))["state"] == "failed"

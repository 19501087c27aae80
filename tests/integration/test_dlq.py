"""`dlq …` on real Redis, jobs failed by a Python bullmq Worker, the real state-store archive."""

from __future__ import annotations

import base64
import json
import random
import uuid

import pytest
import redis.asyncio as aioredis
from bullmq import Job, Queue

import commands.queues.dlq
from bot.core.context import Actor
from bot.core.dispatch import Invocation
from bot.core.errors import BackendTimeout, CommandError
from bot.core.parser import parse
from bot.core.registry import REGISTRY, Role
from bot.slack.mrkdwn import mrkdwn
from commands.queues.clear import Take, take_next
from commands.queues.dlq import ClearStopped, _stopped
from tests.integration.test_queues import (  # noqa: F401
    URL,
    ShiftedClock,
    by_queue,
    data_of,
    forge,
    make_jobs,
    rdb,
    run,
    start_forge,
)

pytestmark = pytest.mark.integration
SECRETS = {
    "apiToken": "tok-123456",
    "nested": {"password": "hunter22", "list": [{"client_secret": "cs-987654"}]},
    "Authorization": "Bearer abcdef123456",
    "dsn": "postgres://app:pg-pass-77@db:5432/crm",
}


async def dlq_ids(rdb: aioredis.Redis, queue: str = "email", min_attempts: int = 3) -> list[str]:
    """DLQ members newest first, read independently of forge."""
    ids = await rdb.zrevrange(f"bull:{queue}:failed", 0, -1)
    made = [await rdb.hget(f"bull:{queue}:{i}", "atm") for i in ids]
    return [i for i, a in zip(ids, made, strict=True) if int(a or 0) >= min_attempts]


async def snapshot(rdb: aioredis.Redis) -> dict[str, bytes]:
    """Every key of the test database with its serialized value: any write shows as a difference."""
    raw = aioredis.Redis.from_url(URL)
    keys = [k async for k in raw.scan_iter(count=1000)]
    values = {k.decode(): await raw.dump(k) for k in keys}
    await raw.aclose()
    return values


async def handler_ctx(forge, user: str = "U0OPS"):
    """A handler context as the approval engine builds it."""
    return forge.dispatcher.context(
        Actor(user, Role.OPERATOR, source="cli"),
        Invocation("dlq clear", user, "C0OPS", source="cli"),
    )


async def clear(forge, text: str):
    """Run the destructive handler once, the way the approval engine does after approval."""
    parsed = parse(text, REGISTRY)
    return await parsed.spec.handler(await handler_ctx(forge), parsed.args)


async def test_dlq_count_is_exact_beyond_1001_failed_jobs(forge, rdb):
    """1,500 failed jobs with mixed attempts: the DLQ count covers all, not the newest 1,001."""
    random.seed(7)
    attempts = [random.randint(1, 5) for _ in range(1500)]
    await make_jobs("email", attempts)
    expected = sum(a >= 3 for a in attempts)
    assert by_queue(await run(forge, "queue health email"))["email"]["dlq"] == expected
    assert len(await dlq_ids(rdb)) == expected
    listed = await run(forge, "dlq list email --page 2 --limit 100")
    assert data_of(listed)["total"] == expected
    assert [r[0] for r in data_of(listed)["jobs"]] == (await dlq_ids(rdb))[100:200]


async def test_list_pages_newest_first_with_attempts_and_reason(forge, rdb):
    """Pages cover the whole DLQ newest first; rows: attempts made/allowed, reason's first line."""
    await make_jobs("email", [3, 1, 4, 5, 3, 2, 3])
    members = await dlq_ids(rdb)
    first = await run(forge, "dlq list email --limit 2")
    rows = data_of(first)["jobs"]
    assert [r[0] for r in rows] == members[:2] and data_of(first)["total"] == 5
    assert rows[0][2] in {"3/3", "4/4", "5/5"} and rows[0][4].startswith(
        "Email account not found for"
    )
    assert "page 1 of 3" in first.result.summary
    assert (first.result.page.number, first.result.page.pages, first.result.page.size) == (1, 3, 2)
    last = await run(forge, "dlq list email --page 3 --limit 2")
    assert [r[0] for r in data_of(last)["jobs"]] == members[4:]


async def test_show_redacts_secret_fields_at_any_depth(forge, rdb):
    """Secret-named keys become [redacted]; no secret value appears anywhere in the result."""
    [job_id] = await make_jobs("email", [3], data=SECRETS)
    outcome = await run(forge, f"dlq show email {job_id}")
    result = outcome.result
    dumped = json.dumps(result.data) + result.text + json.dumps(result.fields)
    for secret in ("tok-123456", "hunter22", "cs-987654", "abcdef123456", "pg-pass-77"):
        assert secret not in dumped
    data = result.data["job"]["data"]
    assert data["apiToken"] == data["nested"]["password"] == data["Authorization"] == "[redacted]"
    assert data["nested"]["list"][0]["client_secret"] == "[redacted]" and data["n"] == 0
    assert "Email account not found" in result.text and ("State", "in the DLQ") in result.fields
    missing = (await run(forge, "dlq show email 999999")).message
    assert mrkdwn(missing) == "No job `999999` in `email`."


async def test_export_writes_one_redacted_json_line_per_dlq_job(forge, rdb):
    """JSON Lines: one object per DLQ member, newest first, data decoded and redacted."""
    await make_jobs("email", [3, 1, 5, 4], data=SECRETS)
    outcome = await run(forge, "dlq export email")
    [attachment] = outcome.result.attachments
    lines = [json.loads(line) for line in attachment.content.decode().splitlines()]
    assert [line["id"] for line in lines] == await dlq_ids(rdb)
    assert all(
        line["queue"] == "email" and line["data"]["apiToken"] == "[redacted]" for line in lines
    )
    assert "hunter22" not in attachment.content.decode() and attachment.filename.endswith(".jsonl")


async def test_retry_moves_only_dlq_jobs_back_to_waiting(forge, rdb):
    """DLQ members go back to wait as job.retry() moves them; failed jobs with few attempts stay."""
    await make_jobs("email", [1, 2, 3, 4, 5, 3])
    members = set(await dlq_ids(rdb))
    before = await snapshot(rdb)
    dry = await run(forge, "dlq retry email --dry-run")
    assert data_of(dry)["would_move"] == 4 and await snapshot(rdb) == before
    done = await run(forge, "dlq retry email")
    assert data_of(done)["moved"] == 4
    assert set(await rdb.lrange("bull:email:wait", 0, -1)) == members
    assert await rdb.zcard("bull:email:failed") == 2 and not await dlq_ids(rdb)
    q = Queue("email", {"connection": URL})
    assert (await q.getJobCounts("waiting", "failed")) == {"waiting": 4, "failed": 2}
    await q.close()


async def test_retry_one_job_and_refuse_non_members(forge, rdb):
    """`--job` retries one DLQ member; a failed job under the attempts threshold is refused."""
    ids = await make_jobs("email", [3, 1])
    refused = await run(forge, f"dlq retry email --job {ids[1]}")
    assert mrkdwn(refused.message) == f"Job `{ids[1]}` is not in the DLQ of `email`."
    assert data_of(await run(forge, f"dlq retry email --job {ids[0]}"))["moved"] == [ids[0]]
    assert await rdb.lrange("bull:email:wait", 0, -1) == [ids[0]]


async def test_clear_archives_whole_records_and_leaves_no_key_behind(forge, rdb, monkeypatch):
    """Every removed job's whole hash and log are archived first, no key of it left (a long log:
    its newest 100 lines and how many there were); other failures stay."""
    monkeypatch.setattr(commands.queues.dlq, "BATCH", 3)
    ids = await make_jobs("email", [3, 1, 4, 5, 3, 2, 3, 3])
    q = Queue("email", {"connection": URL})
    for job_id in ids:
        await Job.addJobLog(q, job_id, f"log line of {job_id}")
    await q.close()
    members = await dlq_ids(rdb)
    long_log = [f"line {n}" for n in range(1, 105)]
    await rdb.rpush(f"bull:email:{members[0]}:logs", *long_log)
    records = {i: await rdb.hgetall(f"bull:email:{i}") for i in members}
    preview = await run(forge, "dlq clear email --dry-run")
    assert data_of(preview)["would_remove"] == 6
    assert list(data_of(preview)["reasons"].values()) == [1] * 6
    result = await clear(forge, "dlq clear email")
    assert result.data["removed"] == 6 and result.data["skipped"] == 0
    batch = uuid.UUID(result.data["batch"])
    exported = [
        json.loads(line) for line in (await forge.archive.export(batch)).decode().splitlines()
    ]
    logs = {line["id"]: line.pop("logs") for line in exported}
    assert logs == {members[0]: long_log[-100:], **{i: [f"log line of {i}"] for i in members[1:]}}
    assert [line.pop("log_lines_in_all", None) for line in exported].count(105) == 1
    assert {line.pop("id"): (line.pop("queue"), line)[1] for line in exported} == records
    for job_id in members:
        assert [k async for k in rdb.scan_iter(match=f"bull:email:{job_id}")] == []
        assert [k async for k in rdb.scan_iter(match=f"bull:email:{job_id}:*")] == []
    assert await rdb.zcard("bull:email:failed") == 2 and await rdb.exists(
        f"bull:email:{ids[1]}:logs"
    )
    events = await rdb.xrange("bull:email:events")
    assert sum(int(e[1]["count"]) for e in events if e[1]["event"] == "cleaned") == 6
    archive = await run(forge, "dlq archive email")
    assert (
        data_of(archive)["batches"][0]["id"] == str(batch)
        and data_of(archive)["batches"][0]["jobs"] == 6
    )


async def test_clear_walks_past_windows_without_dlq_jobs(forge, rdb, monkeypatch):
    """Windows of few-attempt failures don't end the clear early; an empty DLQ opens no batch."""
    monkeypatch.setattr(commands.queues.dlq, "BATCH", 2)
    assert (await clear(forge, "dlq clear email")).data["batch"] is None
    old = await make_jobs("email", [3, 4, 3])
    await make_jobs("email", [1, 2, 1, 1])
    result = await clear(forge, "dlq clear email")
    assert result.data["removed"] == 3 and not set(old) & set(
        await rdb.zrange("bull:email:failed", 0, -1)
    )
    assert len(data_of(await run(forge, "dlq archive"))["batches"]) == 1


async def test_clear_skips_jobs_retried_meanwhile(forge, rdb):
    """A job retried between archiving and removal stays in the queue and leaves the archive."""
    await make_jobs("email", [3, 4, 5])
    members = await dlq_ids(rdb)
    ctx = await handler_ctx(forge)
    real_add = ctx.archive.add

    async def add_then_retry(batch, queue, jobs, form):
        added = await real_add(batch, queue, jobs, form)
        if jobs:
            q = Queue("email", {"connection": URL})
            await Job(q, "", None, {}, members[1]).retry("failed")
            await q.close()
        return added

    ctx.archive.add = add_then_retry
    parsed = parse("dlq clear email", REGISTRY)
    result = await parsed.spec.handler(ctx, parsed.args)
    assert result.data["removed"] == 2 and result.data["skipped"] == 1
    assert await rdb.lrange("bull:email:wait", 0, -1) == [members[1]]
    assert await rdb.exists(f"bull:email:{members[1]}")
    exported = (await forge.archive.export(uuid.UUID(result.data["batch"]))).decode().splitlines()
    assert sorted(json.loads(line)["id"] for line in exported) == sorted([members[0], members[2]])


async def test_clear_honours_older_than(state_dsn, rdb):
    """`--older-than` removes only jobs that failed before now minus the duration."""
    clock = ShiftedClock()
    forge = await start_forge(state_dsn, clock)
    try:
        old = await make_jobs("email", [3, 3])
        new = await make_jobs("email", [3, 3])
        finished = {i: int(await rdb.hget(f"bull:email:{i}", "finishedOn")) for i in old + new}
        assert max(finished[i] for i in old) < min(finished[i] for i in new)
        now_ms = int(clock.now().timestamp() * 1000)
        clock.shift_ms = max(finished[i] for i in old) + 60_000 - now_ms
        preview = await run(forge, "dlq clear email --older-than 1m --dry-run")
        assert data_of(preview)["would_remove"] == 2
        result = await clear(forge, "dlq clear email --older-than 1m")
        assert result.data["removed"] == 2
        assert sorted(await rdb.zrange("bull:email:failed", 0, -1)) == sorted(new)
    finally:
        await forge.aclose()


async def test_dry_run_changes_nothing(forge, rdb):
    """`dlq clear --dry-run` only reads: every key and value is unchanged, nothing is archived."""
    await make_jobs("email", [3, 4])
    before = await snapshot(rdb)
    outcome = await run(forge, "dlq clear email --dry-run")
    assert data_of(outcome)["would_remove"] == 2 and await snapshot(rdb) == before
    assert data_of(await run(forge, "dlq archive"))["batches"] == []


INJECTIONS = [
    "dlq list 'email; FLUSHALL'",
    "dlq list email --page '1;DEL x'",
    "dlq list email --limit -5",
    "dlq show email '1 OR 1=1'",
    "dlq show email 'bull:*'",
    "dlq show email '*'",
    "dlq show 'email*' 1",
    "dlq show email ../../etc/passwd",
    "dlq export 'e*'",
    "dlq export email:dlq",
    "dlq retry email --job '1;DEL x'",
    "dlq retry email --job '*'",
    "dlq retry 'email\"; FLUSHALL'",
    "dlq clear 'email; FLUSHALL' --dry-run",
    "dlq clear email --older-than '1h; FLUSHALL' --dry-run",
    "dlq clear email --older-than -1h --dry-run",
    "dlq archive 'x*'",
    'dlq archive-export "\'; DROP TABLE forge.job_archive; --"',
    "queue pause 'email; FLUSHALL'",
    "queue resume bull:email:meta",
    "queue inject-failure 'email*' 3",
    "queue inject-failure email '3; FLUSHALL'",
    "queue health 'bull:email:failed'",
    "queue pause EMAIL",
    "queue pause 'em ail'",
]


async def test_injection_attempts_in_every_argument_change_nothing(forge, rdb):
    """Hostile arguments are refused before any write: every key and value stays the same."""
    await make_jobs("email", [3, 1])
    before, size = await snapshot(rdb), await rdb.dbsize()
    for text in INJECTIONS:
        outcome = await run(forge, text)
        assert outcome.kind in ("failed", "usage"), (text, outcome.kind)
    assert await rdb.dbsize() == size and await snapshot(rdb) == before
    pool = await forge.store.pool()
    assert await pool.fetchval("SELECT count(*) FROM forge.job_archive") == 0


async def test_destructive_injection_is_refused_by_preview_and_handler(forge, rdb):
    """`dlq clear "email; FLUSHALL"` only reaches approval; preview and handler refuse, no write."""
    await make_jobs("email", [3])
    before = await snapshot(rdb)
    assert (await run(forge, "dlq clear 'email; FLUSHALL'")).kind == "approval"
    parsed = parse("dlq clear 'email; FLUSHALL'", REGISTRY)
    for fn in (parsed.spec.preview, parsed.spec.handler):
        with pytest.raises(CommandError, match="is not a queue name"):
            await fn(await handler_ctx(forge), parsed.args)
    assert await snapshot(rdb) == before
    assert parsed.spec.confirm(parsed.args) == "email; FLUSHALL"


async def test_a_redis_failure_stops_clear_without_retrying(forge, rdb, monkeypatch):
    """A failed removal stops the clear at once; nothing removed, each archived job still queued."""
    monkeypatch.setattr(commands.queues.dlq, "BATCH", 2)
    await make_jobs("email", [3, 3, 3, 3, 3, 3])
    await rdb.delete("bull:email:events")
    await rdb.set("bull:email:events", "not a stream")
    with pytest.raises(CommandError, match="stopped after removing 0 jobs") as stopped:
        await clear(forge, "dlq clear email")
    assert "Nothing was retried" in str(stopped.value) and await rdb.zcard("bull:email:failed") == 6
    pool = await forge.store.pool()
    archived = await pool.fetch("SELECT job_id FROM forge.job_archive")
    queued = set(await rdb.zrange("bull:email:failed", 0, -1))
    assert len(archived) >= 2 and {r["job_id"] for r in archived} <= queued


async def test_a_window_that_cannot_be_read_stops_clear_after_what_was_read_before(
    forge, rdb, monkeypatch
):
    """A read failing in the third window: the two read before are archived and removed, then
    the clear stops; the rest stays in the queue, unarchived."""
    monkeypatch.setattr(commands.queues.dlq, "BATCH", 2)
    await make_jobs("email", [3, 3, 3, 3, 3, 3])
    members = await dlq_ids(rdb)
    await rdb.delete(f"bull:email:{members[4]}")
    await rdb.set(f"bull:email:{members[4]}", "not a job hash")
    with pytest.raises(CommandError, match="stopped after removing 4 jobs"):
        await clear(forge, "dlq clear email")
    assert await rdb.zrevrange("bull:email:failed", 0, -1) == members[4:]
    pool = await forge.store.pool()
    archived = await pool.fetch("SELECT job_id FROM forge.job_archive")
    assert sorted(r["job_id"] for r in archived) == sorted(members[:4])


async def test_an_archive_failure_removes_only_what_was_archived_before_it(forge, rdb, monkeypatch):
    """The archive failing on the second window: the first is removed, nothing after it."""
    monkeypatch.setattr(commands.queues.dlq, "BATCH", 2)
    await make_jobs("email", [3, 3, 3, 3, 3, 3])
    members = await dlq_ids(rdb)
    ctx = await handler_ctx(forge)
    real_add, calls = ctx.archive.add, []

    async def add_then_fail(batch, queue, jobs, form):
        calls.append(jobs)
        if len(calls) == 2:
            raise BackendTimeout("state store", 1.0)
        return await real_add(batch, queue, jobs, form)

    ctx.archive.add = add_then_fail
    parsed = parse("dlq clear email", REGISTRY)
    with pytest.raises(ClearStopped, match="stopped after removing 2 jobs"):
        await parsed.spec.handler(ctx, parsed.args)
    assert await rdb.zrevrange("bull:email:failed", 0, -1) == members[2:]
    assert await rdb.exists(*[f"bull:email:{m}" for m in members[2:]]) == 4


def test_a_timeout_during_clear_stays_an_unknown_outcome():
    """A timeout keeps its BackendTimeout type, so the approval engine marks the outcome unknown."""
    batch = uuid.uuid4()
    err = _stopped(BackendTimeout("redis", 5.0), "email", 1500, batch)
    assert isinstance(err, ClearStopped) and isinstance(err, BackendTimeout)
    assert "stopped after removing 1,500 jobs" in str(err) and str(batch) in str(err)


async def test_archive_export_is_redacted_and_needs_a_known_batch(forge, rdb):
    """The batch comes back as JSON Lines, secrets redacted; unknown or malformed ids refused."""
    await make_jobs("email", [3, 3], data=SECRETS)
    for job_id in await dlq_ids(rdb):
        await rdb.rpush(
            f"bull:email:{job_id}:logs", "calling CRM with Authorization: Bearer abcdef123456"
        )
    result = await clear(forge, "dlq clear email")
    outcome = await run(forge, f"dlq archive-export {result.data['batch']}")
    [attachment] = outcome.result.attachments
    lines = [json.loads(line) for line in attachment.content.decode().splitlines()]
    assert len(lines) == 2 and all(
        line["data"]["nested"]["password"] == "[redacted]" for line in lines
    )
    assert all(line["logs"][0].startswith("calling CRM with Authorization") for line in lines)
    assert "hunter22" not in attachment.content.decode()
    assert "abcdef123456" not in attachment.content.decode()
    assert "No archived jobs" in (await run(forge, f"dlq archive-export {uuid.uuid4()}")).message
    assert "is not a batch id" in (await run(forge, "dlq archive-export nope")).message


@pytest.mark.parametrize("form", ["rdb", "msgpack"])
async def test_both_archive_formats_export_the_whole_job_hash(forge, rdb, form):
    """Redis 7 DUMP payloads and Redis 6 packed field lists export exactly what HGETALL showed."""
    await make_jobs("email", [3, 3], data={"token": "kept-in-the-archive", "text": "ünïcødé"})
    members = await dlq_ids(rdb)
    before = {m: await rdb.hgetall(f"bull:email:{m}") for m in members}
    window = await take_next(await handler_ctx(forge), Take("email", 3, cutoff=2**53, form=form))
    batch = await forge.archive.open_batch("email", reason="test", actor_id="U0OPS")
    await forge.archive.add(batch, "email", window.jobs, form)
    exported = [
        json.loads(line) for line in (await forge.archive.export(batch)).decode().splitlines()
    ]
    assert {e.pop("id"): {k: v for k, v in e.items() if k != "queue"} for e in exported} == before


async def test_an_unreadable_log_is_exported_as_it_is_with_the_reason(forge, rdb):
    """A log column that is not [count, lines] does not cost the export: it is shown raw."""
    await make_jobs("email", [3])
    window = await take_next(await handler_ctx(forge), Take("email", 3, cutoff=2**53))
    [(job_id, name, record, _)] = window.jobs
    batch = await forge.archive.open_batch("email", reason="test", actor_id="U0OPS")
    await forge.archive.add(batch, "email", [(job_id, name, record, b"\xc1not msgpack")])
    [line] = [json.loads(x) for x in (await forge.archive.export(batch)).decode().splitlines()]
    assert line["log_error"] and base64.b64decode(line["log_base64"]) == b"\xc1not msgpack"
    assert line["id"] == job_id and "data" in line


async def test_the_walk_stays_exact_while_the_failed_set_changes(forge, rdb):
    """Ties go by zset byte order; a departed cursor job or new failures skip or repeat nothing."""
    now = 1_700_000_000_000
    scores = {"8": now, "9": now, "10": now, "11": now, "a": now - 1000, "b": now - 1000}
    for job_id in [*scores, "new"]:
        await rdb.hset(f"bull:email:{job_id}", mapping={"name": "n", "data": "{}", "atm": 3})
    await rdb.zadd("bull:email:failed", scores)
    ctx, take = await handler_ctx(forge), Take("email", 3, cutoff=now, window=2)
    walked = [job[0] for job in (await take_next(ctx, take)).jobs]
    assert walked == ["9", "8"] and take.cursor == ("8", str(now))
    await rdb.zrem("bull:email:failed", "8")
    await rdb.zadd("bull:email:failed", {"new": now + 5})
    while not take.done:
        walked += [job[0] for job in (await take_next(ctx, take)).jobs]
    assert walked == ["9", "8", "11", "10", "b", "a"]


async def test_clear_reloads_scripts_redis_forgot(forge, rdb, monkeypatch):
    """After SCRIPT FLUSH a pipelined removal's refused script runs once; none lost or repeated."""
    monkeypatch.setattr(commands.queues.dlq, "BATCH", 2)
    await make_jobs("email", [3, 3, 3, 3, 3])
    await rdb.script_flush()
    result = await clear(forge, "dlq clear email")
    assert result.data["removed"] == 5 and result.data["skipped"] == 0
    assert await rdb.zcard("bull:email:failed") == 0
    assert (
        len((await forge.archive.export(uuid.UUID(result.data["batch"]))).decode().splitlines())
        == 5
    )

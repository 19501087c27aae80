"""The background lease in the real state store: one leader at a time, handed over on stop or on
death; the journal of acked work returned once."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.background.leader import Job, Leader
from bot.background.lease import Lease, Presence
from bot.state.inflight import Acked, Inflight
from bot.state.store import StateStore

pytestmark = pytest.mark.integration
TTL = 1.5


@pytest.fixture
async def store(state_dsn):
    """The test's state store."""
    store = StateStore(state_dsn, 5.0)
    await store.start()
    yield store
    await store.aclose()


def leader(store: StateStore, name: str, ticks: list[str]) -> Leader:
    """A replica's leader whose one job notes the replica's name on every tick."""

    async def tick() -> None:
        ticks.append(name)

    return Leader(
        Lease(store, "background", name, TTL, 5.0),
        Presence(store, name, 5.0),
        [Job("note", tick, 0.05)],
    )


async def test_one_leader_at_a_time(store):
    """Of three replicas trying the lease together, exactly one runs the jobs."""
    ticks: list[str] = []
    leaders = [leader(store, f"r{i}", ticks) for i in range(3)]
    assert sorted(await asyncio.gather(*(each.step() for each in leaders))) == [False, False, True]
    await asyncio.sleep(0.3)
    await asyncio.gather(*(each.step() for each in leaders))
    await asyncio.sleep(0.3)
    assert len(set(ticks)) == 1 and len(ticks) >= 5
    for each in leaders:
        await each.close()


async def test_a_clean_stop_hands_over_at_the_next_try(store):
    """The leader's close releases the lease; another replica leads at its next step."""
    ticks: list[str] = []
    first, second = leader(store, "r1", ticks), leader(store, "r2", ticks)
    assert await first.step() and not await second.step()
    await first.close()
    assert await second.step()
    await second.close()


async def test_a_dead_leader_is_replaced_once_its_lease_expires(store):
    """A leader that stops renewing (killed) loses the lease after its TTL, never before."""
    ticks: list[str] = []
    dead, heir = leader(store, "dead", ticks), leader(store, "heir", ticks)
    assert await dead.step()
    killed = time.monotonic()
    heir_task = asyncio.create_task(heir.run_forever())
    while not heir.leading:
        assert time.monotonic() - killed < TTL * 3, "no takeover"
        await asyncio.sleep(0.02)
    took = time.monotonic() - killed
    assert TTL * 0.9 <= took <= TTL + heir.renew_every + 0.5
    assert not dead.lease.held  # the dead leader's own deadline passed first
    heir_task.cancel()
    await heir.close()
    await dead.close()


async def test_jobs_stop_when_the_lease_cannot_be_renewed(store):
    """A leader cut off from the state store stops its jobs by its own deadline."""
    ticks: list[str] = []
    cut_off = leader(store, "r1", ticks)
    assert await cut_off.step()
    await store.aclose()
    store._dsn = "postgresql://postgres@127.0.0.1:9/nowhere"  # the store is now unreachable
    await asyncio.sleep(TTL + 0.1)
    assert not await cut_off.step()
    seen = len(ticks)
    await asyncio.sleep(0.3)
    assert len(ticks) == seen
    await cut_off.close()


async def test_a_dead_replicas_acked_work_is_returned_once(store):
    """Work journaled by a replica that stopped beating is handed to one caller, once."""
    await Presence(store, "gone", 5.0).beat()
    journal = Inflight(store, "gone", 5.0)
    await journal.acked(Acked("req1", "command", "U0OPS", "C0OPS", "whoami"))
    await Presence(store, "alive", 5.0).beat()
    await Inflight(store, "alive", 5.0).acked(Acked("req2", "command", "U0OPS", "C0OPS", "help"))
    pool = await store.pool()
    await pool.execute(
        "UPDATE forge.replicas SET seen_at = now() - interval '1 minute' WHERE id = 'gone'"
    )
    await pool.execute("UPDATE forge.inflight SET acked_at = now() - interval '1 minute'")
    found = await asyncio.gather(*(Inflight(store, "x", 5.0).orphans(10) for _ in range(3)))
    assert sorted(len(f) for f in found) == [0, 0, 1]
    [[work]] = [f for f in found if f]
    assert (work.request_id, work.replica, work.text) == ("req1", "gone", "whoami")


async def test_handed_back_work_goes_to_one_replica(store):
    """Work a stopping replica handed back is claimed by exactly one other replica."""
    journal = Inflight(store, "stopping", 5.0)
    for n in range(5):
        await journal.acked(Acked(f"req{n}", "command", "U0OPS", "C0OPS", "whoami"))
    await journal.hand_back(["req0", "req1", "req2"])
    taken = await asyncio.gather(*(Inflight(store, f"r{i}", 5.0).take_back() for i in range(3)))
    ids = sorted(w.request_id for batch in taken for w in batch)
    assert ids == ["req0", "req1", "req2"]

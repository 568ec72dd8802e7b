"""Facility leases and fenced mission writes against the real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from dispatcher.api.mission_mapping import build_draft
from dispatcher.api.mission_schemas import MissionCreate
from dispatcher.config import FacilitySettings, PlaceSettings
from dispatcher.leadership.service import Leadership
from dispatcher.leadership.state import Fence, FencedOut, LeaseTiming
from dispatcher.missions.lifecycle import MissionEvent, MissionStatus
from dispatcher.missions.store import CreateResult, TransitionResult
from dispatcher.ops.caller import Caller
from dispatcher.ops.missions import MissionOps
from dispatcher.storage import leases
from dispatcher.storage.fleet_store import sync_facilities
from tests.conftest import eventually

NORTH = FacilitySettings(
    key="north",
    name="North Hospital",
    places=[
        PlaceSettings(name="Ward A", lat=52.5218, lon=13.4061),
        PlaceSettings(name="Radiology", lat=52.5209, lon=13.4095),
    ],
)
SYSTEM = Caller.system("dispatch")
BODY: dict[str, Any] = {"pickup": {"place": "Ward A"}, "dropoff": {"place": "Radiology"}}


@pytest.fixture
async def pool(pg_pool: asyncpg.Pool) -> asyncpg.Pool:
    await sync_facilities(pg_pool, [NORTH])
    return pg_pool


async def _mission(ops: MissionOps) -> uuid.UUID:
    request = MissionCreate.model_validate(BODY)
    outcome = await ops.create(
        SYSTEM,
        NORTH.spec,
        lambda: build_draft(request, NORTH.spec, created_by="test", idempotency_key=None),
    )
    assert isinstance(outcome, CreateResult)
    return outcome.mission.id


async def test_token_grows_with_every_new_tenure(pool: asyncpg.Pool) -> None:
    fid = NORTH.id
    assert await leases.acquire(pool, fid, "a", 30.0) == 1
    # Held and unexpired: another holder is refused, the holder renews its tenure.
    assert await leases.acquire(pool, fid, "b", 30.0) is None
    assert await leases.renew(pool, fid, "a", 1, 30.0)
    assert not await leases.renew(pool, fid, "a", 2, 30.0)  # no such tenure
    assert not await leases.renew(pool, fid, "b", 1, 30.0)
    # Released: the next holder takes it at once, with the next token.
    assert await leases.release(pool, fid, "a", 1)
    assert await leases.acquire(pool, fid, "b", 30.0) == 2
    assert not await leases.renew(pool, fid, "a", 1, 30.0)
    row = await leases.read(pool, fid)
    assert row is not None and (row.holder, row.token, row.valid) == ("b", 2, True)


async def test_expiry_is_judged_by_the_database_clock(pool: asyncpg.Pool) -> None:
    fid = NORTH.id
    assert await leases.acquire(pool, fid, "a", 0.2) == 1
    assert await leases.acquire(pool, fid, "b", 30.0) is None
    await asyncio.sleep(0.3)
    # Expired: "a" may no longer renew, "b" takes it with a new token.
    assert not await leases.renew(pool, fid, "a", 1, 30.0)
    assert await leases.acquire(pool, fid, "b", 30.0) == 2
    # The same holder after its own lease expired starts a new tenure too.
    await leases.release(pool, fid, "b", 2)
    assert await leases.acquire(pool, fid, "b", 30.0) == 3


async def test_a_dead_holder_is_reclaimed_only_by_its_exact_tenure(pool: asyncpg.Pool) -> None:
    fid = NORTH.id
    assert await leases.acquire(pool, fid, "dead", 30.0) == 1
    assert await leases.acquire(pool, fid, "new", 30.0, reclaim=("dead", 7)) is None
    assert await leases.acquire(pool, fid, "new", 30.0, reclaim=("dead", 1)) == 2


async def test_a_stale_leaders_mission_write_is_refused(pool: asyncpg.Pool) -> None:
    fid = NORTH.id
    ops = MissionOps(pool)
    mission_id = await _mission(ops)
    old = await leases.acquire(pool, fid, "old", 0.2)
    assert old == 1
    vehicle = uuid.uuid4()
    await pool.execute(
        "INSERT INTO vehicles (id, kind, manufacturer, serial, facility_id) "
        "VALUES ($1, 'robot', 'test', 'r1', $2)",
        vehicle,
        fid,
    )
    # While the tenure holds, the fenced write commits.
    done = await ops.transition(
        SYSTEM, mission_id, MissionEvent.ASSIGNED, vehicle_id=vehicle,
        fence=Fence(fid, "old", 1), scope=None,
    )  # fmt: skip
    assert isinstance(done, TransitionResult)
    assert done.mission.status is MissionStatus.ASSIGNED
    await asyncio.sleep(0.3)
    new = await leases.acquire(pool, fid, "new", 30.0)
    assert new == 2
    before = await pool.fetchval("SELECT count(*) FROM mission_events")
    with pytest.raises(FencedOut) as refused:
        await ops.transition(
            SYSTEM, mission_id, MissionEvent.UNASSIGNED, vehicle_id=vehicle,
            reason="stale", fence=Fence(fid, "old", 1),
        )  # fmt: skip
    assert refused.value.fence.token == 1
    assert await pool.fetchval("SELECT count(*) FROM mission_events") == before
    assert await pool.fetchval("SELECT status FROM missions WHERE id = $1", mission_id) == (
        "assigned"
    )
    # The current leader's write goes through.
    ok = await ops.transition(
        SYSTEM, mission_id, MissionEvent.UNASSIGNED, vehicle_id=vehicle, reason="replan",
        fence=Fence(fid, "new", 2),
    )  # fmt: skip
    assert isinstance(ok, TransitionResult)


async def test_a_takeover_waits_for_a_fenced_write_in_flight(pool: asyncpg.Pool) -> None:
    """The fence check locks the lease row: a takeover lands after the write, not in it."""
    fid = NORTH.id
    assert await leases.acquire(pool, fid, "old", 0.3) == 1
    async with pool.acquire() as conn, conn.transaction():
        assert await leases.fence_holds(conn, fid, "old", 1)
        await asyncio.sleep(0.4)  # expired meanwhile, but the row is share-locked
        taking = asyncio.create_task(leases.acquire(pool, fid, "new", 30.0))
        await asyncio.sleep(0.2)
        assert not taking.done()
    assert await taking == 2


async def test_leadership_steps_down_when_another_holds_the_lease(pool: asyncpg.Pool) -> None:
    """A renewal refused (someone took the lease) makes the daemon standby at once; a
    refused fenced write does the same, and is counted."""
    timing = LeaseTiming.of(1.5, renew_s=0.1, poll_s=0.1)
    leadership = Leadership(pool, [(NORTH.id, "north")], holder="me", timing=timing)
    await leadership.start()
    assert leadership.roles() == {"north": "active"}
    fence = leadership.fence(NORTH.id)
    assert fence is not None and fence.token == 1
    task = asyncio.create_task(leadership.run())
    try:
        # Another holder forces its way in (as if the lease had expired).
        await pool.execute(
            "UPDATE facility_leases SET holder = 'other', token = token + 1 WHERE facility_id = $1",
            NORTH.id,
        )
        await eventually(lambda: leadership.roles() == {"north": "standby"}, timeout=2.0)
        assert leadership.fence(NORTH.id) is None
        # It comes back once the other's lease expires.
        await eventually(lambda: leadership.roles() == {"north": "active"}, timeout=5.0)
        again = leadership.fence(NORTH.id)
        assert again is not None and again.token == 3
        leadership.fenced_out(NORTH.id)
        assert not leadership.leads(NORTH.id)
        await leadership.release_all()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

"""The dispatch engine behind the facility gate, with a real Leadership on PostgreSQL.

A standby engine neither plans nor sends for the facility; it takes the facility over when
the lease is free and dispatches its waiting missions; a write with a stale token is
refused (counted), the engine steps down at once and forgets the leg without a word to
the vehicle.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from dispatcher.config import DispatchSettings
from dispatcher.dispatch.candidates import CandidateFinder
from dispatcher.dispatch.charging import ChargePolicy
from dispatcher.dispatch.debounce import Debouncer
from dispatcher.dispatch.engine import DispatchEngine
from dispatcher.dispatch.facility_gate import gate_channels
from dispatcher.dispatch.intake import MissionIntake
from dispatcher.dispatch.legs import LegProgress, LegProgressKind
from dispatcher.dispatch.planning import Planner
from dispatcher.dispatch.problem import Speeds
from dispatcher.dispatch.service import DispatchService
from dispatcher.leadership.service import Leadership
from dispatcher.leadership.state import LeaseTiming
from dispatcher.ops.missions import MissionOps
from dispatcher.planner import PlannerOptions
from dispatcher.storage import leases
from dispatcher.storage.event_stream import EventHub, EventReader
from dispatcher.storage.fleet_store import sync_facilities
from dispatcher.storage.live_positions import LivePositions
from fleet.model import VehicleKind
from geo.facility_maps import FacilityMaps
from tests.conftest import eventually
from tests.integration.dispatch.conftest import WARD_A, RecordingChannel, Rig, robot
from tests.integration.dispatch.test_engine import create
from tests.integration.ops.conftest import NORTH
from tests.unit.api.fakes import StaticFleet


@dataclass
class GatedRig:
    rig: Rig
    leadership: Leadership


@pytest.fixture
async def gated(
    pg_pool: asyncpg.Pool, pg_dsn: str, redis_client: aioredis.Redis, redis_prefix: str
) -> AsyncIterator[GatedRig]:
    await sync_facilities(pg_pool, [NORTH])
    # Someone else leads north when the engine starts: it is a standby.
    assert await leases.acquire(pg_pool, NORTH.id, "other", 60.0) == 1
    positions = LivePositions(redis_client, key_prefix=redis_prefix, max_age_s=60.0)
    fleet = StaticFleet()
    channel = RecordingChannel()
    # Renewals far apart: the fence, not a renewal, is what notices the lease is gone.
    timing = LeaseTiming.of(30.0, renew_s=14.0, poll_s=0.1)
    leadership = Leadership(pg_pool, [(NORTH.id, NORTH.key)], holder="me", timing=timing)
    await leadership.start()
    s = DispatchSettings()
    engine = DispatchEngine(
        ops=MissionOps(pg_pool),
        fleet=fleet,
        channels=gate_channels(
            {VehicleKind.ROBOT: channel},
            leadership,
            lambda vid: v.facility_id if (v := fleet.get(vid)) is not None else None,
        ),
        planner=Planner(
            strategy="greedy",
            options=PlannerOptions(time_limit_s=0.3, use_vroom=False),
            quick_time_limit_s=0.2,
            speeds=Speeds(),
            service_s=30,
            finder=CandidateFinder(positions, pg_pool, radius_m=5000, count=8, max_age_s=60.0),
        ),
        maps=FacilityMaps([NORTH.spec]),
        policy=ChargePolicy(s.charge_below_pct, s.resume_above_pct, s.reserve_pct),
        debounce=Debouncer(quiet_s=0.05, max_wait_s=0.2),
        tick_s=0.5,
        gate=leadership,
    )
    leadership.attach(engine)
    hub = EventHub(pg_dsn)
    service = DispatchService(
        engine, MissionIntake(engine, EventReader(pg_pool), hub, poll_s=0.2), None
    )
    tasks = [
        asyncio.create_task(service.run(), name="test.dispatch"),
        asyncio.create_task(leadership.run(), name="test.leadership"),
    ]
    try:
        yield GatedRig(Rig(pg_pool, engine, fleet, channel, redis_client, positions), leadership)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await hub.close()
    assert channel.violations == []


def _refused() -> float:
    return REGISTRY.get_sample_value("fleetd_fenced_writes_refused_total") or 0.0


async def test_standby_waits_takes_over_and_steps_down_when_fenced(gated: GatedRig) -> None:
    rig, leadership = gated.rig, gated.leadership
    await rig.add_vehicle(robot("r1", WARD_A))
    mission_id = await create(rig)
    await asyncio.sleep(1.0)
    # A standby: the mission is not even in memory, nothing was sent or written.
    assert leadership.roles() == {"north": "standby"}
    assert mission_id not in rig.engine.missions
    assert rig.channel.released == []
    assert await rig.events(mission_id) == ["created"]

    # The other daemon hands over: the engine loads the mission and dispatches it.
    assert await leases.release(rig.pool, NORTH.id, "other", 1)
    await eventually(lambda: leadership.roles() == {"north": "active"})
    await eventually(lambda: len(rig.channel.legs_for(mission_id)) == 1)
    leg = rig.channel.legs_for(mission_id)[0]
    await eventually(lambda: rig.engine.holdings.of_mission(mission_id) is not None)
    assert (await rig.events(mission_id))[-1] == "assigned"

    # A third daemon takes the lease (as if ours had expired unseen): the next write of
    # the engine is refused, counted, and the engine steps down at once.
    refused_before = _refused()
    await rig.pool.execute(
        "UPDATE facility_leases SET holder = 'thief', token = token + 1 WHERE facility_id = $1",
        NORTH.id,
    )
    events_before = await rig.events(mission_id)
    rig.engine.report(
        LegProgress(leg.leg_id, leg.vehicle_id, mission_id, LegProgressKind.TO_PICKUP, time.time())
    )
    await eventually(lambda: _refused() == refused_before + 1)
    assert not leadership.leads(NORTH.id)
    await eventually(lambda: mission_id not in rig.engine.missions)
    assert rig.engine.holdings.of_mission(mission_id) is None
    assert await rig.events(mission_id) == events_before
    # The leg was forgotten, not withdrawn: the vehicle is the new leader's to reconcile.
    assert rig.channel.withdrawn == []
    assert leadership.roles() == {"north": "standby"}

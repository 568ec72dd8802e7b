"""Fixtures for the dispatch engine: a running engine on real Postgres and Redis.

Vehicles are a fixed fleet view (fleetd's own ``FleetLookup`` interface) whose rows exist
in ``vehicles`` and whose positions are in Redis GEO; legs go to :class:`RecordingChannel`,
an in-test ``LegChannel`` that records releases and withdrawals and checks that no
vehicle ever holds two open legs. Progress is reported to the engine by the test.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import redis.asyncio as aioredis

from dispatcher.config import DispatchSettings
from dispatcher.dispatch.candidates import CandidateFinder
from dispatcher.dispatch.charging import ChargePolicy, Station
from dispatcher.dispatch.debounce import Debouncer
from dispatcher.dispatch.engine import DispatchEngine
from dispatcher.dispatch.intake import MissionIntake
from dispatcher.dispatch.legs import Leg, LegFailure, LegProgress, LegProgressKind
from dispatcher.dispatch.planning import Planner
from dispatcher.dispatch.problem import Speeds
from dispatcher.dispatch.service import DispatchService
from dispatcher.dispatch.zone_rules import ZoneRules
from dispatcher.links.commands import CommandOutcome, CommandResult, VehicleCommand
from dispatcher.links.vehicle_events import VehicleEvent
from dispatcher.planner import PlannerOptions
from dispatcher.storage.event_stream import EventHub, EventReader
from dispatcher.storage.fleet_store import sync_facilities
from dispatcher.storage.live_positions import LivePositions
from fleet.model import VehicleKind, VehicleView
from geo.facility_maps import FacilityMaps
from tests.integration.ops.conftest import NORTH
from tests.unit.api.fakes import StaticFleet, make_vehicle

WARD_A = (52.5218, 13.4061)
RADIOLOGY = (52.5209, 13.4095)


@dataclass
class RecordingChannel:
    """An in-test LegChannel: answers ``outcome`` (per vehicle in ``refuse``: impossible)."""

    released: list[Leg] = field(default_factory=list)
    withdrawn: list[tuple[Leg, LegFailure]] = field(default_factory=list)
    open: dict[uuid.UUID, Leg] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    refuse: set[uuid.UUID] = field(default_factory=set)
    #: Missions whose old vehicle still carries them out (what ``releasing`` answers).
    letting_go: set[uuid.UUID] = field(default_factory=set)
    #: Releases to answer "retry" (the broker away), per vehicle, before taking them.
    unreachable: dict[uuid.UUID, int] = field(default_factory=dict)
    #: (vehicle, "release" or "withdraw", leg id), in the order the engine called.
    calls: list[tuple[uuid.UUID, str, str]] = field(default_factory=list)
    #: Drivers whose phone still runs a trip (what ``adopt`` answers), and what it took.
    on_a_trip: set[uuid.UUID] = field(default_factory=set)
    adopted: list[tuple[Leg, int]] = field(default_factory=list)

    def adopt(self, leg: Leg, reached: int) -> bool:
        if leg.vehicle_id not in self.on_a_trip:
            return False
        self.adopted.append((leg, reached))
        self.open[leg.vehicle_id] = leg
        return True

    async def release(self, leg: Leg) -> CommandResult:
        self.calls.append((leg.vehicle_id, "release", leg.leg_id))
        await asyncio.sleep(0)  # a real channel awaits the broker: let others interleave
        if leg.vehicle_id in self.open:
            self.violations.append(f"{leg.vehicle_id} got {leg.leg_id} while holding one")
        if leg.mission_id is not None and any(
            o.mission_id == leg.mission_id for o in self.open.values()
        ):
            self.violations.append(f"mission {leg.mission_id} released twice")
        self.released.append(leg)
        if self.unreachable.get(leg.vehicle_id, 0) > 0:
            self.unreachable[leg.vehicle_id] -= 1
            return CommandResult(
                leg.vehicle_id, VehicleCommand.ORDER, CommandOutcome.RETRY, leg.leg_id
            )
        if leg.vehicle_id in self.refuse:
            return CommandResult(
                leg.vehicle_id, VehicleCommand.ORDER, CommandOutcome.IMPOSSIBLE, leg.leg_id
            )
        self.open[leg.vehicle_id] = leg
        return CommandResult(leg.vehicle_id, VehicleCommand.ORDER, CommandOutcome.DONE, leg.leg_id)

    def releasing(self) -> frozenset[uuid.UUID]:
        return frozenset(self.letting_go)

    async def withdraw(self, leg: Leg, why: LegFailure) -> CommandResult:
        self.calls.append((leg.vehicle_id, "withdraw", leg.leg_id))
        self.withdrawn.append((leg, why))
        self.open.pop(leg.vehicle_id, None)
        return CommandResult(
            leg.vehicle_id, VehicleCommand.CANCEL_ORDER, CommandOutcome.DONE, leg.leg_id
        )

    def observe(self, event: VehicleEvent) -> Sequence[LegProgress]:
        return ()

    def forget(self, vehicle_id: uuid.UUID) -> None:
        """Nothing to drop: ``open`` is what the vehicles hold, and forgetting tells them
        nothing (they carry on with the new leader)."""

    async def tick(self, now: float) -> Sequence[LegProgress]:
        return ()

    def close(self, leg: Leg) -> None:
        self.open.pop(leg.vehicle_id, None)

    def legs_for(self, mission_id: uuid.UUID) -> list[Leg]:
        return [leg for leg in self.released if leg.mission_id == mission_id]


@dataclass
class ShiftedClock:
    """The planner's clock: the wall clock (UTC) ``ahead_s`` ahead, so a test can move
    the engine's time on (a booking becomes due) without waiting for it."""

    ahead_s: float = 0.0

    def __call__(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.ahead_s)


@dataclass
class Rig:
    """A running engine and what the test drives it with."""

    pool: asyncpg.Pool
    engine: DispatchEngine
    fleet: StaticFleet
    channel: RecordingChannel
    redis: aioredis.Redis
    positions: LivePositions
    clock: ShiftedClock = field(default_factory=ShiftedClock)

    def progress(self, leg: Leg, kind: LegProgressKind, failure: LegFailure | None = None) -> None:
        if kind in (LegProgressKind.FINISHED, LegProgressKind.REFUSED, LegProgressKind.FAILED):
            self.channel.close(leg)
        self.engine.report(
            LegProgress(leg.leg_id, leg.vehicle_id, leg.mission_id, kind, time.time(), failure)
        )

    async def add_vehicle(self, view: VehicleView) -> None:
        await self.pool.execute(
            "INSERT INTO vehicles (id, facility_id, kind, manufacturer, serial) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            view.id, view.facility_id, view.kind.value, view.key.manufacturer, view.key.serial,
        )  # fmt: skip
        self.fleet.vehicles[view.id] = view
        assert view.position is not None
        member = str(view.id)
        await self.redis.geoadd(
            self.positions.geo_key(view.facility_id),
            (view.position.lon, view.position.lat, member),
        )
        await self.redis.zadd(self.positions.seen_key(view.facility_id), {member: time.time()})

    async def status(self, mission_id: uuid.UUID) -> str:
        value: str = await self.pool.fetchval(
            "SELECT status FROM missions WHERE id = $1", mission_id
        )
        return value

    async def events(self, mission_id: uuid.UUID) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT event FROM mission_events WHERE mission_id = $1 ORDER BY seq", mission_id
        )
        return [r["event"] for r in rows]


def robot(serial: str, at: tuple[float, float], **changes: object) -> VehicleView:
    return make_vehicle(NORTH.id, serial, lat=at[0], lon=at[1], **changes)  # type: ignore[arg-type]


STATION = Station("charger-1", NORTH.id, "n-charge", 52.5215, 13.4070)


def build_engine(
    pool: asyncpg.Pool,
    positions: LivePositions,
    fleet: StaticFleet,
    channel: RecordingChannel,
    clock: ShiftedClock | None = None,
    kinds: tuple[VehicleKind, ...] = (VehicleKind.ROBOT,),
) -> DispatchEngine:
    """The engine as the fixture runs it (also: a second engine, as after a restart)."""
    settings = DispatchSettings()
    finder = CandidateFinder(positions, pool, radius_m=5000, count=8, max_age_s=60.0)
    planner = Planner(
        strategy="greedy",
        options=PlannerOptions(time_limit_s=0.3, use_vroom=False),
        quick_time_limit_s=0.2,
        speeds=Speeds(),
        service_s=30,
        finder=finder,
        clock=clock or ShiftedClock(),
    )
    from dispatcher.ops.missions import MissionOps

    return DispatchEngine(
        ops=MissionOps(pool),
        fleet=fleet,
        channels=dict.fromkeys(kinds, channel),
        planner=planner,
        maps=FacilityMaps([NORTH.spec]),
        policy=ChargePolicy(
            settings.charge_below_pct, settings.resume_above_pct, settings.reserve_pct
        ),
        stations=(STATION,),
        debounce=Debouncer(quiet_s=0.05, max_wait_s=0.2),
        tick_s=0.5,
        zones=ZoneRules(pool),
    )


@pytest.fixture
async def rig(
    pg_pool: asyncpg.Pool, pg_dsn: str, redis_client: aioredis.Redis, redis_prefix: str
) -> AsyncIterator[Rig]:
    await sync_facilities(pg_pool, [NORTH])
    positions = LivePositions(redis_client, key_prefix=redis_prefix, max_age_s=60.0)
    fleet = StaticFleet()
    channel = RecordingChannel()
    clock = ShiftedClock()
    engine = build_engine(pg_pool, positions, fleet, channel, clock)
    hub = EventHub(pg_dsn)
    service = DispatchService(
        engine, MissionIntake(engine, EventReader(pg_pool), hub, poll_s=0.2), None
    )
    task = asyncio.create_task(service.run(), name="test.dispatch")
    try:
        yield Rig(pg_pool, engine, fleet, channel, redis_client, positions, clock)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await hub.close()
    assert channel.violations == []

"""The driver leg channel against the real broker and Redis, with scripted driver phones.

The vehicle links are assembled as the daemon assembles them, over a registry of their
own; a pump stands in for the dispatch engine: it feeds every vehicle event to the
channel's ``observe`` and calls ``tick`` every 50 ms, keeping the progress reported.
Tests release legs and observe that progress and what the phones did.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis.asyncio as aioredis

from dispatcher.config import Settings
from dispatcher.dispatch.driver_channel import DriverLegChannel, driver_channel
from dispatcher.dispatch.legs import Leg, LegFailure, LegProgress, LegProgressKind, Stop, StopAction
from dispatcher.links.assembly import VehicleLinks, build_vehicle_links
from dispatcher.storage.telemetry import TelemetryRow
from fleet.model import VehicleKind, vehicle_id
from fleet.registry import FleetRegistry
from geo.facility_maps import FacilityMaps
from sim.driver import DriverSpec, ScriptedDriver
from tests.conftest import REDIS_URL, daemon_settings, eventually

K = LegProgressKind
WAIT_S = 15.0
START = (52.5200, 13.4050)
PICKUP = (52.5202, 13.4052)  # ~26 m from the start
DROPOFF = (52.5204, 13.4054)


class NoTelemetry:
    def add(self, row: TelemetryRow) -> None:
        """Telemetry is not what these tests are about."""


@dataclass
class World:
    settings: Settings
    registry: FleetRegistry
    links: VehicleLinks
    channel: DriverLegChannel
    progress: list[LegProgress] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    drivers: dict[uuid.UUID, asyncio.Task[None]] = field(default_factory=dict)

    async def driver(self, name: str, **spec: Any) -> tuple[ScriptedDriver, uuid.UUID]:
        d = ScriptedDriver(
            DriverSpec(
                f"{name}-{uuid.uuid4().hex[:6]}",
                [START],
                **{"speed_mps": 30.0, "service_s": 0.2, **spec},
            ),
            prefix=self.settings.mqtt.driver_prefix,
            status_interval_s=0.2,
            tick_s=0.05,
        )
        vid = vehicle_id(VehicleKind.DRIVER, "", d.spec.driver_id)
        self.drivers[vid] = asyncio.create_task(d.run())
        await eventually(lambda: (v := self.registry.get(vid)) is not None and v.online, WAIT_S)
        return d, vid

    def leg(self, vid: uuid.UUID) -> Leg:
        stops = (
            Stop("Ward 3", None, *PICKUP, StopAction.PICK),
            Stop("Radiology", None, *DROPOFF, StopAction.DROP),
        )
        facility = self.settings.default_facility.id
        return Leg(f"leg-{uuid.uuid4().hex[:12]}", vid, facility, uuid.uuid4(), stops)

    def kinds(self, leg: Leg) -> list[K]:
        return [p.kind for p in self.progress if p.leg_id == leg.leg_id]

    async def pump(self) -> None:
        """The dispatch engine's part: events to ``observe``, a ``tick`` every 50 ms."""
        while True:
            while (ev := self.links.events.get_nowait()) is not None:
                self.progress.extend(self.channel.observe(ev))
            self.progress.extend(await self.channel.tick(time.time()))
            await asyncio.sleep(0.05)


@pytest.fixture
async def world(redis_prefix: str, mqtt_namespace: str) -> AsyncIterator[World]:
    settings = daemon_settings(
        "postgresql://unused/none",
        mqtt_namespace,
        redis_prefix,
        dispatch={"offer_timeout_s": 1.0, "command_ack_timeout_s": 0.5},
    )
    registry = FleetRegistry(
        maps=FacilityMaps(settings.facility_specs),
        default_facility_id=settings.default_facility.id,
        heartbeat_timeout_s=60,
    )
    redis = aioredis.from_url(REDIS_URL)
    links = build_vehicle_links(settings, registry, redis, NoTelemetry())
    w = World(settings, registry, links, driver_channel(settings, registry, links))
    w.tasks.append(asyncio.create_task(links.transport.run()))
    try:
        async with asyncio.timeout(WAIT_S):
            await links.transport.wait_connected()
        w.tasks.append(asyncio.create_task(w.pump()))
        yield w
    finally:
        for t in [*w.drivers.values(), *reversed(w.tasks)]:
            t.cancel()
        await asyncio.gather(*w.drivers.values(), *w.tasks, return_exceptions=True)
        async for key in redis.scan_iter(match=f"{redis_prefix}*", count=1000):
            await redis.delete(key)
        await redis.aclose()


class TestDriverChannel:
    async def test_an_accepted_offer_is_driven_to_the_end(self, world: World) -> None:
        driver, vid = await world.driver("trip")
        leg = world.leg(vid)
        assert (await world.channel.release(leg)).ok
        await eventually(lambda: K.FINISHED in world.kinds(leg), WAIT_S)
        assert world.kinds(leg) == [
            K.ACCEPTED, K.TO_PICKUP, K.PICKUP_ARRIVED, K.PICKED_UP,
            K.TO_DROPOFF, K.DROPOFF_ARRIVED, K.DROPPED_OFF, K.FINISHED,
        ]  # fmt: skip
        offer = driver.offers[0]
        assert (offer["offerId"], offer["missionId"]) == (leg.leg_id, str(leg.mission_id))
        assert driver.completed == [str(leg.mission_id)] and driver.job is None
        assert driver.trip_events[-1] == (str(leg.mission_id), "dropped_off")
        assert len(world.channel.book) == 0

    async def test_a_declined_offer_is_refused_with_the_reason(self, world: World) -> None:
        driver, vid = await world.driver("decline", decline_probability=1.0)
        leg = world.leg(vid)
        assert (await world.channel.release(leg)).ok
        await eventually(lambda: bool(world.kinds(leg)), WAIT_S)
        (refused,) = [p for p in world.progress if p.leg_id == leg.leg_id]
        assert (refused.kind, refused.failure, refused.detail) == (
            K.REFUSED, LegFailure.DECLINED, "not now",
        )  # fmt: skip
        assert driver.job is None

    async def test_an_ignored_offer_expires_and_is_withdrawn(self, world: World) -> None:
        driver, vid = await world.driver("ignore", ignore_offers=True)
        leg = world.leg(vid)
        assert (await world.channel.release(leg)).ok
        await eventually(lambda: bool(world.kinds(leg)), WAIT_S)
        (expired,) = [p for p in world.progress if p.leg_id == leg.leg_id]
        assert (expired.kind, expired.failure) == (K.REFUSED, LegFailure.OFFER_EXPIRED)
        # The phone is told, and its acknowledgement settles the command.
        await eventually(lambda: bool(driver.commands) and len(world.channel.acks) == 0, WAIT_S)
        cancel = driver.commands[0]
        assert (cancel["command"], cancel["offerId"], cancel["missionId"]) == (
            "cancel_job", leg.leg_id, str(leg.mission_id),
        )  # fmt: skip

    async def test_a_withdrawn_leg_stops_the_driver(self, world: World) -> None:
        driver, vid = await world.driver("withdraw", speed_mps=0.5)  # slow: still on the way
        leg = world.leg(vid)
        assert (await world.channel.release(leg)).ok
        await eventually(lambda: K.TO_PICKUP in world.kinds(leg), WAIT_S)
        res = await world.channel.withdraw(leg, LegFailure.CANCELLED)
        assert res.ok
        await eventually(lambda: driver.cancelled == [str(leg.mission_id)], WAIT_S)
        assert driver.job is None and driver.availability == "online"
        await eventually(lambda: len(world.channel.acks) == 0, WAIT_S)
        assert K.FINISHED not in world.kinds(leg) and len(world.channel.book) == 0

    async def test_a_driver_going_offline_mid_leg_fails_it(self, world: World) -> None:
        _, vid = await world.driver("offline", speed_mps=0.5)
        leg = world.leg(vid)
        assert (await world.channel.release(leg)).ok
        await eventually(lambda: K.TO_PICKUP in world.kinds(leg), WAIT_S)
        task = world.drivers.pop(vid)
        task.cancel()  # an orderly sign-off: connection OFFLINE
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await eventually(lambda: K.FAILED in world.kinds(leg), WAIT_S)
        (failed,) = [p for p in world.progress if p.kind is K.FAILED]
        assert failed.failure is LegFailure.VEHICLE_OFFLINE
        # The driver had not picked up: it is told to drop the job once it is back.
        assert [c.notice.mission_id for c in world.channel.acks.pending()] == [str(leg.mission_id)]

    async def test_an_offer_to_an_offline_driver_is_not_held(self, world: World) -> None:
        leg = world.leg(vehicle_id(VehicleKind.DRIVER, "", "nobody"))
        res = await world.channel.release(leg)
        assert not res.ok and len(world.channel.book) == 0

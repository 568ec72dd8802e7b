"""Fixtures for the robot channel against the real broker and Redis.

The vehicle links are assembled as the daemon assembles them; :class:`Loop` plays the
dispatch loop: it feeds every event from the bus to the channel, ticks it, and records the
leg progress and the events. The layout is a short corridor
(tests/unit/dispatch/line_layout.py) so a leg takes seconds.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import redis.asyncio as aioredis

from dispatcher.config import Settings
from dispatcher.dispatch.legs import Leg, LegProgress, LegProgressKind, Stop, StopAction
from dispatcher.dispatch.robot_channel import RobotChannelSettings, RobotLegChannel
from dispatcher.dispatch.robot_orders import OrderLayout
from dispatcher.links.assembly import VehicleLinks, build_vehicle_links
from dispatcher.links.vehicle_events import VehicleEvent
from fleet.model import VehicleKind, vehicle_id
from fleet.registry import FleetRegistry
from geo.facility_maps import FacilityMaps
from sim.robot import RobotSpec, VirtualRobot
from tests.conftest import REDIS_URL, eventually
from tests.unit.dispatch.line_layout import line_layout

K = LegProgressKind
WAIT_S = 20.0


class NullTelemetry:
    def add(self, row: object) -> None:
        """Telemetry is not what these tests look at."""


@dataclass
class Loop:
    """The dispatch loop's part: events in, progress out."""

    settings: Settings
    registry: FleetRegistry
    links: VehicleLinks
    channel: RobotLegChannel
    progress: list[LegProgress] = field(default_factory=list)
    events: list[VehicleEvent] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def pump(self) -> None:
        while True:
            while (ev := self.links.events.get_nowait()) is not None:
                self.events.append(ev)
                self.progress.extend(self.channel.observe(ev))
            self.progress.extend(await self.channel.tick(time.time()))
            await asyncio.sleep(0.02)

    async def robot(
        self, name: str, at: str = "n0", **spec: object
    ) -> tuple[VirtualRobot, uuid.UUID]:
        x = float(at[1:])
        r = VirtualRobot(
            RobotSpec(
                "acme",
                f"{name}-{uuid.uuid4().hex[:6]}",
                x=x,
                last_node_id=at,
                action_seconds={"pick": 0.3, "drop": 0.3, "startCharging": 0.2},
                **{"speed_mps": 2.0, **spec},  # type: ignore[arg-type]
            ),
            prefix=self.settings.mqtt.vda_prefix,
            state_interval_s=0.2,
            tick_s=0.05,
        )
        vid = vehicle_id(VehicleKind.ROBOT, "acme", r.spec.serial)
        self.tasks.append(asyncio.create_task(r.run(), name=f"robot {r.spec.serial}"))
        await eventually(
            lambda: (
                (v := self.registry.record(vid)) is not None and v.online and v.last_node_id == at
            ),
            WAIT_S,
        )
        return r, vid

    def leg(self, vid: uuid.UUID, *stops: Stop) -> Leg:
        rec = self.registry.record(vid)
        assert rec is not None
        stops = stops or (
            Stop("n2", "n2", 0, 0, StopAction.PICK),
            Stop("n4", "n4", 0, 0, StopAction.DROP),
        )
        return Leg(f"leg-{uuid.uuid4().hex[:8]}", vid, rec.facility_id, uuid.uuid4(), stops)

    def kinds(self, leg: Leg) -> list[K]:
        return [p.kind for p in self.progress if p.leg_id == leg.leg_id]

    async def until(self, leg: Leg, kind: K) -> None:
        await eventually(lambda: kind in self.kinds(leg), WAIT_S)


def _layout(facility_id: uuid.UUID, node_id: str) -> OrderLayout | None:
    layout = line_layout()
    return layout if node_id in layout.doc.nodes else None


@pytest.fixture
async def loop(settings: Settings, redis_prefix: str) -> AsyncIterator[Loop]:
    registry = FleetRegistry(
        maps=FacilityMaps(settings.facility_specs),
        default_facility_id=settings.default_facility.id,
        heartbeat_timeout_s=60,
    )
    redis = aioredis.from_url(REDIS_URL)
    links = build_vehicle_links(settings, registry, redis, NullTelemetry())
    channel = RobotLegChannel(
        links.commander,
        registry,
        _layout,
        {settings.default_facility.id: "campus"},
        RobotChannelSettings(resend_after_s=1.0, max_sends=3),
    )
    lp = Loop(settings, registry, links, channel)
    lp.tasks.append(asyncio.create_task(links.transport.run(), name="transport"))
    try:
        async with asyncio.timeout(WAIT_S):
            await links.transport.wait_connected()
        lp.tasks.append(asyncio.create_task(lp.pump(), name="pump"))
        yield lp
    finally:
        for t in reversed(lp.tasks):
            t.cancel()
        # Bounded: a task that ignores its cancellation is named, not waited for forever.
        _, pending = await asyncio.wait(lp.tasks, timeout=WAIT_S)
        for t in lp.tasks:
            if t.done() and not t.cancelled():
                t.exception()  # retrieved: a task that failed is not an unraisable warning
        async for key in redis.scan_iter(match=f"{redis_prefix}*", count=1000):
            await redis.delete(key)
        await redis.aclose()
        assert not pending, f"tasks did not stop: {[t.get_name() for t in pending]}"

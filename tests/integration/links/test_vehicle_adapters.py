"""The vehicle interface against the real broker and Redis: virtual robots and driver phones.

The links are assembled as the daemon assembles them (``build_vehicle_links``) over a
registry of their own, without the rest of the daemon. Each test has its own topic
namespace and Redis prefix. Tests observe what the vehicles received, the results the
commander returned and the typed events that came out of the bus.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
import redis.asyncio as aioredis

from dispatcher.config import Settings
from dispatcher.links.assembly import VehicleLinks, build_vehicle_links
from dispatcher.links.commands import CommandOutcome, CommandReason
from dispatcher.links.vehicle_events import (
    ActionStateChanged,
    CommandAcked,
    NodeReached,
    OfferAnswered,
    TripProgressed,
    VehicleEvent,
)
from dispatcher.storage.telemetry import TelemetryRow
from fleet.model import VehicleKind, vehicle_id
from fleet.registry import FleetRegistry
from geo.facility_maps import FacilityMaps
from protocols.driver.models import AckResult, Decision, JobOffer, TripEventKind
from protocols.vda5050.base import ActionStatus
from protocols.vda5050.models import Order
from sim.driver import DriverSpec, ScriptedDriver
from sim.robot import RobotSpec, VirtualRobot
from tests.conftest import REDIS_URL, eventually

E = TypeVar("E")
WAIT_S = 10.0


class Rows:
    """A telemetry sink that keeps the rows (the writer's COPY is tested elsewhere)."""

    def __init__(self) -> None:
        self.rows: list[TelemetryRow] = []

    def add(self, row: TelemetryRow) -> None:
        self.rows.append(row)


@dataclass
class Fleet:
    settings: Settings
    registry: FleetRegistry
    links: VehicleLinks
    telemetry: Rows
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    seen: list[VehicleEvent] = field(default_factory=list)

    async def start(self, device: VirtualRobot | ScriptedDriver, vid: uuid.UUID) -> None:
        self.tasks.append(asyncio.create_task(device.run()))
        # Online and a state (or status) seen: what follows is news to the link.
        await eventually(
            lambda: (
                (v := self.registry.get(vid)) is not None and v.online and v.battery_pct is not None
            ),
            WAIT_S,
        )

    async def robot(self, name: str, **spec: Any) -> tuple[VirtualRobot, uuid.UUID]:
        r = VirtualRobot(
            RobotSpec("acme", f"{name}-{uuid.uuid4().hex[:6]}", **spec),
            prefix=self.settings.mqtt.vda_prefix,
            state_interval_s=0.1,
            tick_s=0.05,
        )
        vid = vehicle_id(VehicleKind.ROBOT, "acme", r.spec.serial)
        await self.start(r, vid)
        return r, vid

    async def driver(self, name: str) -> tuple[ScriptedDriver, uuid.UUID]:
        d = ScriptedDriver(
            DriverSpec(f"{name}-{uuid.uuid4().hex[:6]}", [(52.52, 13.405)]),
            prefix=self.settings.mqtt.driver_prefix,
            status_interval_s=0.1,
        )
        vid = vehicle_id(VehicleKind.DRIVER, "", d.spec.driver_id)
        await self.start(d, vid)
        return d, vid

    async def event(self, kind: type[E], match: Callable[[E], bool] = lambda e: True) -> E:
        """The first event of ``kind`` that ``match``es, seen so far or arriving."""

        def found() -> E | None:
            for ev in self.seen:
                if isinstance(ev, kind) and match(ev):
                    return ev
            return None

        async def arrived() -> bool:
            while (ev := self.links.events.get_nowait()) is not None:
                self.seen.append(ev)
            return found() is not None

        await eventually(arrived, WAIT_S)
        ev = found()
        assert ev is not None
        return ev


@pytest.fixture
async def fleet(settings: Settings, redis_prefix: str) -> AsyncIterator[Fleet]:
    registry = FleetRegistry(
        maps=FacilityMaps(settings.facility_specs),
        default_facility_id=settings.default_facility.id,
        heartbeat_timeout_s=60,
    )
    redis = aioredis.from_url(REDIS_URL)
    telemetry = Rows()
    links = build_vehicle_links(settings, registry, redis, telemetry)
    f = Fleet(settings, registry, links, telemetry)
    f.tasks.append(asyncio.create_task(links.transport.run()))
    try:
        async with asyncio.timeout(WAIT_S):
            await links.transport.wait_connected()
        yield f
    finally:
        for t in reversed(f.tasks):
            t.cancel()
        await asyncio.gather(*f.tasks, return_exceptions=True)
        async for key in redis.scan_iter(match=f"{redis_prefix}*", count=1000):
            await redis.delete(key)
        await redis.aclose()


def order_through(robot: VirtualRobot, order_id: str, *node_ids: str) -> Order:
    """An order visiting nodes at the robot's own position (it arrives at once)."""
    pos = {"x": robot.spec.x, "y": robot.spec.y, "mapId": robot.spec.map_id}
    nodes = [
        {"nodeId": n, "sequenceId": 2 * i, "released": True, "actions": [], "nodePosition": pos}
        for i, n in enumerate(node_ids)
    ]
    edges = [
        {
            "edgeId": f"{a}-{b}",
            "sequenceId": 2 * i + 1,
            "released": True,
            "startNodeId": a,
            "endNodeId": b,
            "actions": [],
        }
        for i, (a, b) in enumerate(itertools.pairwise(node_ids))
    ]
    return Order.model_validate(
        {
            "headerId": 0,
            "timestamp": datetime.now(UTC),
            "version": "2.0.0",
            "manufacturer": "",
            "serialNumber": "",
            "orderId": order_id,
            "orderUpdateId": 0,
            "nodes": nodes,
            "edges": edges,
        }
    )


def job_offer(mission: str) -> JobOffer:
    place = {"name": "Ward 3", "lat": 52.52, "lon": 13.405}
    return JobOffer.model_validate(
        {
            "headerId": 0,
            "timestamp": datetime.now(UTC),
            "version": "1.0",
            "driverId": "x",
            "offerId": f"offer-{uuid.uuid4().hex[:8]}",
            "missionId": mission,
            "pickup": place,
            "dropoff": {**place, "name": "X-ray"},
            "expiresAt": datetime.now(UTC) + timedelta(minutes=2),
        }
    )


class TestRobot:
    async def test_an_instant_action_is_acknowledged_as_an_action_state_event(
        self, fleet: Fleet
    ) -> None:
        robot, vid = await fleet.robot("pause")
        result = await fleet.links.commander.pause(vid)
        assert result.outcome is CommandOutcome.DONE and result.reason is CommandReason.SENT
        await eventually(lambda: robot.paused, WAIT_S)
        ack = await fleet.event(ActionStateChanged, lambda e: e.action_id == result.correlation_id)
        assert (ack.vehicle_id, ack.action_type, ack.status) == (
            vid,
            "startPause",
            ActionStatus.FINISHED,
        )

    async def test_an_order_is_followed_node_by_node(self, fleet: Fleet) -> None:
        robot, vid = await fleet.robot("order")
        result = await fleet.links.commander.send_order(vid, order_through(robot, "o-1", "a", "b"))
        assert result.ok and result.correlation_id == "o-1:0"
        reached = await fleet.event(NodeReached, lambda e: e.node_id == "b")
        assert (reached.vehicle_id, reached.order_id, reached.sequence_id) == (vid, "o-1", 2)
        assert robot.received_orders == 1

    @pytest.mark.parametrize("mode", ["MANUAL", "SERVICE", "TEACHIN"])
    async def test_nothing_is_sent_to_a_robot_the_master_control_is_not_in_charge_of(
        self, fleet: Fleet, mode: str
    ) -> None:
        robot, vid = await fleet.robot("manual")
        robot.operating_mode = mode
        await eventually(
            lambda: (v := fleet.registry.get(vid)) is not None and v.operating_mode == mode,
            WAIT_S,
        )
        stop = await fleet.links.commander.emergency_stop(vid)
        order = await fleet.links.commander.send_order(vid, order_through(robot, "o-2", "a"))
        for res in (stop, order):
            assert res.outcome is CommandOutcome.IMPOSSIBLE
            assert res.reason is CommandReason.NOT_IN_CONTROL
        assert robot.received_instant_actions == 0 and robot.received_orders == 0

    async def test_state_reaches_the_telemetry_sink(self, fleet: Fleet) -> None:
        _, vid = await fleet.robot("telemetry")
        await eventually(lambda: any(r.vehicle_id == vid for r in fleet.telemetry.rows), WAIT_S)

    async def test_a_robot_is_offered_no_job(self, fleet: Fleet) -> None:
        _, vid = await fleet.robot("offer")
        res = await fleet.links.commander.offer_job(vid, job_offer("m-1"))
        assert res.reason is CommandReason.NOT_SUPPORTED


class TestDriver:
    async def test_an_offer_is_answered_through_the_bus(self, fleet: Fleet) -> None:
        driver, vid = await fleet.driver("offer")
        offer = job_offer("m-7")
        result = await fleet.links.commander.offer_job(vid, offer)
        assert result.ok and result.correlation_id == offer.offer_id
        answer = await fleet.event(OfferAnswered, lambda e: e.offer_id == offer.offer_id)
        assert (answer.vehicle_id, answer.decision) == (vid, Decision.ACCEPT)
        assert driver.offers[0]["driverId"] == driver.spec.driver_id

    async def test_command_acks_and_trip_progress_become_events(self, fleet: Fleet) -> None:
        driver, vid = await fleet.driver("ack")
        result = await fleet.links.commander.pause(vid)
        assert result.ok
        await eventually(lambda: bool(driver.commands), WAIT_S)
        correlation = driver.commands[0]["correlationId"]
        assert correlation == result.correlation_id
        driver.send(
            "commandAck",
            {**driver._header("commandAck"), "correlationId": correlation, "result": "accepted"},
        )
        driver.send(
            "trip",
            {**driver._header("trip"), "missionId": "m-9", "event": "picked_up"},
        )
        ack = await fleet.event(CommandAcked, lambda e: e.correlation_id == correlation)
        assert (ack.vehicle_id, ack.result) == (vid, AckResult.ACCEPTED)
        trip = await fleet.event(TripProgressed, lambda e: e.mission_id == "m-9")
        assert (trip.vehicle_id, trip.event) == (vid, TripEventKind.PICKED_UP)

    async def test_a_driver_gets_no_vda_order(self, fleet: Fleet) -> None:
        robot = VirtualRobot(RobotSpec("acme", "unused"))
        _, vid = await fleet.driver("order")
        res = await fleet.links.commander.send_order(vid, order_through(robot, "o-3", "a"))
        assert res.reason is CommandReason.NOT_SUPPORTED


class TestRedisAway:
    async def test_orders_offers_and_commands_are_retry_not_errors(
        self, settings: Settings, fleet: Fleet
    ) -> None:
        """Header ids come from Redis; without it nothing is sent, and the caller retries."""
        robot, rid = await fleet.robot("redis")
        _, did = await fleet.driver("redis")
        dead = aioredis.from_url("redis://127.0.0.1:1", socket_connect_timeout=1)
        try:
            links = build_vehicle_links(settings, fleet.registry, dead, Rows())
            results = [
                await links.commander.send_order(rid, order_through(robot, "o-4", "a")),
                await links.commander.offer_job(did, job_offer("m-4")),
                await links.commander.pause(rid),
            ]
        finally:
            await dead.aclose()
        for res in results:
            assert res.outcome is CommandOutcome.RETRY and res.reason is CommandReason.STORE_DOWN

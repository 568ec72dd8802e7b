"""The vehicle event bus: bounded, never blocks the publisher, drops (and counts) the oldest."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from prometheus_client import REGISTRY

from dispatcher.links.event_bus import VehicleEventBus
from dispatcher.links.event_log import describe, log_vehicle_events
from dispatcher.links.vehicle_events import CommandAcked, OfferAnswered
from protocols.driver.models import AckResult, Decision
from tests.conftest import eventually

VID = uuid.uuid4()


def offer(n: int) -> OfferAnswered:
    return OfferAnswered(VID, float(n), f"offer-{n}", Decision.ACCEPT, None)


def dropped_total() -> float:
    return REGISTRY.get_sample_value("fleetd_vehicle_events_dropped_total") or 0.0


class TestVehicleEventBus:
    async def test_events_come_out_in_the_order_published(self) -> None:
        bus = VehicleEventBus(capacity=10)
        for n in range(3):
            bus.publish(offer(n))
        assert [await bus.get() for _ in range(3)] == [offer(0), offer(1), offer(2)]
        assert bus.published == 3 and bus.pending == 0

    async def test_a_full_bus_drops_the_oldest_and_counts_it(self) -> None:
        before = dropped_total()
        bus = VehicleEventBus(capacity=2, clock=lambda: 0.0)
        for n in range(5):
            bus.publish(offer(n))  # never blocks, never raises
        assert bus.pending == 2 and bus.dropped == 3
        assert dropped_total() - before == 3
        assert [bus.get_nowait(), bus.get_nowait(), bus.get_nowait()] == [offer(3), offer(4), None]

    def test_a_bus_without_room_is_refused(self) -> None:
        with pytest.raises(ValueError, match="capacity"):
            VehicleEventBus(capacity=0)

    async def test_the_consumer_takes_every_event_off_the_bus(self) -> None:
        bus = VehicleEventBus(capacity=10)
        consumer = asyncio.create_task(log_vehicle_events(bus))
        try:
            bus.publish(offer(1))
            bus.publish(CommandAcked(VID, 2.0, "c1", AckResult.REJECTED, "busy"))
            await eventually(lambda: bus.pending == 0)
        finally:
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
        assert bus.pending == 0

    def test_events_are_described_as_plain_log_fields(self) -> None:
        fields = describe(CommandAcked(VID, 2.0, "c1", AckResult.REJECTED, None))
        assert fields == {
            "type": "CommandAcked",
            "vehicle_id": str(VID),
            "at": 2.0,
            "correlation_id": "c1",
            "result": "rejected",
            "reason": None,
        }

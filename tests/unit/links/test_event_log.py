"""The interim event consumer logs every event without tripping over structlog's names."""

from __future__ import annotations

import uuid

import structlog

from dispatcher.links.event_log import describe
from dispatcher.links.vehicle_events import TripProgressed
from protocols.driver.models import TripEventKind


def test_a_trip_event_can_be_logged() -> None:
    """TripProgressed has a field ``event``, which structlog reserves for the line's name."""
    ev = TripProgressed(uuid.uuid4(), 1.0, "m-1", TripEventKind.PICKED_UP, None, None)
    fields = describe(ev)
    assert fields["trip_event"] == "picked_up" and "event" not in fields
    with structlog.testing.capture_logs() as logs:
        structlog.get_logger().info("vehicle.event", **fields)
    assert logs[0]["event"] == "vehicle.event"

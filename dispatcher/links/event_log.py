"""The vehicle events' consumer until the dispatch loop takes over: log each one.

Counting happens on publish (``fleetd_vehicle_events_total{type}``); this task empties the
bus so it does not sit full, and leaves a line per event: drivers' answers and robot
errors at info, robot node and action progress (frequent) at debug.
"""

from __future__ import annotations

import dataclasses

import structlog

from dispatcher.links.event_bus import VehicleEventBus
from dispatcher.links.vehicle_events import ActionStateChanged, NodeReached, VehicleEvent
from dispatcher.logs import debug_enabled

log = structlog.get_logger(__name__)

_FREQUENT = (NodeReached, ActionStateChanged)


def describe(event: VehicleEvent) -> dict[str, object]:
    """An event as log fields: its type and every field, ids and enums as text."""
    fields: dict[str, object] = {"type": type(event).__name__}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        # structlog takes the log line's own name as ``event``: a trip's event goes as trip_event.
        name = "trip_event" if f.name == "event" else f.name
        fields[name] = value if value is None or isinstance(value, int | float) else str(value)
    return fields


async def log_vehicle_events(bus: VehicleEventBus) -> None:
    """Take every event off the bus and log it, until cancelled."""
    while True:
        event = await bus.get()
        if isinstance(event, _FREQUENT):
            if debug_enabled():  # describe() costs; thousands a second
                log.debug("vehicle.event", **describe(event))
        else:
            log.info("vehicle.event", **describe(event))

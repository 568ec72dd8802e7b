"""Robot progress from consecutive VDA 5050 states: which typed events a new state means.

Pure: :func:`progress_events` compares what the last state said (a :class:`Progress`)
with the new one and returns the events plus the new :class:`Progress`. Called for every
state message (thousands a second), so the common case, nothing changed, costs one
comparison of small tuples.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from dispatcher.links.vehicle_events import (
    ActionStateChanged,
    ErrorsChanged,
    NodeReached,
    VehicleEvent,
)
from fleet.model import VehicleError
from protocols.vda5050.base import ActionStatus

#: (action id, action type, status), as a state reports each action.
ActionReport = tuple[str, str | None, ActionStatus]


@dataclass(frozen=True, slots=True)
class Progress:
    """What one robot's last state said about its work."""

    order_id: str | None
    last_node_id: str | None
    last_node_sequence_id: int
    actions: tuple[ActionReport, ...]
    errors: tuple[VehicleError, ...]


def progress_events(
    vehicle_id: uuid.UUID, at: float, prev: Progress | None, new: Progress
) -> list[VehicleEvent]:
    """The events that the change from ``prev`` to ``new`` means (``prev`` None: first state).

    The first state seen from a robot reports every action it lists (an acknowledgement
    of a command sent just before may be among them; a consumer ignores action ids it
    does not know) and any errors, but not the node it stands on: fleetd did not see it
    arrive.
    """
    if prev == new:
        return []
    events: list[VehicleEvent] = []
    if (
        prev is not None
        and new.last_node_id
        and (
            new.last_node_id != prev.last_node_id
            or new.last_node_sequence_id != prev.last_node_sequence_id
        )
    ):
        events.append(
            NodeReached(vehicle_id, at, new.order_id, new.last_node_id, new.last_node_sequence_id)
        )
    if prev is None or new.actions != prev.actions:
        events.extend(_action_events(vehicle_id, at, prev.actions if prev else (), new.actions))
    if (prev.errors if prev else ()) != new.errors:
        events.append(ErrorsChanged(vehicle_id, at, new.errors))
    return events


def _action_events(
    vehicle_id: uuid.UUID,
    at: float,
    before: Iterable[ActionReport],
    after: Iterable[ActionReport],
) -> list[VehicleEvent]:
    known = {action_id: status for action_id, _, status in before}
    return [
        ActionStateChanged(vehicle_id, at, action_id, action_type, status)
        for action_id, action_type, status in after
        if known.get(action_id) != status
    ]

"""What one event does to one mission's fields: decided here, written by the store.

:func:`plan_change` takes the mission as it is (row locked by the store) and the event with
its arguments, and returns the :class:`Change` to write, ``None`` when there is nothing to
write, or raises the refusal. Pure: no I/O, unit-tested without a database.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dispatcher.missions import lifecycle
from dispatcher.missions.domain import MissionRecord
from dispatcher.missions.errors import VersionConflict, WrongVehicle
from dispatcher.missions.lifecycle import MissionEvent, MissionStatus, Priority, Transition


@dataclass(frozen=True, slots=True)
class Change:
    """The new values of a mission after an event, and the event row to record."""

    step: Transition
    priority: Priority
    #: The mission's vehicle afterwards.
    vehicle_id: uuid.UUID | None
    #: The vehicle the event row names (the one offered, declining, reporting...).
    event_vehicle_id: uuid.UUID | None
    details: dict[str, Any] = field(default_factory=dict)
    #: Why the mission waits for an operator afterwards (``missions.held_reason``).
    held_reason: str | None = None


def check_arguments(
    event: MissionEvent, *, vehicle_id: uuid.UUID | None, priority: Priority | None
) -> None:
    """``ValueError`` when an event misses what it needs (a programming error)."""
    if event in lifecycle.VEHICLE_EVENTS and vehicle_id is None:
        raise ValueError(f"event {event.value!r} needs a vehicle_id")
    if event is MissionEvent.PRIORITY_CHANGED and priority is None:
        raise ValueError("event 'priority_changed' needs a priority")


def plan_change(
    before: MissionRecord,
    event: MissionEvent,
    *,
    vehicle_id: uuid.UUID | None = None,
    priority: Priority | None = None,
    reason: str | None = None,
    details: Mapping[str, Any] | None = None,
    expected_version: int | None = None,
) -> Change | None:
    """The :class:`Change` ``event`` makes to ``before``; None when nothing changes.

    Raises :class:`VersionConflict` (``expected_version`` is stale),
    :class:`~dispatcher.missions.lifecycle.IllegalTransition`, and :class:`WrongVehicle`
    (a vehicle reporting on a mission assigned to another one).
    """
    check_arguments(event, vehicle_id=vehicle_id, priority=priority)
    if expected_version is not None and expected_version != before.version:
        raise VersionConflict(before.id, expected_version, before.version)
    step = lifecycle.apply(before.status, event)
    if (
        vehicle_id is not None
        and event not in lifecycle.VEHICLE_EVENTS
        and before.vehicle_id is not None
        and vehicle_id != before.vehicle_id
    ):
        raise WrongVehicle(before.id, before.vehicle_id, vehicle_id)

    extra: dict[str, Any] = dict(details or {})
    new_priority = before.priority
    if event is MissionEvent.PRIORITY_CHANGED:
        assert priority is not None  # check_arguments
        if priority is before.priority:
            return None
        new_priority = priority
        extra.update(old=before.priority.value, new=priority.value)

    new_vehicle = before.vehicle_id
    if event in (MissionEvent.ASSIGNED, MissionEvent.REASSIGNED):
        new_vehicle = vehicle_id
        if event is MissionEvent.REASSIGNED and before.vehicle_id is not None:
            extra["previous_vehicle_id"] = str(before.vehicle_id)
    elif step.to_status is MissionStatus.PENDING:
        new_vehicle = None  # declined, expired or unassigned: the vehicle is released
    if reason is not None:
        extra["reason"] = reason
    return Change(
        step=step,
        priority=new_priority,
        vehicle_id=new_vehicle,
        event_vehicle_id=vehicle_id or before.vehicle_id,
        details=extra,
        held_reason=_held_reason(before, event, reason),
    )


def _held_reason(before: MissionRecord, event: MissionEvent, reason: str | None) -> str | None:
    """``held`` sets the reason; a new vehicle, a return to pending or the end clears it;
    anything else keeps it."""
    if event is MissionEvent.HELD:
        return reason or "vehicle_lost"
    if event in (MissionEvent.REASSIGNED, MissionEvent.UNASSIGNED):
        return None
    if lifecycle.apply(before.status, event).to_status is not MissionStatus.IN_PROGRESS:
        return None
    return before.held_reason

"""The mission lifecycle: one pure state machine, no I/O.

Statuses move forward only: ``pending -> assigned -> in_progress -> completed``; a mission
may be ``cancelled`` or ``failed`` from any status that is not final. Every step is named
by an *event*, and every event is recorded (``mission_events``). This module decides which
event is legal in which status and what status follows; the store
(:mod:`dispatcher.missions.store`) applies the answer to the database.

Events that keep the status (``reassigned``, ``offered``, ``priority_changed``, the trip
progress events) are transitions to the same status: they are recorded all the same.

Events that move a mission backwards: a driver who *declines* an offer, or lets it
*expire*, for a mission already ``assigned`` to them returns it to ``pending`` (the vehicle
is released and the planner tries again); while ``pending`` they leave it ``pending``.
``unassigned`` does the same for any vehicle the dispatch engine loses before the rider is
on board (a robot's refused order, a vehicle gone offline on its way to the pickup), from
``assigned`` or ``in_progress``. The next vehicle is then recorded as ``reassigned``
(from ``pending`` too), so the timeline says the mission changed hands and why.

``held`` keeps a mission ``in_progress``: its vehicle was lost with the rider on board and
an operator must decide (the store keeps the reason in ``missions.held_reason``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


class MissionStatus(StrEnum):
    """Where a mission is in its life. Stored in ``missions.status`` (CHECK-constrained)."""

    PENDING = "pending"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        """True for completed, cancelled and failed: nothing happens to the mission any more."""
        return self in FINAL_STATUSES


class MissionEvent(StrEnum):
    """Something that happened to a mission. Stored in ``mission_events.event``."""

    CREATED = "created"
    ASSIGNED = "assigned"
    STARTED = "started"
    PICKUP_ARRIVED = "pickup_arrived"
    PICKUP_COMPLETED = "pickup_completed"
    IN_TRANSIT = "in_transit"
    DROPOFF_ARRIVED = "dropoff_arrived"
    DROPOFF_COMPLETED = "dropoff_completed"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"
    REASSIGNED = "reassigned"
    OFFERED = "offered"
    DECLINED = "declined"
    EXPIRED = "expired"
    PRIORITY_CHANGED = "priority_changed"
    UNASSIGNED = "unassigned"
    HELD = "held"


class Priority(StrEnum):
    """How urgent a mission is. ``rank`` orders the dispatch queue (higher first)."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"

    @property
    def rank(self) -> int:
        """0 for low up to 3 for urgent; the same numbers as ``missions.priority_rank``."""
        return _PRIORITY_RANK[self]


_PRIORITY_RANK: Mapping[Priority, int] = MappingProxyType(
    {Priority.LOW: 0, Priority.NORMAL: 1, Priority.HIGH: 2, Priority.URGENT: 3}
)

FINAL_STATUSES: frozenset[MissionStatus] = frozenset(
    {MissionStatus.COMPLETED, MissionStatus.CANCELLED, MissionStatus.FAILED}
)
ACTIVE_STATUSES: frozenset[MissionStatus] = frozenset(MissionStatus) - FINAL_STATUSES

#: The status a mission is created in.
INITIAL_STATUS = MissionStatus.PENDING

_S = MissionStatus
_E = MissionEvent

#: status -> {event: next status}. An event missing from a status's map is illegal there.
#: ``created`` appears nowhere: it is the birth of a mission, see :func:`initial`.
_TABLE: Mapping[MissionStatus, Mapping[MissionEvent, MissionStatus]] = MappingProxyType(
    {
        _S.PENDING: MappingProxyType(
            {
                _E.ASSIGNED: _S.ASSIGNED,
                # Another vehicle after the last one was lost (unassigned, declined, expired).
                _E.REASSIGNED: _S.ASSIGNED,
                _E.OFFERED: _S.PENDING,
                _E.DECLINED: _S.PENDING,
                _E.EXPIRED: _S.PENDING,
                _E.PRIORITY_CHANGED: _S.PENDING,
                _E.CANCELLED: _S.CANCELLED,
                _E.FAILED: _S.FAILED,
            }
        ),
        _S.ASSIGNED: MappingProxyType(
            {
                _E.REASSIGNED: _S.ASSIGNED,
                _E.OFFERED: _S.ASSIGNED,
                _E.DECLINED: _S.PENDING,
                _E.EXPIRED: _S.PENDING,
                _E.UNASSIGNED: _S.PENDING,
                _E.STARTED: _S.IN_PROGRESS,
                _E.PRIORITY_CHANGED: _S.ASSIGNED,
                _E.CANCELLED: _S.CANCELLED,
                _E.FAILED: _S.FAILED,
            }
        ),
        _S.IN_PROGRESS: MappingProxyType(
            {
                # An operator's "reassign" of a rider whose vehicle was lost on the way:
                # another vehicle takes over (dispatcher.dispatch.recovery).
                _E.REASSIGNED: _S.IN_PROGRESS,
                # The vehicle was lost on its way to the pickup: the rider is not on board.
                _E.UNASSIGNED: _S.PENDING,
                # The vehicle was lost with the rider on board: waiting for an operator.
                _E.HELD: _S.IN_PROGRESS,
                _E.PICKUP_ARRIVED: _S.IN_PROGRESS,
                _E.PICKUP_COMPLETED: _S.IN_PROGRESS,
                _E.IN_TRANSIT: _S.IN_PROGRESS,
                _E.DROPOFF_ARRIVED: _S.IN_PROGRESS,
                _E.DROPOFF_COMPLETED: _S.IN_PROGRESS,
                _E.COMPLETED: _S.COMPLETED,
                _E.PRIORITY_CHANGED: _S.IN_PROGRESS,
                _E.CANCELLED: _S.CANCELLED,
                _E.FAILED: _S.FAILED,
            }
        ),
        _S.COMPLETED: MappingProxyType({}),
        _S.CANCELLED: MappingProxyType({}),
        _S.FAILED: MappingProxyType({}),
    }
)

#: Events that name a vehicle (the store refuses them without one).
VEHICLE_EVENTS: frozenset[MissionEvent] = frozenset(
    {MissionEvent.ASSIGNED, MissionEvent.REASSIGNED, MissionEvent.OFFERED}
)


@dataclass(frozen=True, slots=True)
class Transition:
    """The outcome of applying ``event`` to a mission in ``from_status``.

    ``from_status`` is None only for the ``created`` event (see :func:`initial`).
    """

    from_status: MissionStatus | None
    to_status: MissionStatus
    event: MissionEvent

    @property
    def changes_status(self) -> bool:
        """True when the mission's status is different afterwards."""
        return self.from_status is not self.to_status


class IllegalTransition(Exception):
    """``event`` is not allowed while a mission is ``status``.

    ``allowed`` lists the events that are legal in ``status`` (empty for final statuses).
    """

    def __init__(self, status: MissionStatus, event: MissionEvent) -> None:
        self.status = status
        self.event = event
        self.allowed: tuple[MissionEvent, ...] = allowed_events(status)
        if status.is_final:
            why = f"the mission is {status.value}, which is final"
        elif event is MissionEvent.CREATED:
            why = "a mission is created once"
        else:
            names = ", ".join(e.value for e in self.allowed)
            why = f"while {status.value} only these are allowed: {names}"
        super().__init__(f"event {event.value!r} is not allowed: {why}")


def initial() -> Transition:
    """The transition recorded when a mission is created: nothing -> ``pending``."""
    return Transition(from_status=None, to_status=INITIAL_STATUS, event=MissionEvent.CREATED)


def apply(status: MissionStatus | str, event: MissionEvent | str) -> Transition:
    """Apply ``event`` to a mission in ``status``; return the resulting :class:`Transition`.

    Raises :class:`IllegalTransition` when the event is not allowed in that status, and
    ``ValueError`` when either name is not a status or an event at all.
    """
    st = MissionStatus(status)
    ev = MissionEvent(event)
    target = _TABLE[st].get(ev)
    if target is None:
        raise IllegalTransition(st, ev)
    return Transition(from_status=st, to_status=target, event=ev)


def allowed_events(status: MissionStatus | str) -> tuple[MissionEvent, ...]:
    """The events legal in ``status``, in declaration order."""
    legal = _TABLE[MissionStatus(status)]
    return tuple(e for e in MissionEvent if e in legal)


def is_allowed(status: MissionStatus | str, event: MissionEvent | str) -> bool:
    """True when ``event`` may happen to a mission in ``status``."""
    return MissionEvent(event) in _TABLE[MissionStatus(status)]

"""What a leg's progress means for its mission: the mission events to record (pure).

A vehicle may report a step late or skip one (a robot's state arrives after it already
picked up); the events in between are recorded too, in order, so the mission's timeline
never jumps: a ``picked_up`` for a mission still ``assigned`` records ``started``,
``pickup_arrived`` and ``pickup_completed``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

from dispatcher.dispatch.legs import LegProgressKind
from dispatcher.missions.lifecycle import MissionEvent, MissionStatus

_K = LegProgressKind
_E = MissionEvent

#: The trip's steps in order, each with the mission event it records.
_CHAIN: tuple[tuple[LegProgressKind, MissionEvent], ...] = (
    (_K.TO_PICKUP, _E.STARTED),
    (_K.PICKUP_ARRIVED, _E.PICKUP_ARRIVED),
    (_K.PICKED_UP, _E.PICKUP_COMPLETED),
    (_K.TO_DROPOFF, _E.IN_TRANSIT),
    (_K.DROPOFF_ARRIVED, _E.DROPOFF_ARRIVED),
    (_K.DROPPED_OFF, _E.DROPOFF_COMPLETED),
    (_K.FINISHED, _E.COMPLETED),
)
_STEP: Mapping[LegProgressKind, int] = MappingProxyType(
    {kind: i for i, (kind, _) in enumerate(_CHAIN)}
)

#: Progress kinds that are not trip steps: the engine handles them (refusal, failure).
NOT_TRIP_STEPS = frozenset({_K.ACCEPTED, _K.REFUSED, _K.FAILED, _K.CHARGING})


def step_of(kind: LegProgressKind) -> int | None:
    """The position of ``kind`` in the trip (None for accepted, refused, failed, charging)."""
    return _STEP.get(kind)


def picked_up(reached: int | None) -> bool:
    """Whether a leg that reached step ``reached`` has its rider on board (or delivered)."""
    return reached is not None and reached >= _STEP[_K.PICKED_UP]


#: The mission event of each trip step, back to the step.
_STEP_OF_EVENT: Mapping[MissionEvent, int] = MappingProxyType(
    {event: i for i, (_, event) in enumerate(_CHAIN)}
)


def reached_by(events: Sequence[MissionEvent]) -> int | None:
    """The trip step a mission's recorded events show its current vehicle reached (None:
    none yet): the furthest step since its last ``assigned`` or ``reassigned``. Used after
    a restart, when only the timeline remembers how far a leg got."""
    reached: int | None = None
    for event in events:
        if event in (MissionEvent.ASSIGNED, MissionEvent.REASSIGNED):
            reached = None
            continue
        step = _STEP_OF_EVENT.get(event)
        if step is not None and (reached is None or step > reached):
            reached = step
    return reached


def events_for(
    kind: LegProgressKind, reached: int | None, status: MissionStatus
) -> tuple[MissionEvent, ...]:
    """The mission events to record when a leg that had reached step ``reached`` (None:
    none yet) reports ``kind`` for a mission now in ``status``.

    Steps already recorded, and reports that go backwards, record nothing; a final
    mission records nothing.
    """
    target = _STEP.get(kind)
    if target is None or status.is_final:
        return ()
    first = 0 if reached is None else reached + 1
    if status is MissionStatus.IN_PROGRESS:
        first = max(first, 1)  # ``started`` is behind it
    return tuple(event for _, event in _CHAIN[first : target + 1])

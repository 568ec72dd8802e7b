"""Who holds what: each vehicle's released leg and horizon, each mission's vehicle (pure).

The one place that enforces the engine's two invariants: a mission is held by at most
one vehicle, and a vehicle has at most one released leg. Breaking either is a bug in the
engine and raises :class:`DoubleHold` rather than sending a second order.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from dispatcher.dispatch.legs import Leg


class DoubleHold(RuntimeError):
    """A second leg for a vehicle, or a second vehicle for a mission."""


@dataclass(slots=True)
class Released:
    """A leg handed to a vehicle, and how far it got (a :func:`progress.step_of` value)."""

    leg: Leg
    reached: int | None = None
    accepted: bool = False


@dataclass(slots=True)
class Holdings:
    """The engine's bookkeeping of released legs and planned horizons."""

    legs: dict[uuid.UUID, Released] = field(default_factory=dict)
    by_mission: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    horizon: dict[uuid.UUID, tuple[uuid.UUID, ...]] = field(default_factory=dict)
    #: Missions with the rider on board whose vehicle was lost: waiting for an operator.
    held: dict[uuid.UUID, str] = field(default_factory=dict)

    def hold(self, leg: Leg) -> Released:
        """Record ``leg`` as released; :class:`DoubleHold` if that breaks an invariant."""
        if leg.vehicle_id in self.legs:
            raise DoubleHold(f"vehicle {leg.vehicle_id} already has a leg")
        if leg.mission_id is not None:
            owner = self.by_mission.get(leg.mission_id)
            if owner is not None:
                raise DoubleHold(f"mission {leg.mission_id} is held by {owner}")
            self.by_mission[leg.mission_id] = leg.vehicle_id
        released = Released(leg)
        self.legs[leg.vehicle_id] = released
        return released

    def release(self, vehicle_id: uuid.UUID) -> Released | None:
        """Forget the vehicle's leg (finished, failed, withdrawn); returns it."""
        released = self.legs.pop(vehicle_id, None)
        if released is not None and released.leg.mission_id is not None:
            self.by_mission.pop(released.leg.mission_id, None)
        return released

    def by_leg_id(self, leg_id: str) -> Released | None:
        for released in self.legs.values():
            if released.leg.leg_id == leg_id:
                return released
        return None

    def of_mission(self, mission_id: uuid.UUID) -> Released | None:
        vehicle = self.by_mission.get(mission_id)
        return None if vehicle is None else self.legs.get(vehicle)

    def is_free(self, vehicle_id: uuid.UUID) -> bool:
        return vehicle_id not in self.legs

    def forget_mission(self, mission_id: uuid.UUID) -> None:
        """Drop a mission from every horizon and from the held set."""
        self.held.pop(mission_id, None)
        for vid, planned in list(self.horizon.items()):
            if mission_id in planned:
                self.horizon[vid] = tuple(m for m in planned if m != mission_id)

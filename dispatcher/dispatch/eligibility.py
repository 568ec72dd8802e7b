"""Which vehicles the engine may plan, and the leg a mission becomes (pure)."""

from __future__ import annotations

import uuid

from dispatcher.dispatch.charging import ChargePolicy, dispatchable
from dispatcher.dispatch.legs import Leg, Stop, StopAction
from dispatcher.missions.domain import Location, MissionRecord
from fleet.model import VehicleStatus, VehicleView

#: Statuses in which a vehicle may be given work (its own leg makes it driving/busy).
_WORKING = frozenset(
    {VehicleStatus.IDLE, VehicleStatus.DRIVING, VehicleStatus.BUSY, VehicleStatus.CHARGING}
)


def plannable(view: VehicleView, policy: ChargePolicy) -> bool:
    """Online, working, not paused or in maintenance, known position, battery above its
    reserve (and above the resume threshold while charging)."""
    return (
        view.online
        and view.status in _WORKING
        and not view.paused
        and not view.maintenance
        and view.position is not None
        and not any(e.level == "FATAL" for e in view.errors)
        and dispatchable(view.battery_pct, view.charging, policy)
    )


def _stop(loc: Location, node_id: str | None, action: StopAction, service_s: float) -> Stop:
    return Stop(
        place=loc.place or f"{loc.lat:.6f},{loc.lon:.6f}",
        node_id=node_id,
        lat=loc.lat,
        lon=loc.lon,
        action=action,
        service_s=service_s,
    )


def mission_leg(
    mission: MissionRecord,
    vehicle_id: uuid.UUID,
    *,
    nodes: tuple[str | None, str | None],
    service_s: float,
    pickup_at: Location | None = None,
    horizon: tuple[Stop, ...] = (),
) -> Leg:
    """The leg that carries ``mission`` out: pick at the pickup (or at ``pickup_at``, a
    rider handed over from a lost vehicle), drop at the drop-off. ``nodes`` are the
    layout nodes of pickup and drop-off places (None for drivers or unmapped places)."""
    pick = _stop(pickup_at or mission.pickup, nodes[0], StopAction.PICK, service_s)
    drop = _stop(mission.dropoff, nodes[1], StopAction.DROP, service_s)
    return Leg(
        leg_id=f"{mission.id}:{uuid.uuid4().hex[:12]}",
        vehicle_id=vehicle_id,
        facility_id=mission.facility_id,
        mission_id=mission.id,
        stops=(pick, drop),
        horizon=horizon,
        priority=mission.priority.value,
        notes=mission.notes,
    )


def mission_stops(
    mission: MissionRecord,
    service_s: float,
    nodes: tuple[str | None, str | None] = (None, None),
) -> tuple[Stop, ...]:
    """A mission's stops, as a horizon entry (``nodes``: as for :func:`mission_leg`; a
    robot's order needs them for every stop, the horizon's included)."""
    return (
        _stop(mission.pickup, nodes[0], StopAction.PICK, service_s),
        _stop(mission.dropoff, nodes[1], StopAction.DROP, service_s),
    )

"""From the engine's view of the world to a planner :class:`~dispatcher.planner.Problem`,
and from the plan back to each vehicle's ordered missions (pure).

Locations are the vehicles' positions (or, for a vehicle busy with a released leg, the
end of that leg), and the pickups and drop-offs of the open missions. Travel times are
geodesic distance x a detour factor at a profile's speed (drivers: the facility's driver
model; robots: their cruise speed). Times are seconds from the moment the problem is
built: every open mission is requested "now".
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from dispatcher.missions.lifecycle import Priority
from dispatcher.planner import Plan, Problem, Profile, Request, Vehicle, VehicleKind
from dispatcher.planner.model import HORIZON
from dispatcher.planner.model import Priority as PlanPriority
from geo.layout.drivers import GeodesicModel, geodesic_matrix

_PRIORITY = {
    Priority.LOW: PlanPriority.LOW,
    Priority.NORMAL: PlanPriority.NORMAL,
    Priority.HIGH: PlanPriority.HIGH,
    Priority.URGENT: PlanPriority.URGENT,
}


@dataclass(frozen=True, slots=True)
class Point:
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class VehicleInput:
    """A dispatchable vehicle. ``busy_until`` is where its released leg ends and the
    points it still has to visit to get there (None: free where it is)."""

    id: uuid.UUID
    kind: VehicleKind
    at: Point
    capabilities: frozenset[str] = frozenset()
    busy_via: tuple[Point, ...] | None = None


@dataclass(frozen=True, slots=True)
class MissionInput:
    """An open mission that has no released leg."""

    id: uuid.UUID
    pickup: Point
    dropoff: Point
    priority: Priority
    required_kind: VehicleKind | None = None
    required_capabilities: frozenset[str] = frozenset()
    service_s: int = 30


@dataclass(frozen=True, slots=True)
class Speeds:
    """Travel model per profile."""

    robot_mps: float = 1.0
    driver_mps: float = 8.0
    detour_factor: float = 1.4


def build_problem(
    vehicles: Sequence[VehicleInput], missions: Sequence[MissionInput], speeds: Speeds
) -> Problem:
    """The planning problem over ``vehicles`` and ``missions``."""
    points: list[Point] = []

    def loc(p: Point) -> int:
        points.append(p)
        return len(points) - 1

    starts = [loc(v.busy_via[-1] if v.busy_via else v.at) for v in vehicles]
    requests = tuple(
        Request(
            id=str(m.id),
            pickup=loc(m.pickup),
            dropoff=loc(m.dropoff),
            pickup_service=m.service_s,
            dropoff_service=m.service_s,
            priority=_PRIORITY[m.priority],
            required_kind=m.required_kind,
            required_capabilities=m.required_capabilities,
        )
        for m in missions
    )
    profiles = _profiles(points, speeds)
    planned = tuple(
        Vehicle(
            id=str(v.id),
            start=starts[i],
            profile=v.kind.value,
            kind=v.kind,
            capabilities=v.capabilities,
            ready_time=_busy_s(v, speeds),
        )
        for i, v in enumerate(vehicles)
    )
    return Problem(vehicles=planned, requests=requests, profiles=profiles)


def _profiles(points: Sequence[Point], speeds: Speeds) -> dict[str, Profile]:
    """One geodesic distance matrix (the costly part), a duration matrix per profile."""
    lat = np.asarray([p.lat for p in points], dtype=np.float64)
    lon = np.asarray([p.lon for p in points], dtype=np.float64)
    metres = geodesic_matrix(lat, lon) * speeds.detour_factor
    distances = np.minimum(np.ceil(metres), HORIZON).astype(np.int64)
    out: dict[str, Profile] = {}
    for kind, mps in (
        (VehicleKind.ROBOT, speeds.robot_mps),
        (VehicleKind.DRIVER, speeds.driver_mps),
    ):
        durations = np.minimum(np.ceil(metres / mps), HORIZON).astype(np.int64)
        out[kind.value] = Profile(durations=durations, costs=durations, distances=distances)
    return out


def _busy_s(v: VehicleInput, speeds: Speeds) -> int:
    """Seconds until a busy vehicle ends its released leg (0 when free)."""
    if not v.busy_via:
        return 0
    path = [v.at, *v.busy_via]
    m = GeodesicModel(
        speeds.detour_factor, speeds.robot_mps if v.kind is VehicleKind.ROBOT else speeds.driver_mps
    ).matrices([p.lat for p in path], [p.lon for p in path])
    return int(sum(m.durations[i, i + 1] for i in range(len(path) - 1)))


def missions_by_vehicle(plan: Plan) -> dict[uuid.UUID, tuple[uuid.UUID, ...]]:
    """Vehicle -> its missions in the order of their first stop (the pickup; for a
    rider already on board, the drop-off)."""
    out: dict[uuid.UUID, tuple[uuid.UUID, ...]] = {}
    for route in plan.routes:
        seen: list[uuid.UUID] = []
        for stop in route.stops:
            mid = uuid.UUID(stop.request_id)
            if mid not in seen:
                seen.append(mid)
        if seen:
            out[uuid.UUID(route.vehicle_id)] = tuple(seen)
    return out


def unserved_reasons(plan: Plan) -> Mapping[uuid.UUID, str]:
    """Mission -> why the plan left it without a vehicle."""
    return {uuid.UUID(u.request_id): u.reason.value for u in plan.unserved}

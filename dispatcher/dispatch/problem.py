"""From the engine's view of the world to a planner :class:`~dispatcher.planner.Problem`,
and from the plan back to each vehicle's ordered missions (pure).

Locations are the vehicles' positions (or, for a vehicle busy with a released leg, the
end of that leg), and the pickups and drop-offs of the open missions. Robots travel along
the facility's route graph where both ends are layout nodes (a robot's last node, a
place's node): durations and distances from the layout's matrices (:class:`RobotRoutes`),
unreachable pairs at the horizon. Elsewhere (drivers; a point off the graph) travel is
geodesic distance x a detour factor at the profile's speed. Times are seconds from the
moment the problem is built: a mission without a window is requested "now".

A mission booked with a pickup window (``MissionInput.window_s``) may not be picked up
before the window opens (a vehicle there early waits), and its requested time (where the
live objective starts counting waiting) is the window's start. The window's end is soft:
a window that cannot be met is still served as soon as possible, every second past the
start costing the priority's waiting weight, never left out for being late. Which planned
legs are released now and which stay in the horizon until due is
:func:`not_yet_due`'s decision; :func:`late_pickups` says which planned pickups miss
their window's end.

A mission's requirements become the planner's: a ``wheelchair_type`` is the capability
``wheelchair:<type>`` (a vehicle that declares no wheelchair types is taken to carry any,
one that declares some carries only those), a ``payload_kg`` a second capacity dimension
against the vehicle's ``max_payload_kg`` (unlimited when it gives none).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import numpy.typing as npt

from dispatcher.missions.lifecycle import Priority
from dispatcher.planner import Plan, Problem, Profile, Request, Vehicle, VehicleKind
from dispatcher.planner.model import HORIZON, StopKind
from dispatcher.planner.model import Priority as PlanPriority
from geo.layout.drivers import GeodesicModel, geodesic_matrix

_PRIORITY = {
    Priority.LOW: PlanPriority.LOW,
    Priority.NORMAL: PlanPriority.NORMAL,
    Priority.HIGH: PlanPriority.HIGH,
    Priority.URGENT: PlanPriority.URGENT,
}


#: (facility id, layout node id): where a point lies on a facility's route graph.
NodeKey = tuple[uuid.UUID, str]
FloatMatrix = npt.NDArray[np.float64]
#: Capacity of a vehicle that states no payload limit.
UNLIMITED_KG = 1_000_000

#: A scheduled mission is released this long before it would have to leave (seconds):
#: room for a slower trip than estimated, a driver's answer to the offer.
RELEASE_MARGIN_S = 120.0

#: A scheduled mission whose window opens further ahead than this is not planned yet
#: (seconds): bookings days ahead would otherwise fill every plan.
PLAN_AHEAD_S = 3600.0


@dataclass(frozen=True, slots=True)
class Point:
    lat: float
    lon: float
    #: The layout node robots use there (None: off the route graph, or not known).
    node: NodeKey | None = None


class RobotRoutes(Protocol):
    """The robots' route graphs: travel between layout nodes."""

    def matrices(self, nodes: Sequence[NodeKey | None]) -> tuple[FloatMatrix, FloatMatrix]:
        """Durations (s) and distances (m) between ``nodes`` along the fastest paths: NaN
        where not known (no node, no layout, nodes of different graphs), inf where the
        graph has no path."""
        ...


class Detours(Protocol):
    """Straight-line travel made to go round the operators' no-go zones
    (:class:`geo.layout.detours.Obstacles`, kept current by the route zones)."""

    def around(
        self, lats: Sequence[float], lons: Sequence[float], metres: FloatMatrix
    ) -> FloatMatrix:
        """``metres`` with every pair whose straight line crosses a no-go zone lengthened."""
        ...


def wheelchair_capability(wheelchair_type: str) -> str:
    return f"wheelchair:{wheelchair_type}"


@dataclass(frozen=True, slots=True)
class VehicleInput:
    """A dispatchable vehicle. ``busy_until`` is where its released leg ends and the
    points it still has to visit to get there (None: free where it is)."""

    id: uuid.UUID
    kind: VehicleKind
    at: Point
    capabilities: frozenset[str] = frozenset()
    busy_via: tuple[Point, ...] | None = None
    #: The most it may carry (None: no limit stated).
    max_payload_kg: float | None = None


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
    payload_kg: float | None = None
    #: Pickup window, seconds from the problem's time zero (negative: already open or
    #: past); None: as soon as possible.
    window_s: tuple[float, float] | None = None


@dataclass(frozen=True, slots=True)
class Speeds:
    """Travel model per profile."""

    robot_mps: float = 1.0
    driver_mps: float = 8.0
    detour_factor: float = 1.4


def build_problem(
    vehicles: Sequence[VehicleInput],
    missions: Sequence[MissionInput],
    speeds: Speeds,
    robot_routes: RobotRoutes | None = None,
    detours: Detours | None = None,
) -> Problem:
    """The planning problem over ``vehicles`` and ``missions`` (robots along
    ``robot_routes`` where both ends are layout nodes; straight-line travel round the
    no-go zones of ``detours``)."""
    vehicles = _any_wheelchair(vehicles, missions)
    payload = any(m.payload_kg for m in missions)
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
            pickup_windows=_pickup_windows(m),
            priority=_PRIORITY[m.priority],
            required_kind=m.required_kind,
            required_capabilities=m.required_capabilities,
            demand=(1, math.ceil(m.payload_kg or 0)) if payload else (1,),
        )
        for m in missions
    )
    profiles = _profiles(points, speeds, robot_routes, detours)
    planned = tuple(
        Vehicle(
            id=str(v.id),
            start=starts[i],
            profile=v.kind.value,
            kind=v.kind,
            capabilities=v.capabilities,
            ready_time=_busy_s(v, speeds),
            capacity=(1, _payload_capacity(v)) if payload else (1,),
        )
        for i, v in enumerate(vehicles)
    )
    return Problem(vehicles=planned, requests=requests, profiles=profiles)


def _pickup_windows(m: MissionInput) -> tuple[tuple[int, int], ...]:
    """Not before the window opens; no hard close (a late pickup beats none)."""
    if m.window_s is None:
        return ((0, HORIZON),)
    opens = min(max(0, math.ceil(m.window_s[0])), HORIZON)
    return ((opens, HORIZON),)


def _payload_capacity(v: VehicleInput) -> int:
    if v.max_payload_kg is None:
        return UNLIMITED_KG
    return max(0, math.floor(v.max_payload_kg))


def _any_wheelchair(
    vehicles: Sequence[VehicleInput], missions: Sequence[MissionInput]
) -> Sequence[VehicleInput]:
    """A vehicle that declares no wheelchair type carries any: it gets every wheelchair
    capability the missions ask for."""
    wanted = frozenset(
        c for m in missions for c in m.required_capabilities if c.startswith("wheelchair:")
    )
    if not wanted:
        return vehicles
    return [
        v
        if any(c.startswith("wheelchair:") for c in v.capabilities)
        else replace(v, capabilities=v.capabilities | wanted)
        for v in vehicles
    ]


def _profiles(
    points: Sequence[Point],
    speeds: Speeds,
    robot_routes: RobotRoutes | None = None,
    detours: Detours | None = None,
) -> dict[str, Profile]:
    """One geodesic distance matrix (the costly part), a duration matrix per profile;
    the robots' overlaid with their route graphs where both ends are layout nodes."""
    lat = np.asarray([p.lat for p in points], dtype=np.float64)
    lon = np.asarray([p.lon for p in points], dtype=np.float64)
    metres = geodesic_matrix(lat, lon) * speeds.detour_factor
    if detours is not None:
        metres = detours.around(lat.tolist(), lon.tolist(), metres)
    out: dict[str, Profile] = {}
    for kind, mps in (
        (VehicleKind.ROBOT, speeds.robot_mps),
        (VehicleKind.DRIVER, speeds.driver_mps),
    ):
        seconds, along = metres / mps, metres
        if kind is VehicleKind.ROBOT and robot_routes is not None:
            seconds, along = _on_layout(points, seconds, along, robot_routes)
        durations = _whole(seconds)
        out[kind.value] = Profile(durations=durations, costs=durations, distances=_whole(along))
    return out


def _on_layout(
    points: Sequence[Point],
    seconds: FloatMatrix,
    metres: FloatMatrix,
    robot_routes: RobotRoutes,
) -> tuple[FloatMatrix, FloatMatrix]:
    """``seconds``/``metres`` with the route graph's values wherever it has one (inf:
    no path, which becomes the horizon: unreachable for the planner)."""
    if not any(p.node is not None for p in points):
        return seconds, metres
    durations, distances = robot_routes.matrices([p.node for p in points])
    known = ~np.isnan(durations)
    return np.where(known, durations, seconds), np.where(known, distances, metres)


def _whole(values: FloatMatrix) -> npt.NDArray[np.int64]:
    """Whole units, capped at the planner's horizon (inf included)."""
    return np.minimum(np.ceil(np.nan_to_num(values, posinf=HORIZON)), HORIZON).astype(np.int64)


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


def not_yet_due(
    plan: Plan, opens_in_s: Mapping[uuid.UUID, float], margin_s: float
) -> frozenset[uuid.UUID]:
    """The missions first on some vehicle's route that are not to be released yet: their
    pickup window opens (``opens_in_s``: seconds from now; missions without a window
    are absent) later than the vehicle's travel to the pickup plus ``margin_s``. They
    stay in the horizon and are released by a later plan, once due."""
    out: set[uuid.UUID] = set()
    for route in plan.routes:
        if not route.stops:
            continue
        first = route.stops[0]
        opens = opens_in_s.get(uuid.UUID(first.request_id))
        if opens is None or first.kind is not StopKind.PICKUP:
            continue
        travel = first.arrival - route.start_time
        if opens > travel + margin_s:
            out.add(uuid.UUID(first.request_id))
    return frozenset(out)


def late_pickups(plan: Plan, closes_in_s: Mapping[uuid.UUID, float]) -> dict[uuid.UUID, int]:
    """Mission -> seconds its planned pickup starts after its window closes
    (``closes_in_s``: seconds from the plan's time zero), for those planned late."""
    out: dict[uuid.UUID, int] = {}
    for route in plan.routes:
        for stop in route.stops:
            if stop.kind is not StopKind.PICKUP:
                continue
            mid = uuid.UUID(stop.request_id)
            closes = closes_in_s.get(mid)
            if closes is not None and stop.start > closes:
                out[mid] = math.ceil(stop.start - closes)
    return out

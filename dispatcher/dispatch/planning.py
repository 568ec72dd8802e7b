"""The engine's planning step: inputs -> candidate lists -> planner in a worker thread.

A new mission is planned with the ``greedy`` strategy (a quick insertion: each request
onto the vehicle that can start its pickup soonest) so it gets a vehicle at once; the
engine then asks for a full plan (the configured strategy, warm-started from the last
full plan, which keeps assignments unless the gain passes the stability threshold).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import structlog

from dispatcher.dispatch.candidates import Around, CandidateFinder
from dispatcher.dispatch.legs import Leg
from dispatcher.dispatch.problem import (
    MissionInput,
    NodeKey,
    Point,
    RobotRoutes,
    Speeds,
    VehicleInput,
    build_problem,
    missions_by_vehicle,
    wheelchair_capability,
)
from dispatcher.metrics import DISPATCH_PLAN_SECONDS
from dispatcher.missions.domain import Location, MissionRecord, VehicleKindRequirement
from dispatcher.plan_snapshots import record_snapshot
from dispatcher.planner import Plan, PlannerOptions, Problem, VehicleKind, solve
from fleet.model import VehicleKind as FleetKind
from fleet.model import VehicleView

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Snapshots:
    """Where every planning problem is recorded (``[planner] snapshot_*``)."""

    directory: Path
    max_files: int
    max_bytes: int


@dataclass(frozen=True, slots=True)
class PlanInputs:
    """What one plan is made from (a snapshot taken under the engine's lock)."""

    vehicles: tuple[VehicleView, ...]
    busy: Mapping[uuid.UUID, Leg]
    missions: tuple[MissionRecord, ...]
    handover: Mapping[uuid.UUID, Location] = field(default_factory=dict)
    refused: Mapping[uuid.UUID, frozenset[uuid.UUID]] = field(default_factory=dict)


def _kind(req: VehicleKindRequirement) -> VehicleKind | None:
    if req is VehicleKindRequirement.ANY:
        return None
    return VehicleKind(req.value)


#: (facility id, place name or None) -> the layout node robots use there (None: none).
PlaceNodes = Callable[[uuid.UUID, str | None], str | None]


def _no_nodes(facility_id: uuid.UUID, place: str | None) -> str | None:
    return None


def to_inputs(
    inputs: PlanInputs, service_s: int, place_node: PlaceNodes = _no_nodes
) -> tuple[list[VehicleInput], list[MissionInput]]:
    """The planner-facing vehicles and missions (pure): positions with their layout nodes
    (a robot's last node, a place's node), capabilities and requirements."""
    vehicles: list[VehicleInput] = []
    for v in inputs.vehicles:
        assert v.position is not None  # plannable() checked it
        robot = v.kind is FleetKind.ROBOT
        leg = inputs.busy.get(v.id)
        via = (
            tuple(Point(s.lat, s.lon, _key(v.facility_id, s.node_id)) for s in leg.stops)
            if leg is not None
            else None
        )
        caps = v.capabilities
        vehicles.append(
            VehicleInput(
                id=v.id,
                kind=VehicleKind(v.kind.value),
                at=Point(
                    v.position.lat,
                    v.position.lon,
                    _key(v.facility_id, v.last_node_id) if robot else None,
                ),
                capabilities=frozenset(wheelchair_capability(t) for t in caps.wheelchair_types),
                busy_via=via,
                max_payload_kg=caps.max_payload_kg,
            )
        )
    missions = []
    for m in inputs.missions:
        handover = inputs.handover.get(m.id)
        pickup = handover or m.pickup
        wheelchair = m.requirements.get("wheelchair_type")
        payload = m.requirements.get("payload_kg")
        missions.append(
            MissionInput(
                id=m.id,
                pickup=Point(
                    pickup.lat,
                    pickup.lon,
                    None
                    if handover
                    else _key(m.facility_id, place_node(m.facility_id, m.pickup.place)),
                ),
                dropoff=Point(
                    m.dropoff.lat,
                    m.dropoff.lon,
                    _key(m.facility_id, place_node(m.facility_id, m.dropoff.place)),
                ),
                priority=m.priority,
                required_kind=_kind(m.vehicle_kind),
                required_capabilities=(
                    frozenset({wheelchair_capability(str(wheelchair))})
                    if wheelchair
                    else frozenset()
                ),
                service_s=service_s,
                payload_kg=float(payload) if payload is not None else None,
            )
        )
    return vehicles, missions


def _key(facility_id: uuid.UUID, node_id: str | None) -> NodeKey | None:
    return None if node_id is None else (facility_id, node_id)


class Planner:
    """Runs the planner for the engine: candidates on the loop, the solve in a thread."""

    def __init__(
        self,
        *,
        strategy: str,
        options: PlannerOptions,
        quick_time_limit_s: float,
        speeds: Speeds,
        service_s: int,
        finder: CandidateFinder | None = None,
        snapshots: Snapshots | None = None,
        robot_routes: RobotRoutes | None = None,
        place_node: PlaceNodes = _no_nodes,
    ) -> None:
        self._routes = robot_routes
        self._place_node = place_node
        self._strategy = strategy
        self._options = options
        self._quick = PlannerOptions(time_limit_s=quick_time_limit_s, use_vroom=False)
        self._speeds = speeds
        self._service_s = service_s
        self._finder = finder
        self._snapshots = snapshots
        self._previous: Plan | None = None

    async def plan(self, inputs: PlanInputs, *, quick: bool) -> Plan:
        """Plan ``inputs``: greedy when ``quick``, else the configured strategy."""
        given = await self._candidates(inputs)
        vehicles, missions = to_inputs(
            _only_candidates(inputs, given), self._service_s, self._place_node
        )
        # Off the loop: the geodesic and route-graph matrices are numpy / scipy work.
        problem = await asyncio.to_thread(
            build_problem, vehicles, missions, self._speeds, self._routes
        )
        strategy = "greedy" if quick else self._strategy
        options = self._quick if quick else self._options
        previous = None if quick else self._previous
        if self._snapshots is not None:
            await self._record(problem, strategy)
        started = time.perf_counter()
        plan = await asyncio.to_thread(solve, problem, strategy, options, previous, given)
        took = time.perf_counter() - started
        DISPATCH_PLAN_SECONDS.labels(strategy=strategy).observe(took)
        if not quick:
            self._previous = plan
        log.info(
            "dispatch.planned",
            strategy=strategy,
            vehicles=len(vehicles),
            missions=len(missions),
            unserved=len(plan.unserved),
            seconds=round(took, 3),
        )
        return plan

    async def _record(self, problem: Problem, label: str) -> None:
        """Write the problem for replay (``fleetd plan solve``), off the event loop; a
        failed write is logged, never stops dispatch."""
        snap = self._snapshots
        assert snap is not None
        try:
            await asyncio.to_thread(
                record_snapshot, problem, snap.directory, snap.max_files, snap.max_bytes, label
            )
        except OSError as exc:
            log.warning("dispatch.snapshot_failed", error=str(exc))

    def by_vehicle(self, plan: Plan) -> dict[uuid.UUID, tuple[uuid.UUID, ...]]:
        return missions_by_vehicle(plan)

    async def _candidates(self, inputs: PlanInputs) -> dict[str, list[str]]:
        """Per mission: nearby vehicles (Redis GEO / PostGIS) minus those that refused it;
        a mission with no nearby list may go to any vehicle that did not refuse it."""
        everyone = [str(v.id) for v in inputs.vehicles]
        near: dict[str, list[str]] = {}
        if self._finder is not None:
            near = await self._finder.find(
                [Around(m.id, m.facility_id, m.pickup.lat, m.pickup.lon) for m in inputs.missions]
            )
            busy = [str(v) for v in inputs.busy]
            near = {k: [*ids, *(b for b in busy if b not in ids)] for k, ids in near.items()}
        out: dict[str, list[str]] = {}
        for m in inputs.missions:
            refused = {str(v) for v in inputs.refused.get(m.id, frozenset())}
            ids = near.get(str(m.id))
            if ids is None and not refused:
                continue
            out[str(m.id)] = [v for v in (ids or everyone) if v not in refused]
        return out


def _only_candidates(inputs: PlanInputs, given: Mapping[str, list[str]]) -> PlanInputs:
    """When every mission has a candidate list, only the vehicles on some list (and those
    busy, whose horizon is planned) enter the problem: it stays small in a large fleet."""
    if not inputs.missions or any(str(m.id) not in given for m in inputs.missions):
        return inputs
    wanted = {v for ids in given.values() for v in ids}
    kept = tuple(v for v in inputs.vehicles if str(v.id) in wanted or v.id in inputs.busy)
    return replace(inputs, vehicles=kept)

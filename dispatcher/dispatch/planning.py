"""The engine's planning step: inputs -> candidate lists -> planner off the event loop.

A new mission is planned with the ``greedy`` strategy (a quick insertion of the new
missions only, each onto the vehicle that can start its pickup soonest, in a thread) so it
gets a vehicle at once; the engine then asks for a full plan (the configured strategy,
warm-started from the last full plan, which keeps assignments unless the gain passes the
stability threshold), which the daemon runs in a worker process
(:mod:`dispatcher.dispatch.solver_process`).

The size of a problem is bounded whatever the fleet and the backlog: at most
:data:`MAX_PLANNED_MISSIONS` missions, and per mission its candidates (the nearest fresh
vehicles from Redis GEO, plus the busy vehicles whose leg ends near its pickup).

Scheduled missions (a pickup window) carry their window into the problem, measured from
the moment it is built. One whose window opens more than ``plan_ahead_s`` later is not
planned yet; one planned first on a free vehicle is released only when due
(:meth:`Planner.not_due`: its window opens within the travel there plus
``release_margin_s``), else it stays in that vehicle's horizon.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import structlog

from dispatcher.dispatch.candidates import Around, CandidateFinder
from dispatcher.dispatch.legs import Leg
from dispatcher.dispatch.problem import (
    PLAN_AHEAD_S,
    RELEASE_MARGIN_S,
    Detours,
    MissionInput,
    NodeKey,
    Point,
    RobotRoutes,
    Speeds,
    VehicleInput,
    build_problem,
    late_pickups,
    missions_by_vehicle,
    not_yet_due,
    wheelchair_capability,
)
from dispatcher.metrics import DISPATCH_LATE_MISSIONS, DISPATCH_PLAN_SECONDS
from dispatcher.missions.domain import Location, MissionRecord, VehicleKindRequirement
from dispatcher.plan_snapshots import record_snapshot
from dispatcher.planner import Plan, PlannerOptions, Problem, VehicleKind, solve
from fleet.model import VehicleKind as FleetKind
from fleet.model import VehicleView

log = structlog.get_logger(__name__)

#: Metres per degree of latitude (busy vehicles' leg ends are ranked by a flat-earth
#: distance: good to a fraction of a percent over a facility).
_M_PER_DEG = 111_320.0

#: A quick insertion this small (missions x vehicles) is solved on the event loop: the
#: greedy construction takes a millisecond or two, less than a round trip to a thread
#: when the daemon is busy. Larger ones go to a thread.
INLINE_QUICK = 2_000

#: Most missions in one full plan: the most urgent, then the oldest. A backlog of
#: thousands (a burst of requests, or no vehicle online) would otherwise make one
#: problem of every open mission, and its travel matrix grows with the square of it.
MAX_PLANNED_MISSIONS = 200

#: The wall clock (UTC); tests pass their own.
Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


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


@dataclass(frozen=True, slots=True)
class SolveJob:
    """One planning problem as the solver's worker receives it (picklable): built by the
    daemon in a thread (its robots' route-graph matrices are cached there), solved in the
    worker."""

    problem: Problem
    strategy: str
    options: PlannerOptions
    previous: Plan | None
    candidates: Mapping[str, list[str]]
    snapshots: Snapshots | None = None


def run_job(job: SolveJob) -> Plan:
    """Record the problem when asked, solve it (runs in a thread or process)."""
    problem = job.problem
    snap = job.snapshots
    if snap is not None:
        try:
            record_snapshot(problem, snap.directory, snap.max_files, snap.max_bytes, job.strategy)
        except OSError as exc:
            log.warning("dispatch.snapshot_failed", error=str(exc))
    return solve(problem, job.strategy, job.options, job.previous, job.candidates)


#: Runs one :class:`SolveJob` off the event loop.
SolveRunner = Callable[[SolveJob], Awaitable[Plan]]


async def in_thread(job: SolveJob) -> Plan:
    """The default :data:`SolveRunner`: a worker thread."""
    return await asyncio.to_thread(run_job, job)


def most_urgent(missions: tuple[MissionRecord, ...], limit: int) -> tuple[MissionRecord, ...]:
    """At most ``limit`` missions: the highest priority first, then the one ready
    earliest (created, or its window's start when later)."""
    if len(missions) <= limit:
        return missions
    ranked = sorted(missions, key=lambda m: (-m.priority.rank, ready_at(m)))
    return tuple(ranked[:limit])


def ready_at(m: MissionRecord) -> datetime:
    """When the rider is ready: the window's start, or the mission's creation."""
    if m.window_start is not None and m.window_start > m.created_at:
        return m.window_start
    return m.created_at


def within_reach(
    missions: tuple[MissionRecord, ...], now: datetime, ahead_s: float
) -> tuple[MissionRecord, ...]:
    """The missions to plan now: those without a window, and those whose window opens
    within ``ahead_s`` of ``now``."""
    return tuple(
        m
        for m in missions
        if m.window_start is None or (m.window_start - now).total_seconds() <= ahead_s
    )


def _window_s(m: MissionRecord, now: datetime) -> tuple[float, float] | None:
    if m.window_start is None or m.window_end is None:
        return None
    return ((m.window_start - now).total_seconds(), (m.window_end - now).total_seconds())


def _kind(req: VehicleKindRequirement) -> VehicleKind | None:
    if req is VehicleKindRequirement.ANY:
        return None
    return VehicleKind(req.value)


#: (facility id, place name or None) -> the layout node robots use there (None: none).
PlaceNodes = Callable[[uuid.UUID, str | None], str | None]


def _no_nodes(facility_id: uuid.UUID, place: str | None) -> str | None:
    return None


def to_inputs(
    inputs: PlanInputs,
    service_s: int,
    place_node: PlaceNodes = _no_nodes,
    now: datetime | None = None,
) -> tuple[list[VehicleInput], list[MissionInput]]:
    """The planner-facing vehicles and missions (pure): positions with their layout nodes
    (a robot's last node, a place's node), capabilities, requirements and pickup windows
    (seconds from ``now``; without ``now``, windows are left out)."""
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
                window_s=None if now is None else _window_s(m, now),
            )
        )
    return vehicles, missions


def _key(facility_id: uuid.UUID, node_id: str | None) -> NodeKey | None:
    return None if node_id is None else (facility_id, node_id)


class Planner:
    """Runs the planner for the engine: candidates on the loop, the solve off it."""

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
        detours: Detours | None = None,
        place_node: PlaceNodes = _no_nodes,
        runner: SolveRunner = in_thread,
        radius_m: float = 2000.0,
        count: int = 16,
        max_missions: int = MAX_PLANNED_MISSIONS,
        release_margin_s: float = RELEASE_MARGIN_S,
        plan_ahead_s: float = PLAN_AHEAD_S,
        clock: Clock = _utc_now,
    ) -> None:
        self._routes = robot_routes
        self._detours = detours
        self._place_node = place_node
        self._strategy = strategy
        self._options = options
        self._quick = PlannerOptions(time_limit_s=quick_time_limit_s, use_vroom=False)
        self._speeds = speeds
        self._service_s = service_s
        self._finder = finder
        self._snapshots = snapshots
        self._previous: Plan | None = None
        self._runner = runner
        self._radius_m = radius_m
        self._count = count
        self._max_missions = max_missions
        self._release_margin_s = release_margin_s
        self._plan_ahead_s = plan_ahead_s
        self._clock = clock

    async def plan(
        self, inputs: PlanInputs, *, quick: bool, near: Mapping[str, list[str]] | None = None
    ) -> Plan:
        """Plan ``inputs``: greedy when ``quick`` (in a thread, or on the loop when tiny:
        never queued behind a full optimisation), else the configured strategy through
        the runner (the daemon's is a worker process). Candidates are looked up here, on
        the loop (two Redis round trips); the problem is built in a thread and solved by the
        runner."""
        now = self._clock()
        reach = within_reach(inputs.missions, now, self._plan_ahead_s)
        strategy = "greedy" if quick else self._strategy
        if not reach:
            # Only bookings further ahead than plan_ahead_s: nothing to plan yet.
            return Plan(routes=(), unserved=(), strategy=strategy)
        inputs = replace(inputs, missions=most_urgent(reach, self._max_missions))
        given = await self._candidates(inputs, near)
        vehicles, missions = to_inputs(
            _only_candidates(inputs, given), self._service_s, self._place_node, now
        )
        tiny = quick and len(vehicles) * len(missions) <= INLINE_QUICK
        # The travel matrices (geodesic and the robots' route graphs, cached here per
        # layout version) are numpy / scipy work: off the loop unless the problem is tiny.
        if tiny:
            problem = build_problem(vehicles, missions, self._speeds, self._routes, self._detours)
        else:
            problem = await asyncio.to_thread(
                build_problem, vehicles, missions, self._speeds, self._routes, self._detours
            )
        job = SolveJob(
            problem=problem,
            strategy=strategy,
            options=self._quick if quick else self._options,
            previous=None if quick else self._previous,
            candidates=given,
            snapshots=self._snapshots,
        )
        started = time.perf_counter()
        if tiny and job.snapshots is None:
            plan = run_job(job)
        else:
            plan = await (in_thread(job) if quick else self._runner(job))
        took = time.perf_counter() - started
        DISPATCH_PLAN_SECONDS.labels(strategy=strategy).observe(took)
        late = late_pickups(plan, {m.id: m.window_s[1] for m in missions if m.window_s is not None})
        if not quick:
            self._previous = plan
            DISPATCH_LATE_MISSIONS.set(len(late))
        log.info(
            "dispatch.planned",
            strategy=strategy,
            vehicles=len(vehicles),
            missions=len(missions),
            unserved=len(plan.unserved),
            late=len(late),
            seconds=round(took, 3),
        )
        return plan

    def by_vehicle(self, plan: Plan) -> dict[uuid.UUID, tuple[uuid.UUID, ...]]:
        return missions_by_vehicle(plan)

    def not_due(
        self, plan: Plan, missions: Mapping[uuid.UUID, MissionRecord]
    ) -> frozenset[uuid.UUID]:
        """The scheduled missions ``plan`` puts first on a vehicle that are not to be
        released yet: their window opens later than the travel there plus the release
        margin, counted from now (the moment of the commit, not of the plan)."""
        now = self._clock()
        opens: dict[uuid.UUID, float] = {}
        for route in plan.routes:
            if not route.stops:
                continue
            m = missions.get(uuid.UUID(route.stops[0].request_id))
            if m is not None and m.window_start is not None:
                opens[m.id] = (m.window_start - now).total_seconds()
        return not_yet_due(plan, opens, self._release_margin_s)

    async def nearby(self, missions: Sequence[MissionRecord]) -> dict[str, list[str]] | None:
        """Mission id -> the vehicles near its pickup (Redis GEO / PostGIS; missions with
        none found are left out); None without a candidate finder."""
        if self._finder is None:
            return None
        return await self._finder.find(
            [Around(m.id, m.facility_id, m.pickup.lat, m.pickup.lon) for m in missions]
        )

    async def _candidates(
        self, inputs: PlanInputs, found: Mapping[str, list[str]] | None = None
    ) -> dict[str, list[str]]:
        """Per mission: nearby vehicles (Redis GEO / PostGIS, or ``found`` when given)
        minus those that refused it; a mission with no nearby list may go to any vehicle
        that did not refuse it."""
        everyone = [str(v.id) for v in inputs.vehicles]
        near: dict[str, list[str]] = {}
        if self._finder is not None:
            near = dict(found) if found is not None else await self.nearby(inputs.missions) or {}
            if len(inputs.busy) * len(inputs.missions) <= INLINE_QUICK:
                busy = busy_near(inputs, self._radius_m, self._count)
            else:
                busy = await asyncio.to_thread(busy_near, inputs, self._radius_m, self._count)
            near = {
                k: [*ids, *(b for b in busy.get(k, ()) if b not in ids)] for k, ids in near.items()
            }
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


def busy_near(inputs: PlanInputs, radius_m: float, count: int) -> dict[str, list[str]]:
    """Per mission: up to ``count`` busy vehicles whose released leg ends within
    ``radius_m`` of its pickup, nearest first (Redis GEO finds them where they are, not
    where they will be free). Bounded, so a problem stays small when thousands are busy."""
    ends: list[tuple[str, float, float]] = []
    for v in inputs.vehicles:
        leg = inputs.busy.get(v.id)
        if leg is not None and leg.stops:
            ends.append((str(v.id), leg.stops[-1].lat, leg.stops[-1].lon))
    if not ends or not inputs.missions:
        return {}
    ids = [e[0] for e in ends]
    lat = np.array([e[1] for e in ends])
    lon = np.array([e[2] for e in ends])
    out: dict[str, list[str]] = {}
    for m in inputs.missions:
        dy = (lat - m.pickup.lat) * _M_PER_DEG
        dx = (lon - m.pickup.lon) * _M_PER_DEG * np.cos(np.radians(m.pickup.lat))
        dist = np.hypot(dx, dy)
        within = np.flatnonzero(dist <= radius_m)
        if within.size > count:
            within = within[np.argpartition(dist[within], count)[:count]]
        if within.size:
            out[str(m.id)] = [ids[i] for i in within[np.argsort(dist[within])]]
    return out

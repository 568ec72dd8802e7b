"""The dispatch engine as the daemon runs it: built from settings, one supervised task.

:func:`build_dispatch` wires the engine to the mission store, the registry (its snapshot
and change feed), the channels of :func:`~dispatcher.dispatch.channels.make_channels`,
Redis GEO candidates and the layouts' charging stations. :meth:`DispatchService.run`
(task ``fleetd.dispatch``) runs the mission intake, the engine's loops and the vehicle
event forwarder (which also logs every vehicle event, as ``fleetd.vehicle_events`` does
when dispatch is off).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis
import structlog

from dispatcher.config import Settings
from dispatcher.dispatch.candidates import CandidateFinder
from dispatcher.dispatch.charging import ChargePolicy, Station
from dispatcher.dispatch.debounce import Debouncer
from dispatcher.dispatch.engine import DispatchEngine
from dispatcher.dispatch.facility_gate import FacilityGate, gate_channels
from dispatcher.dispatch.intake import MissionIntake
from dispatcher.dispatch.legs import LegChannel
from dispatcher.dispatch.planning import Planner, Snapshots, SolveRunner, in_thread
from dispatcher.dispatch.problem import Detours, RobotRoutes, Speeds
from dispatcher.dispatch.solver_process import SolverProcess
from dispatcher.dispatch.vehicle_sense import SenseLimits
from dispatcher.dispatch.zone_rules import ZoneRules
from dispatcher.facility_layouts import FacilityLayouts
from dispatcher.links.event_bus import VehicleEventBus
from dispatcher.links.event_log import describe
from dispatcher.logs import debug_enabled
from dispatcher.ops.durable import DurableWrites
from dispatcher.ops.missions import MissionOps
from dispatcher.planner import PlannerOptions
from dispatcher.storage.event_stream import EventHub, EventReader
from dispatcher.storage.live_positions import LivePositions
from fleet.model import VehicleKind
from fleet.registry import FleetRegistry
from geo.facility_maps import FacilityMaps
from geo.layout.model import LifDocument

log = structlog.get_logger(__name__)


def charge_policy(settings: Settings) -> ChargePolicy:
    d = settings.dispatch
    return ChargePolicy(d.charge_below_pct, d.resume_above_pct, d.reserve_pct)


def charging_stations(layouts: Mapping[str, FacilityLayouts], maps: FacilityMaps) -> list[Station]:
    """Every charging station of every facility's layouts, placed in WGS84 for ranking:
    by the named place at its node if there is one, else by its node's map position
    through the facility's map frame. A station fleetd cannot place is logged, skipped."""
    out: list[Station] = []
    for key, loaded in layouts.items():
        facility = maps.facility(key)
        if facility is None:
            continue
        default_map = facility.maps[0].map_id if facility.maps else None
        for doc in loaded.documents:
            for station in doc.charging_stations():
                node = station.interaction_node_ids[0] if station.interaction_node_ids else None
                where = _station_position(doc, maps, facility.id, node, default_map)
                if node is None or where is None:
                    log.warning("dispatch.station_unplaced", station=station.station_id)
                    continue
                name = station.name or station.station_id
                out.append(Station(name, facility.id, node, *where))
    return out


def _station_position(
    doc: LifDocument,
    maps: FacilityMaps,
    facility_id: uuid.UUID,
    node_id: str | None,
    default_map: str | None,
) -> tuple[float, float] | None:
    if node_id is None:
        return None
    place = maps.place_at_node(facility_id, node_id)
    if place is not None:
        return place.lat, place.lon
    node = doc.nodes.get(node_id)
    map_id = (node.map_id if node is not None else None) or default_map
    frame = maps.frame(map_id) if map_id is not None else None
    if node is None or frame is None:
        return None
    return frame.to_wgs84(node.x, node.y)


def planner_options(settings: Settings) -> PlannerOptions:
    """The full plan's options from ``[planner]`` (the offline evaluation uses them too)."""
    p = settings.planner
    return PlannerOptions(
        time_limit_s=p.time_limit_s,
        improvement_threshold=p.improvement_threshold,
        max_candidates=p.max_candidates,
    )


def build_planner(
    settings: Settings,
    finder: CandidateFinder | None,
    robot_routes: RobotRoutes | None = None,
    maps: FacilityMaps | None = None,
    solver: SolverProcess | None = None,
    detours: Detours | None = None,
) -> Planner:
    """The engine's planner: robots along ``robot_routes`` between the places' nodes of
    ``maps`` (geodesic without them); full plans in ``solver``'s worker process when given."""
    p, d = settings.planner, settings.dispatch
    runner: SolveRunner = in_thread if solver is None else solver.solve

    def place_node(facility_id: uuid.UUID, name: str | None) -> str | None:
        place = maps.place(facility_id, name) if maps is not None and name else None
        return place.node_id if place is not None else None

    return Planner(
        strategy=p.strategy,
        options=planner_options(settings),
        quick_time_limit_s=d.quick_time_limit_s,
        speeds=Speeds(robot_mps=d.robot_speed_mps),
        service_s=d.service_s,
        finder=finder,
        robot_routes=robot_routes,
        detours=detours,
        place_node=place_node,
        snapshots=(
            Snapshots(Path(p.snapshot_dir), p.snapshot_max_files, p.snapshot_max_bytes)
            if p.snapshot_dir
            else None
        ),
        radius_m=d.candidate_radius_m,
        count=d.candidate_count,
        runner=runner,
        release_margin_s=d.release_margin_s,
        plan_ahead_s=d.plan_ahead_s,
    )


class DispatchService:
    """The engine, its mission intake and the vehicle event forwarder."""

    def __init__(
        self,
        engine: DispatchEngine,
        intake: MissionIntake,
        events: VehicleEventBus | None,
        solver: SolverProcess | None = None,
    ) -> None:
        self.engine = engine
        self._intake = intake
        self._events = events
        self._solver = solver

    async def run(self) -> None:
        """Run until cancelled. The solver's worker process starts beside the rest (its
        imports take a second or two; a full plan asked for meanwhile waits for it, a
        quick insertion does not) and is stopped on the way out."""
        try:
            async with asyncio.TaskGroup() as tg:
                if self._solver is not None:
                    tg.create_task(self._solver.start(), name="fleetd.dispatch.solver")
                tg.create_task(self._intake.run(), name="fleetd.dispatch.intake")
                tg.create_task(self.engine.run(), name="fleetd.dispatch.engine")
                if self._events is not None:
                    tg.create_task(self._forward(self._events), name="fleetd.dispatch.events")
        finally:
            if self._solver is not None:
                self._solver.close()

    async def _forward(self, bus: VehicleEventBus) -> None:
        while True:
            event = await bus.get()
            if debug_enabled():  # describe() costs; thousands a second
                log.debug("vehicle.event", **describe(event))
            self.engine.observe(event)


def sense_limits(settings: Settings) -> SenseLimits:
    """The stuck watchdog's and the critical-battery rule's limits, from the settings."""
    d = settings.dispatch
    return SenseLimits(
        stuck_after_s=d.stuck_after_s,
        retry_after_s=d.stuck_retry_s,
        critical_battery_pct=settings.alerts.critical_battery_pct,
        finish_within_m=d.critical_finish_within_m,
        heard_within_s=settings.fleet.robot_heartbeat_timeout,
    )


def build_dispatch(
    settings: Settings,
    *,
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    registry: FleetRegistry,
    channels: Mapping[VehicleKind, LegChannel],
    hub: EventHub,
    events: VehicleEventBus | None,
    stations: Iterable[Station] = (),
    robot_routes: RobotRoutes | None = None,
    durable: DurableWrites | None = None,
    detours: Detours | None = None,
    gate: FacilityGate | None = None,
) -> DispatchService:
    """The daemon's dispatch service (subscribes the engine to the registry's changes).

    ``gate``: active/standby per facility; the channels go behind it
    (:mod:`dispatcher.dispatch.facility_gate`) and the engine plans and writes only for
    the facilities it leads."""
    d = settings.dispatch
    if gate is not None:

        def facility_of(vehicle_id: uuid.UUID) -> uuid.UUID | None:
            # The live record, not a view: no copy on the path of every vehicle event.
            rec = registry.record(vehicle_id)
            return rec.facility_id if rec is not None else None

        channels = gate_channels(channels, gate, facility_of)
    positions = LivePositions(
        redis, key_prefix=settings.redis.key_prefix, max_age_s=registry.heartbeat_timeout_s
    )
    finder = CandidateFinder(
        positions,
        pool,
        radius_m=d.candidate_radius_m,
        count=d.candidate_count,
        max_age_s=registry.heartbeat_timeout_s,
    )
    solver = SolverProcess() if d.solver == "process" else None
    engine = DispatchEngine(
        ops=MissionOps(pool, durable),
        fleet=registry,
        channels=channels,
        planner=build_planner(settings, finder, robot_routes, registry.maps, solver, detours),
        maps=registry.maps,
        policy=charge_policy(settings),
        stations=tuple(stations),
        debounce=Debouncer(quiet_s=d.debounce_s, max_wait_s=d.max_delay_s),
        tick_s=d.tick_s,
        service_s=d.service_s,
        zones=ZoneRules(pool),
        sense=sense_limits(settings),
        gate=gate,
    )
    registry.subscribe(engine.on_fleet_change)
    intake = MissionIntake(engine, EventReader(pool), hub)
    return DispatchService(engine, intake, events, solver)

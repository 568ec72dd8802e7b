"""The offline evaluation: a discrete-event simulation of the dispatch engine on a clock.

One heap of timed events (missions created, vehicles reaching a stop, a robot charged, a
re-plan due, the periodic tick, a sample), popped in time order; nothing waits on the
wall clock, so a simulated day takes minutes. What it runs is the daemon's dispatch
loop (:mod:`dispatcher.dispatch.engine`) without its I/O:

- a new mission marks an urgent re-plan: a quick ``greedy`` plan gives it a vehicle at
  once, then a full plan with the configured strategy follows (debounced like the
  daemon's :class:`~dispatcher.dispatch.debounce.Debouncer`); a finished leg or a charged
  robot marks a re-plan; with nothing pending, a full plan every ``tick_s``;
- planning problems are built by the daemon's own pure builder
  (:func:`dispatcher.dispatch.problem.build_problem`: geodesic estimates, an open mission
  requested "now" or, booked with a pickup window, at its window's start, not picked up
  before it; a busy vehicle ready where its released leg ends) and solved by
  :func:`dispatcher.planner.solve` (``optimise``: OR-Tools guided local search, or
  ``greedy``), warm-started from the previous full plan; as in the daemon, a booking
  whose window opens beyond ``plan_ahead_s`` is not planned yet;
- each free vehicle with planned missions is released its first one (one released leg
  per vehicle; the rest is its horizon, re-planned freely), unless it is a booking not
  due yet (:func:`dispatcher.dispatch.problem.not_yet_due`: its window opens later than
  the travel there plus ``release_margin_s``), which waits in the horizon;
- after every plan, idle robots below ``charge_below_pct`` go to the nearest free
  charging station (:func:`dispatcher.dispatch.charging.choose_stations`), and charge
  until ``resume_above_pct``.

Vehicles drive on the facility's real travel times (:mod:`sim.evaluate.site`); robots
drain and charge their battery as :mod:`sim.robot`'s virtual robots do. Planning takes no
simulated time (its wall time is recorded per plan). With the planner's deterministic
stop (``PlannerOptions.solution_limit``) the whole run is a pure function of the scenario.
"""

from __future__ import annotations

import heapq
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import IntEnum

import numpy as np

from dispatcher.dispatch.charging import ChargePolicy, RobotNeed, choose_stations, dispatchable
from dispatcher.dispatch.debounce import Debouncer
from dispatcher.dispatch.problem import (
    PLAN_AHEAD_S,
    RELEASE_MARGIN_S,
    MissionInput,
    Point,
    Speeds,
    VehicleInput,
    build_problem,
    missions_by_vehicle,
    not_yet_due,
)
from dispatcher.missions.lifecycle import Priority
from dispatcher.planner import Plan, PlannerOptions, VehicleKind, solve
from sim.evaluate.site import Site
from sim.run_record import MissionRecord, ReplanRecord, RunRecord, VehicleSample
from sim.scenario import Scenario
from sim.workload_draw import DrawnMission, draw_workload

#: Stable ids: the same scenario names the same vehicles and missions in every run.
_NS = uuid.UUID("0c1f6a52-3c54-4f2e-9d0a-5b7c2f1e9a11")


@dataclass(frozen=True, slots=True)
class DispatchRules:
    """The daemon's ``[dispatch]`` settings the engine follows (defaults as shipped)."""

    tick_s: float = 5.0
    debounce_s: float = 0.2
    max_delay_s: float = 1.0
    service_s: int = 30
    quick_time_limit_s: float = 0.2
    speeds: Speeds = field(default_factory=Speeds)
    charge: ChargePolicy = field(default_factory=lambda: ChargePolicy(25.0, 80.0, 15.0))
    release_margin_s: float = RELEASE_MARGIN_S
    plan_ahead_s: float = PLAN_AHEAD_S


@dataclass(frozen=True, slots=True)
class Battery:
    """Percent per second powered, per metre driven, charged per second (sim.robot's)."""

    idle_pct_s: float = 0.005
    move_pct_m: float = 0.02
    charge_pct_s: float = 0.5


@dataclass(frozen=True, slots=True)
class EvaluateOptions:
    """How to run one evaluation."""

    strategy: str = "optimise"
    planner: PlannerOptions = field(default_factory=lambda: PlannerOptions(solution_limit=300))
    rules: DispatchRules = field(default_factory=DispatchRules)
    battery: Battery = field(default_factory=Battery)
    sample_s: float = 60.0


class _Ev(IntEnum):
    # At equal times: vehicles' progress first, then arrivals, then planning.
    STOP = 0
    CHARGED = 1
    ARRIVAL = 2
    PLAN = 3
    TICK = 4
    SAMPLE = 5


@dataclass(slots=True)
class _Leg:
    """A released leg: a mission's pickup and drop-off, or a trip to charge."""

    mission: str | None
    stops: list[int]  # spot indices still to reach
    via: tuple[int, ...]  # every stop of the leg (what the daemon plans around)


@dataclass(slots=True)
class _Vehicle:
    uid: uuid.UUID
    name: str
    kind: VehicleKind
    spot: int
    battery: float | None
    battery_t: float = 0.0
    leg: _Leg | None = None
    charging: bool = False
    # The current move, for positions between events: from, to, departed, arrives.
    move: tuple[int, int, float, float] | None = None
    busy_since: float | None = None
    busy_s: float = 0.0

    def battery_now(self, now: float, battery: Battery) -> float | None:
        """The battery at ``now`` (idle drain, or charging), without changing it."""
        if self.battery is None:
            return None
        dt = max(0.0, now - self.battery_t)
        level = self.battery - battery.idle_pct_s * dt
        if self.charging:
            level += battery.charge_pct_s * dt
        return min(100.0, max(0.0, level))

    def settle(self, now: float, battery: Battery) -> None:
        """Bring the stored battery level up to ``now``."""
        level = self.battery_now(now, battery)
        if level is not None:
            self.battery = level
        self.battery_t = now


@dataclass(slots=True)
class _Mission:
    drawn: DrawnMission
    uid: uuid.UUID
    record: MissionRecord
    pickup: int
    dropoff: int


_PRIORITY = {p.value: p for p in Priority}


class Evaluation:
    """One run of a scenario through the engine's loop; :meth:`run` returns its record."""

    def __init__(
        self,
        scenario: Scenario,
        site: Site,
        options: EvaluateOptions,
        on_progress: Callable[[float], None] | None = None,
    ) -> None:
        self.scenario = scenario
        self.site = site
        self.opts = options
        self.rules = options.rules
        self._on_progress = on_progress
        self._heap: list[tuple[float, int, int, object]] = []
        self._seq = 0
        self.now = 0.0
        self.debounce = Debouncer(self.rules.debounce_s, self.rules.max_delay_s)
        self.vehicles = self._fleet()
        self.missions: dict[uuid.UUID, _Mission] = {}
        self.open: dict[uuid.UUID, _Mission] = {}  # not yet released to a vehicle
        self._new = False
        self._previous: Plan | None = None
        self._plan_due: float | None = None
        self._tick_gen = 0
        self.record = RunRecord(
            scenario=scenario.name,
            mode="evaluate",
            strategy=options.strategy,
            seed=scenario.seed,
            duration_s=scenario.duration_s,
            vehicles=len(self.vehicles),
            layout=site.key,
        )
        self._quick = PlannerOptions(time_limit_s=self.rules.quick_time_limit_s, use_vroom=False)

    # Set-up ----------------------------------------------------------------------------

    def _fleet(self) -> list[_Vehicle]:
        rng = np.random.default_rng([self.scenario.seed, 1])
        fleet = self.scenario.fleet
        station_spots = [self.site.index(s.name) for s in self.site.stations]
        place_spots = [self.site.index(p) for p in self.site.places]
        # Robots start on the chargers first (a parked fleet), then on the places.
        robot_starts = station_spots + place_spots
        out: list[_Vehicle] = []
        low, high = fleet.battery_start
        for i in range(fleet.robots):
            name = f"r{i + 1:04d}"
            out.append(
                _Vehicle(
                    uid=uuid.uuid5(_NS, name),
                    name=name,
                    kind=VehicleKind.ROBOT,
                    spot=robot_starts[i % len(robot_starts)],
                    battery=float(rng.uniform(low, high)),
                )
            )
        for i in range(fleet.drivers):
            name = f"d{i + 1:03d}"
            out.append(
                _Vehicle(
                    uid=uuid.uuid5(_NS, name),
                    name=name,
                    kind=VehicleKind.DRIVER,
                    spot=place_spots[(i * 7) % len(place_spots)],
                    battery=None,
                )
            )
        return out

    def _push(self, t: float, kind: _Ev, payload: object = None) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, int(kind), self._seq, payload))

    # The loop --------------------------------------------------------------------------

    def run(self) -> RunRecord:
        """Simulate ``scenario.duration_s`` and return what happened."""
        drawn = self.workload()
        for m in drawn:
            self._push(m.created_s, _Ev.ARRIVAL, m)
        self._push(0.0, _Ev.SAMPLE)
        self._push(self.rules.tick_s, _Ev.TICK, self._tick_gen)
        end = self.scenario.duration_s
        began = time.perf_counter()
        while self._heap and self._heap[0][0] <= end:
            t, kind, _, payload = heapq.heappop(self._heap)
            self.now = t
            self._dispatch(_Ev(kind), payload)
            if self._on_progress is not None and kind == _Ev.SAMPLE:
                self._on_progress(t)
        self.now = end
        self._close()
        self.record.notes["wall_s"] = round(time.perf_counter() - began, 1)
        return self.record

    def workload(self) -> tuple[DrawnMission, ...]:
        """The missions of the run: the one workload generator over the site's mission
        places (what a live run of the scenario creates through the API)."""
        return draw_workload(self.scenario, self.site.places)

    def _dispatch(self, kind: _Ev, payload: object) -> None:
        if kind is _Ev.ARRIVAL:
            assert isinstance(payload, DrawnMission)
            self._arrive(payload)
        elif kind is _Ev.STOP:
            assert isinstance(payload, _Vehicle)
            self._reached(payload)
        elif kind is _Ev.CHARGED:
            self._mark()
        elif kind is _Ev.PLAN:
            if self._plan_due is not None and self.debounce.take(self.now):
                self._plan_due = None
                self._plan_now()
        elif kind is _Ev.TICK:
            if payload == self._tick_gen and not self.debounce.pending:
                self._plan_now()
        elif kind is _Ev.SAMPLE:
            self._sample()
            self._push(self.now + self.opts.sample_s, _Ev.SAMPLE)

    def _mark(self, urgent: bool = False) -> None:
        """Something changed: re-plan soon (the daemon's ``DispatchEngine.mark``)."""
        self.debounce.mark(self.now)
        if urgent:
            self.debounce.mark(self.now - self.debounce.max_wait_s)
        due = self.debounce.due_at()
        assert due is not None
        if self._plan_due is None or due < self._plan_due:
            self._plan_due = due
            self._push(max(due, self.now), _Ev.PLAN)
        elif due > self._plan_due:
            # A later mark pushed the quiet time on: look again then.
            self._plan_due = due
            self._push(due, _Ev.PLAN)

    # Missions --------------------------------------------------------------------------

    def _arrive(self, drawn: DrawnMission) -> None:
        uid = uuid.uuid5(_NS, drawn.mission_id)
        record = MissionRecord(
            mission_id=drawn.mission_id,
            priority=drawn.priority,
            vehicle_kind=drawn.vehicle_kind,
            created_s=drawn.created_s,
            window_start_s=drawn.window_start_s,
            window_end_s=drawn.window_end_s,
            empty_distance_m=0.0,
            loaded_distance_m=0.0,
        )
        self.record.missions.append(record)
        mission = _Mission(
            drawn, uid, record, self.site.index(drawn.pickup), self.site.index(drawn.dropoff)
        )
        self.missions[uid] = mission
        self.open[uid] = mission
        self._new = True
        self._mark(urgent=True)

    # Planning --------------------------------------------------------------------------

    def _plan_now(self) -> None:
        """The daemon's ``plan_now``: plan, commit the first legs, send idle robots to charge."""
        self._tick_gen += 1
        self._push(self.now + self.rules.tick_s, _Ev.TICK, self._tick_gen)
        quick, self._new = self._new, False
        vehicles = [self._input(v) for v in self.vehicles if self._plannable(v)]
        missions = [self._mission_input(m) for m in self.open.values() if self._in_reach(m)]
        idle = any(v.leg is None for v in self.vehicles if self._plannable(v))
        if missions and vehicles and not idle:
            # Every plannable vehicle holds a released leg: the plan could release nothing.
            # The daemon still solves it (its only effect: the next plan's warm start);
            # skipped here, it is counted.
            key = "skipped_quick_plans" if quick else "skipped_full_plans"
            self.record.notes[key] = int(self.record.notes.get(key, 0)) + 1
            if quick:
                self._mark()
        elif missions and vehicles:
            problem = build_problem(vehicles, missions, self.rules.speeds)
            strategy = "greedy" if quick else self.opts.strategy
            options = self._quick if quick else self.opts.planner
            previous = None if quick else self._previous
            started = time.perf_counter()
            plan = solve(problem, strategy, options, previous)
            took = time.perf_counter() - started
            self.record.replans.append(
                ReplanRecord(self.now, took, len(missions), len(vehicles), quick=quick)
            )
            if not quick:
                self._previous = plan
            self._commit(missions_by_vehicle(plan), self._not_due(plan))
            if quick:
                self._mark()  # the full plan improves the quick one
        self._charge_idle_robots()

    def _plannable(self, v: _Vehicle) -> bool:
        if v.leg is not None and v.leg.mission is None:
            return False  # on its way to charge, or charging
        return dispatchable(
            v.battery_now(self.now, self.opts.battery), v.charging, self.rules.charge
        )

    def _point(self, spot: int) -> Point:
        s = self.site.spots[spot]
        return Point(s.lat, s.lon)

    def _input(self, v: _Vehicle) -> VehicleInput:
        at = self._position(v)
        via = None
        if v.leg is not None:
            # As the engine does: the released leg's stops, all of them.
            via = tuple(self._point(s) for s in v.leg.via)
        return VehicleInput(id=v.uid, kind=v.kind, at=at, busy_via=via)

    def _position(self, v: _Vehicle) -> Point:
        if v.move is None:
            return self._point(v.spot)
        a, b, t0, t1 = v.move
        f = 1.0 if t1 <= t0 else min(1.0, max(0.0, (self.now - t0) / (t1 - t0)))
        pa, pb = self.site.spots[a], self.site.spots[b]
        return Point(pa.lat + f * (pb.lat - pa.lat), pa.lon + f * (pb.lon - pa.lon))

    def _in_reach(self, m: _Mission) -> bool:
        """Planned now: no window, or one opening within ``plan_ahead_s``."""
        start = m.drawn.window_start_s
        return start is None or start - self.now <= self.rules.plan_ahead_s

    def _not_due(self, plan: Plan) -> frozenset[uuid.UUID]:
        opens = {
            uid: m.drawn.window_start_s - self.now
            for uid, m in self.open.items()
            if m.drawn.window_start_s is not None
        }
        return not_yet_due(plan, opens, self.rules.release_margin_s)

    def _mission_input(self, m: _Mission) -> MissionInput:
        kind = m.drawn.vehicle_kind
        start, end = m.drawn.window_start_s, m.drawn.window_end_s
        return MissionInput(
            id=m.uid,
            pickup=self._point(m.pickup),
            dropoff=self._point(m.dropoff),
            priority=_PRIORITY[m.drawn.priority],
            required_kind=None if kind == "any" else VehicleKind(kind),
            service_s=self.rules.service_s,
            window_s=(None if start is None or end is None else (start - self.now, end - self.now)),
        )

    def _commit(
        self, plan: dict[uuid.UUID, tuple[uuid.UUID, ...]], not_due: frozenset[uuid.UUID]
    ) -> None:
        by_uid = {v.uid: v for v in self.vehicles}
        for vid, planned in plan.items():
            v = by_uid[vid]
            if v.leg is not None or not planned or planned[0] in not_due:
                continue
            mission = self.open.get(planned[0])
            if mission is None:
                continue
            self._release(v, mission)

    def _release(self, v: _Vehicle, m: _Mission) -> None:
        del self.open[m.uid]
        m.record.assigned_s = self.now
        m.record.vehicle_id = v.name
        if v.charging:
            v.charging = False  # driving off unplugs it
        v.leg = _Leg(m.uid.hex, [m.pickup, m.dropoff], (m.pickup, m.dropoff))
        v.busy_since = self.now
        self._drive(v)

    # Vehicles --------------------------------------------------------------------------

    def _travel(self, v: _Vehicle, a: int, b: int) -> tuple[float, float]:
        if v.kind is VehicleKind.ROBOT:
            return float(self.site.robot_s[a, b]), float(self.site.robot_m[a, b])
        return float(self.site.driver_s[a, b]), float(self.site.driver_m[a, b])

    def _drive(self, v: _Vehicle) -> None:
        """Set off to the leg's next stop; a STOP event when there."""
        assert v.leg is not None and v.leg.stops
        target = v.leg.stops[0]
        secs, metres = self._travel(v, v.spot, target)
        if not np.isfinite(secs):
            secs, metres = 0.0, 0.0  # unreachable (a facility error): jump, counted below
            self.record.daemon_errors["unreachable_stop"] = (
                self.record.daemon_errors.get("unreachable_stop", 0) + 1
            )
        v.settle(self.now, self.opts.battery)
        if v.battery is not None:
            v.battery = max(0.0, v.battery - self.opts.battery.move_pct_m * metres)
        mission = self._leg_mission(v)
        if mission is not None:
            rec = mission.record
            if rec.picked_up_s is None:
                rec.empty_distance_m = (rec.empty_distance_m or 0.0) + metres
            else:
                rec.loaded_distance_m = (rec.loaded_distance_m or 0.0) + metres
        v.move = (v.spot, target, self.now, self.now + secs)
        self._push(self.now + secs, _Ev.STOP, v)

    def _leg_mission(self, v: _Vehicle) -> _Mission | None:
        if v.leg is None or v.leg.mission is None:
            return None
        return self.missions.get(uuid.UUID(hex=v.leg.mission))

    def _reached(self, v: _Vehicle) -> None:
        """At the next stop (or done with its service there)."""
        assert v.leg is not None
        if v.move is not None:
            v.spot = v.move[1]
            v.move = None
            mission = self._leg_mission(v)
            if mission is None:  # at the charger
                v.settle(self.now, self.opts.battery)
                v.charging = True
                self._charged_at(v)
                return
            rec = mission.record
            if rec.picked_up_s is None:
                # The rider is ready from the window's start (an early vehicle waits).
                begin = max(self.now, rec.window_start_s or 0.0)
                rec.picked_up_s = begin
                self._push(begin + self.rules.service_s, _Ev.STOP, v)
            else:
                self._push(self.now + self.rules.service_s, _Ev.STOP, v)
            return
        # Service done.
        v.leg.stops.pop(0)
        if v.leg.stops:
            self._drive(v)
            return
        mission = self._leg_mission(v)
        assert mission is not None
        mission.record.completed_s = self.now
        mission.record.final_status = "completed"
        self._free(v)
        self._mark()

    def _free(self, v: _Vehicle) -> None:
        if v.busy_since is not None:
            v.busy_s += self.now - v.busy_since
            v.busy_since = None
        v.leg = None

    def _charged_at(self, v: _Vehicle) -> None:
        """Schedule the moment the charging robot reaches the resume threshold."""
        assert v.battery is not None
        rate = self.opts.battery.charge_pct_s - self.opts.battery.idle_pct_s
        need = max(0.0, self.rules.charge.resume_above_pct - v.battery)
        self._push(self.now + need / max(rate, 1e-9), _Ev.CHARGED)

    def _charge_idle_robots(self) -> None:
        self._end_charging()
        robots = [v for v in self.vehicles if v.kind is VehicleKind.ROBOT]
        horizon_free = {v.uid for v in robots if v.leg is None}
        needs = [
            RobotNeed(
                vehicle_id=v.uid,
                facility_id=self.site.stations[0].facility_id if self.site.stations else _NS,
                lat=self._position(v).lat,
                lon=self._position(v).lon,
                battery_pct=_pct(v.battery_now(self.now, self.opts.battery)),
                busy=v.uid not in horizon_free,
                charging=v.charging,
            )
            for v in robots
        ]
        taken = {
            self.site.spots[v.leg.via[0]].name
            for v in robots
            if v.leg is not None and v.leg.mission is None
        }
        by_uid = {v.uid: v for v in robots}
        for vid, station in choose_stations(
            needs, self.site.stations, taken, self.rules.charge
        ).items():
            v = by_uid[vid]
            target = self.site.index(station.name)
            v.leg = _Leg(None, [target], (target,))
            self.record.notes["charge_trips"] = int(self.record.notes.get("charge_trips", 0)) + 1
            self._drive(v)

    def _end_charging(self) -> None:
        for v in self.vehicles:
            if v.leg is None or v.leg.mission is not None or not v.charging:
                continue
            if (v.battery_now(self.now, self.opts.battery) or 0.0) >= (
                self.rules.charge.resume_above_pct - 1e-6
            ):
                v.settle(self.now, self.opts.battery)
                v.charging = False
                v.leg = None
                self._mark()

    # Recording -------------------------------------------------------------------------

    def _sample(self) -> None:
        for v in self.vehicles:
            at = self._position(v)
            spot = self.site.spots[v.spot]
            if v.kind is VehicleKind.ROBOT:
                x, y = self._xy(v, spot.x, spot.y)
            else:
                x, y = at.lon, at.lat
            self.record.samples.append(
                VehicleSample(
                    t_s=self.now,
                    vehicle_id=v.name,
                    kind=v.kind.value,
                    busy=v.leg is not None and v.leg.mission is not None,
                    online=True,
                    battery_pct=(
                        None
                        if v.battery is None
                        else round(v.battery_now(self.now, self.opts.battery) or 0.0, 2)
                    ),
                    x=round(x, 2),
                    y=round(y, 2),
                )
            )

    def _xy(self, v: _Vehicle, x: float, y: float) -> tuple[float, float]:
        if v.move is None:
            return x, y
        a, b, t0, t1 = v.move
        f = 1.0 if t1 <= t0 else min(1.0, max(0.0, (self.now - t0) / (t1 - t0)))
        pa, pb = self.site.spots[a], self.site.spots[b]
        return pa.x + f * (pb.x - pa.x), pa.y + f * (pb.y - pa.y)

    def _close(self) -> None:
        for v in self.vehicles:
            if v.busy_since is not None:
                v.busy_s += self.now - v.busy_since
                v.busy_since = None
        total = self.now * max(len(self.vehicles), 1)
        self.record.notes["utilisation_from_engine"] = round(
            sum(v.busy_s for v in self.vehicles) / total if total else 0.0, 4
        )
        self.record.notes["open_at_end"] = len(self.open)
        self.record.notes["robots"] = self.scenario.fleet.robots
        self.record.notes["drivers"] = self.scenario.fleet.drivers
        self.record.notes["planner_solution_limit"] = self.opts.planner.solution_limit or 0


def _pct(battery: float | None) -> float:
    """A battery reading for the charging policy (no battery: full; 0 % is 0 %)."""
    return 100.0 if battery is None else battery


def evaluate(scenario: Scenario, site: Site, options: EvaluateOptions) -> RunRecord:
    """Run ``scenario`` offline with ``options.strategy`` (see the module docstring)."""
    return Evaluation(scenario, site, options).run()


def with_strategy(options: EvaluateOptions, strategy: str) -> EvaluateOptions:
    return replace(options, strategy=strategy)

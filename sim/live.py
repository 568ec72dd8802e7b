"""``fleetd sim run SCENARIO``: a live simulation against a running fleetd.

The run draws its workload (:mod:`sim.workload_draw`, the generator the offline
evaluation uses too) and fault schedule (:mod:`sim.schedule`) from the scenario's seed,
starts vehicle host processes (:mod:`sim.host`), creates the missions through the control
API at their simulated times, reads fleetd's event stream
and metrics (:mod:`sim.observe`), shows its progress on stderr, and at the end (the
scenario's duration, Ctrl-C or SIGTERM) stops the vehicles in order, fills a
:class:`~sim.run_record.RunRecord` and writes it to the report folder.

Clock: simulated t = 0 (``t0``) is the wall moment every host has connected its vehicles
(connecting thousands takes a while; the record's notes say how long); simulated seconds
are wall seconds since then times the scenario's ``time_scale``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import multiprocessing
import multiprocessing.context
import os
import queue
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import structlog

from dispatcher.config import FacilitySettings, Settings
from dispatcher.facility_layouts import FacilityLayouts
from sim.driver import DriverSpec
from sim.evaluate.site import facility_stations, mission_places
from sim.host import HostPlan, host_main, split
from sim.observe import (
    Injected,
    SeenEvent,
    apply_mission_event,
    metric_sums,
    observations,
    parse_event,
    sse_events,
)
from sim.odometry import Mark, Step, mission_distances
from sim.robot import RobotSpec
from sim.run_record import FaultRecord, MissionRecord, RunRecord, VehicleSample
from sim.scenario import Scenario
from sim.schedule import PlannedFault, fleet_names, scenario_faults
from sim.workload import summarise
from sim.workload_draw import DrawnMission, draw_workload

log = structlog.get_logger(__name__)

#: Vehicles per host process when the scenario says ``processes = 0``.
VEHICLES_PER_PROCESS = 500
#: Seconds between progress lines (and metric scrapes).
PROGRESS_S = 2.0


@dataclass(frozen=True)
class LiveOptions:
    """What the command line adds to a scenario."""

    report_dir: Path
    token: str | None
    api_url: str
    #: The daemon's pid, to record its CPU and memory (None: not recorded).
    daemon_pid: int | None = None
    progress: bool = True
    #: End the run as soon as every mission of the workload is created and finished.
    stop_when_done: bool = False


@dataclass
class LiveState:
    """What the parent learns while the run goes (filled by its tasks)."""

    t0: float
    time_scale: float
    end_wall: float = 0.0
    ready: dict[int, float] = field(default_factory=dict)
    #: Set once every host has connected its vehicles (or failed).
    hosts_ready: asyncio.Event = field(default_factory=asyncio.Event)
    missions: dict[str, MissionRecord] = field(default_factory=dict)
    created_wall: list[float] = field(default_factory=list)
    refused: int = 0
    events: list[SeenEvent] = field(default_factory=list)
    scrapes: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    host_stats: dict[int, dict[str, Any]] = field(default_factory=dict)
    host_final: dict[int, dict[str, Any]] = field(default_factory=dict)
    host_errors: list[str] = field(default_factory=list)
    injected: list[Injected] = field(default_factory=list)
    samples: list[VehicleSample] = field(default_factory=list)
    #: Each vehicle's odometer marks (sim.odometry), by its name in the run.
    odometry: dict[str, list[Mark]] = field(default_factory=dict)
    daemon_cpu: list[tuple[float, float]] = field(default_factory=list)  # (wall, cpu s)
    daemon_rss_mb: list[float] = field(default_factory=list)
    #: When the run began to stop, and the missions held for an operator then.
    stopped_at: float | None = None
    #: Set at the stop: the workload creates no more missions (:func:`_stop_workload`).
    no_more_missions: asyncio.Event = field(default_factory=asyncio.Event)
    connect_s: float = 0.0
    held: dict[str, str] = field(default_factory=dict)

    def sim_s(self, wall: float) -> float:
        return max(0.0, (wall - self.t0) * self.time_scale)


# --- the fleet ------------------------------------------------------------------------------


def fleet_specs(
    scenario: Scenario,
    start_nodes: Sequence[tuple[str, float, float]],
    driver_places: Sequence[tuple[float, float]],
    map_id: str,
) -> tuple[list[RobotSpec], list[DriverSpec]]:
    """Every vehicle of the scenario, placed and charged from the scenario's seed."""
    rng = random.Random(f"{scenario.seed}:fleet")
    robot_names, driver_names = fleet_names(scenario)
    low, high = scenario.fleet.battery_start
    cols = max(1, math.ceil(math.sqrt(max(1, len(robot_names)))))
    robots = []
    for i, serial in enumerate(robot_names):
        if start_nodes:
            node, x, y = start_nodes[i % len(start_nodes)]
        else:
            node, x, y = "", 20.0 + 15.0 * (i % cols), 20.0 + 15.0 * (i // cols)
        robots.append(
            RobotSpec(
                manufacturer=scenario.fleet.manufacturer,
                serial=serial,
                map_id=map_id,
                x=x,
                y=y,
                last_node_id=node,
                theta=rng.uniform(-math.pi, math.pi),
                battery_pct=rng.uniform(low, high),
            )
        )
    places = list(driver_places) or [(52.52, 13.405), (52.522, 13.407)]
    drivers = []
    for i, name in enumerate(driver_names):
        loop = places[:]
        rng.shuffle(loop)
        drivers.append(DriverSpec(driver_id=name, waypoints=loop, seed=scenario.seed + i))
    return robots, drivers


def host_plans(
    scenario: Scenario,
    settings: Settings,
    robots: Sequence[RobotSpec],
    drivers: Sequence[DriverSpec],
    faults: Sequence[PlannedFault],
) -> list[HostPlan]:
    """The vehicles split over the scenario's processes; each fault goes with its vehicle."""
    total = len(robots) + len(drivers)
    processes = scenario.fleet.processes or max(1, math.ceil(total / VEHICLES_PER_PROCESS))
    processes = max(1, min(processes, total or 1))
    robot_parts = split(len(robots), processes)
    driver_parts = split(len(drivers), processes)
    plans = []
    for i in range(processes):
        mine_r = tuple(robots[j] for j in (robot_parts[i] if i < len(robot_parts) else ()))
        mine_d = tuple(drivers[j] for j in (driver_parts[i] if i < len(driver_parts) else ()))
        if not mine_r and not mine_d:
            continue
        names = {r.serial for r in mine_r} | {d.driver_id for d in mine_d}
        plans.append(
            HostPlan(
                index=i,
                host=settings.mqtt.host,
                port=settings.mqtt.port,
                username=settings.mqtt.username,
                password=(
                    settings.mqtt.password.get_secret_value()
                    if settings.mqtt.password is not None
                    else None
                ),
                vda_prefix=settings.mqtt.vda_prefix,
                driver_prefix=settings.mqtt.driver_prefix,
                robots=mine_r,
                drivers=mine_d,
                state_interval_s=scenario.fleet.state_interval_s,
                driver_status_interval_s=max(2.0, scenario.fleet.state_interval_s),
                time_scale=scenario.time_scale,
                faults=tuple(f for f in faults if f.vehicle in names),
                # Thousands of vehicles: fewer, coarser samples keep the record readable.
                sample_interval_s=max(5.0, total / 100.0),
                # A small fleet can afford a finer tick (states closer to their schedule).
                tick_s=0.02 if total <= 200 else 0.05,
                seed=scenario.seed,
            )
        )
    return plans


# --- the workload ---------------------------------------------------------------------------


def live_places(
    settings: Settings, facility: FacilitySettings, loaded: FacilityLayouts | None
) -> tuple[str, ...]:
    """Where a live run's missions go: with the facility's layouts loaded, the places the
    offline evaluation uses (:func:`sim.evaluate.site.mission_places`: less the charging
    stations), so a seed gives the same missions in both modes; else every place."""
    if loaded is None:
        return tuple(p.name for p in facility.places)
    return mission_places(facility, facility_stations(settings, facility.key, loaded))


def mission_body(m: DrawnMission, t0: float, scale: float, facility: str) -> dict[str, Any]:
    """``POST /v1/missions`` for a planned mission (window times on the wall clock)."""
    body: dict[str, Any] = {
        "facility": facility,
        "pickup": {"place": m.pickup},
        "dropoff": {"place": m.dropoff},
        "priority": m.priority,
        "requirements": {"vehicle_kind": m.vehicle_kind},
        "notes": f"simulated workload {m.mission_id}",
    }
    if m.window_start_s is not None and m.window_end_s is not None:
        body["window"] = {
            "start": _iso(t0 + m.window_start_s / scale),
            "end": _iso(t0 + m.window_end_s / scale),
        }
    return body


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


async def _create_missions(
    client: httpx.AsyncClient,
    planned: Sequence[DrawnMission],
    state: LiveState,
    facility: str,
) -> None:
    """Create the planned missions at their times, each one fleetd accepts into
    ``state.missions``, until ``state.no_more_missions`` is set (the stop): a request
    already sent then is still answered and recorded (:func:`_stop_workload`)."""
    for m in planned:
        delay = state.t0 + m.created_s / state.time_scale - time.time()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.no_more_missions.wait(), delay)
        if state.no_more_missions.is_set():
            return
        body = mission_body(m, state.t0, state.time_scale, facility)
        try:
            response = await client.post("/v1/missions", json=body)
        except httpx.HTTPError as exc:
            state.refused += 1
            log.warning("sim.mission_request_failed", error=type(exc).__name__)
            continue
        if response.status_code != 201:
            state.refused += 1
            log.warning(
                "sim.mission_refused", status=response.status_code, body=response.text[:200]
            )
            continue
        mission_id = str(response.json()["id"])
        state.created_wall.append(time.time())
        state.missions[mission_id] = MissionRecord(
            mission_id=mission_id,
            priority=m.priority,
            vehicle_kind=m.vehicle_kind,
            created_s=state.sim_s(time.time()),
            window_start_s=m.window_start_s,
            window_end_s=m.window_end_s,
        )


#: Longest the stop waits for a mission request under way (the client's timeout is 10 s).
WORKLOAD_STOP_S = 15.0


async def _stop_workload(state: LiveState, workload: asyncio.Task[None] | None) -> None:
    """No more missions from the stop on; a request already under way is waited for,
    so the mission fleetd created for it is in the record. Cancelled mid-request (as the
    stop did), the workload lost it: created by fleetd, served by the fleet, missing from
    the run's record and its figures."""
    state.no_more_missions.set()
    if workload is None:
        return
    await asyncio.wait([workload], timeout=WORKLOAD_STOP_S)
    workload.cancel()  # done by now, or stuck past the client's own timeout


# --- what fleetd does -----------------------------------------------------------------------


async def _read_events(client: httpx.AsyncClient, state: LiveState) -> None:
    """Follow ``/v1/events`` (resuming after the last id on a broken stream)."""
    last_id: str | None = None
    early: dict[str, list[SeenEvent]] = {}
    while True:
        headers = {"Last-Event-ID": last_id} if last_id else {}
        try:
            async with client.stream(
                "GET",
                "/v1/events",
                params={"types": "mission,vehicle,alert"},
                headers=headers,
                timeout=httpx.Timeout(10.0, read=None),
            ) as response:
                if response.status_code != 200:
                    log.warning("sim.event_stream_refused", status=response.status_code)
                    await asyncio.sleep(2.0)
                    continue
                lines = response.aiter_lines()
                buffer: list[str] = []
                async for line in lines:
                    buffer.append(line)
                    if line.strip():
                        continue
                    for event_id, data in sse_events(buffer):
                        last_id = event_id or last_id
                        ev = parse_event(data)
                        if ev is not None:
                            _take_event(state, ev, early)
                    buffer = []
        except httpx.HTTPError as exc:
            log.warning("sim.event_stream_broken", error=type(exc).__name__)
            await asyncio.sleep(1.0)


def _take_event(state: LiveState, ev: SeenEvent, early: dict[str, list[SeenEvent]]) -> None:
    state.events.append(ev)
    if ev.type != "mission" or ev.mission_id is None:
        return
    record = state.missions.get(ev.mission_id)
    if record is None:
        # An event can beat the POST's answer to us: keep it until the mission is known.
        early.setdefault(ev.mission_id, []).append(ev)
        return
    for pending in early.pop(ev.mission_id, []):
        apply_mission_event(record, pending, state.sim_s(pending.at))
    apply_mission_event(record, ev, state.sim_s(ev.at))


def _read_proc(pid: int) -> tuple[float, float] | None:
    """(CPU seconds, resident MiB) of a process, from /proc; None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = next(
        (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0
    )
    return cpu, rss / 1024.0


async def _watch(
    client: httpx.AsyncClient, state: LiveState, options: LiveOptions, vehicles: int
) -> None:
    """Scrape /metrics, sample the daemon's CPU and memory, print the progress line."""
    tty = sys.stderr.isatty()
    last_line = 0.0
    while True:
        now = time.time()
        try:
            response = await client.get("/metrics")
            if response.status_code == 200:
                state.scrapes.append((now, metric_sums(response.text)))
        except httpx.HTTPError:
            pass
        if options.daemon_pid is not None:
            proc = _read_proc(options.daemon_pid)
            if proc is not None:
                state.daemon_cpu.append((now, proc[0]))
                state.daemon_rss_mb.append(proc[1])
        if options.progress and (tty or now - last_line >= 10.0):
            line = progress_line(state, vehicles, now)
            print(
                ("\r" + line + "\033[K") if tty else line,
                end="" if tty else "\n",
                file=sys.stderr,
                flush=True,
            )
            last_line = now
        await asyncio.sleep(PROGRESS_S)


def progress_line(state: LiveState, vehicles: int, now: float) -> str:
    """``[sim] 0:42 / 5:00  vehicles 25/25 (fleetd 25)  missions 14 open 3 ...``."""
    online = sum(s.get("online", 0) for s in state.host_stats.values())
    fleetd_online = state.scrapes[-1][1]["fleetd_vehicles_online"] if state.scrapes else 0
    if state.t0 <= 0:
        return f"[sim] connecting: {online}/{vehicles} online (fleetd sees {fleetd_online:.0f})"
    elapsed = now - state.t0
    total = f" / {_clock(state.end_wall - state.t0)}" if state.end_wall else ""
    done = sum(1 for m in state.missions.values() if m.final_status == "completed")
    failed = sum(1 for m in state.missions.values() if m.final_status in ("failed", "cancelled"))
    open_ = len(state.missions) - done - failed
    minutes = max(elapsed / 60.0, 1e-9)
    return (
        f"[sim] {_clock(elapsed)}{total} (sim {_clock(state.sim_s(now))})  "
        f"vehicles {online}/{vehicles} online (fleetd sees {fleetd_online:.0f})  "
        f"missions {len(state.missions)} created: {open_} open, {done} completed, "
        f"{failed} failed  {len(state.missions) / minutes:.1f} created/min  "
        f"faults {len(state.injected)}"
    )


def _clock(seconds: float) -> str:
    s = max(0, int(seconds))
    return (
        f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )


async def _collect(out: Any, state: LiveState, hosts: int) -> None:
    """Take what the hosts send until each has said it is done."""
    while len(state.host_final) + len(state.host_errors) < hosts:
        try:
            item = await asyncio.to_thread(out.get, True, 0.5)
        except queue.Empty:
            continue
        _take_host_item(state, item)
        if len(state.ready) + len(state.host_errors) >= hosts:
            state.hosts_ready.set()


def _take_host_item(state: LiveState, item: tuple[Any, ...]) -> None:
    kind = item[0]
    if kind == "ready":
        state.ready[item[1]] = item[2]
    elif kind == "stats":
        state.host_stats[item[1]] = item[2]
    elif kind == "done":
        state.host_final[item[1]] = item[2]
        state.host_stats[item[1]] = item[2]
    elif kind == "error":
        state.host_errors.append(f"host {item[1]}: {item[2]}")
    elif kind == "samples":
        state.samples.extend(VehicleSample(*row) for row in item[2])
    elif kind == "odometry":
        for name, marks in item[2].items():
            state.odometry.setdefault(name, []).extend((float(t), float(o)) for t, o in marks)
    elif kind == "fault":
        _, fault_kind, vehicle, t_sim, note = item
        wall = state.t0 + t_sim / state.time_scale
        state.injected.append(Injected(fault_kind, vehicle, wall, 0.0, note))


# --- the run --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Fleet:
    """What a run draws from its scenario before anything starts."""

    #: The facility's key (the missions' ``facility``).
    facility: str
    planned: Sequence[DrawnMission]
    faults: Sequence[PlannedFault]
    robots: Sequence[RobotSpec]
    drivers: Sequence[DriverSpec]
    plans: Sequence[HostPlan]

    @property
    def vehicles(self) -> int:
        return len(self.robots) + len(self.drivers)


@dataclass
class _Hosts:
    """The vehicle host processes and what the parent shares with them."""

    #: Where the hosts report (:func:`_collect`).
    out: Any
    #: Set at the stop: the hosts say goodbye and send their figures.
    stop: Any
    #: Simulated t = 0 on the wall clock, once every host is connected.
    shared_t0: Any
    procs: list[multiprocessing.context.SpawnProcess]
    #: When the processes were started (monotonic clock).
    started: float = 0.0

    @classmethod
    def spawn(cls, plans: Sequence[HostPlan]) -> _Hosts:
        """A process for each plan, not started yet."""
        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        stop = ctx.Event()
        shared_t0 = ctx.Value("d", 0.0)
        procs = [
            ctx.Process(
                target=host_main,
                args=(p, out, stop, shared_t0),
                name=f"sim-host-{p.index}",
                daemon=True,
            )
            for p in plans
        ]
        return cls(out, stop, shared_t0, procs)

    def start(self) -> None:
        self.started = time.monotonic()
        for p in self.procs:
            p.start()

    def join(self) -> None:
        """Wait for each host to end; one that does not is terminated."""
        for p in self.procs:
            p.join(10)
            if p.is_alive():
                p.terminate()
                p.join(5)


async def run_live(
    scenario: Scenario,
    settings: Settings,
    options: LiveOptions,
    start_nodes: Sequence[tuple[str, float, float]],
    stop_requested: asyncio.Event,
    places: Sequence[str] | None = None,
) -> RunRecord:
    """Run ``scenario`` against the daemon of ``settings`` until its end or until
    ``stop_requested`` is set (Ctrl-C, SIGTERM); then stop in order and fill the record.
    ``places``: where missions go (:func:`sim.evaluate.site.mission_places`, what the
    offline evaluation uses; None: every place of the facility)."""
    fleet = _draw_fleet(scenario, settings, start_nodes, places)
    state = LiveState(t0=0.0, time_scale=scenario.time_scale)
    hosts = _Hosts.spawn(fleet.plans)
    hosts.start()
    headers = {"Authorization": f"Bearer {options.token}"} if options.token else {}
    _announce(scenario, fleet)
    async with httpx.AsyncClient(base_url=options.api_url, headers=headers, timeout=10.0) as client:
        try:
            await _drive(client, scenario, fleet, state, hosts, options, stop_requested)
        finally:
            hosts.join()
            if options.progress:
                print(file=sys.stderr)
        async with asyncio.timeout(60.0):
            record = await _finish(client, scenario, state, options)
    return record


def _draw_fleet(
    scenario: Scenario,
    settings: Settings,
    start_nodes: Sequence[tuple[str, float, float]],
    places: Sequence[str] | None,
) -> _Fleet:
    """The run's workload, faults and vehicles from the scenario's seed, and the vehicles
    split over the host processes."""
    facility = settings.facility_for_key(scenario.facility)
    planned = draw_workload(
        scenario, places if places is not None else [p.name for p in facility.places]
    )
    faults = scenario_faults(scenario)
    map_id = facility.maps[0].map_id if facility.maps else "campus"
    robots, drivers = fleet_specs(
        scenario, start_nodes, [(p.lat, p.lon) for p in facility.places], map_id
    )
    plans = host_plans(scenario, settings, robots, drivers, faults)
    return _Fleet(facility.key, planned, faults, robots, drivers, plans)


def _announce(scenario: Scenario, fleet: _Fleet) -> None:
    """The run's first line on stderr: its fleet, processes, missions and faults."""
    print(
        f"[sim] scenario {scenario.name}: {len(fleet.robots)} robots, {len(fleet.drivers)} "
        f"drivers in {len(fleet.plans)} processes; {len(fleet.planned)} missions and "
        f"{len(fleet.faults)} faults planned over {scenario.duration_s:.0f} simulated s "
        f"({scenario.wall_duration_s:.0f} s wall)",
        file=sys.stderr,
        flush=True,
    )


async def _drive(
    client: httpx.AsyncClient,
    scenario: Scenario,
    fleet: _Fleet,
    state: LiveState,
    hosts: _Hosts,
    options: LiveOptions,
    stop_requested: asyncio.Event,
) -> None:
    """The run's tasks (the hosts' reports, metrics and progress, fleetd's events, the
    workload) from the hosts' start to the stop, which ends them all in order."""
    async with asyncio.TaskGroup() as tg:
        collector = tg.create_task(_collect(hosts.out, state, len(fleet.plans)), name="sim.collect")
        side = [
            tg.create_task(_watch(client, state, options, fleet.vehicles)),
            tg.create_task(_read_events(client, state), name="sim.events"),
        ]
        await _await_hosts(state, stop_requested, fleet.vehicles)
        _start_clock(state, hosts, scenario.wall_duration_s)
        if options.token is not None:
            side.append(
                tg.create_task(
                    _create_missions(client, fleet.planned, state, fleet.facility),
                    name="sim.workload",
                )
            )
        try:
            await _run_until_end(state, options, stop_requested, side)
        finally:
            await _stop_run(client, state, options, hosts, collector, side)


async def _await_hosts(state: LiveState, stop_requested: asyncio.Event, vehicles: int) -> None:
    """Until every vehicle is connected (or given up on) or the stop; simulated time starts
    then. At most a minute, or a tenth of a second a vehicle for a larger fleet."""
    waits = [
        asyncio.ensure_future(state.hosts_ready.wait()),
        asyncio.ensure_future(stop_requested.wait()),
    ]
    try:
        await asyncio.wait(
            waits,
            timeout=max(60.0, vehicles / 10.0),
            return_when=asyncio.FIRST_COMPLETED,
        )
    finally:
        for waiting in waits:
            waiting.cancel()


def _start_clock(state: LiveState, hosts: _Hosts, wall_duration_s: float) -> None:
    """Simulated t = 0 is now, for the parent and the hosts alike."""
    state.t0 = hosts.shared_t0.value = time.time()
    state.end_wall = state.t0 + wall_duration_s
    state.connect_s = time.monotonic() - hosts.started


async def _run_until_end(
    state: LiveState,
    options: LiveOptions,
    stop_requested: asyncio.Event,
    side: Sequence[asyncio.Task[None]],
) -> None:
    """Until the scenario's end, the stop, or (``stop_when_done``) every mission done."""
    end_wall = state.end_wall
    while not stop_requested.is_set() and time.time() < end_wall:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop_requested.wait(), min(1.0, end_wall - time.time()))
        if options.stop_when_done and _all_done(state, side):
            break


async def _stop_run(
    client: httpx.AsyncClient,
    state: LiveState,
    options: LiveOptions,
    hosts: _Hosts,
    collector: asyncio.Task[None],
    side: Sequence[asyncio.Task[None]],
) -> None:
    """The end, or Ctrl-C: what waits for an operator now (before the vehicles leave),
    then the hosts say goodbye and report their figures; then the run's tasks end."""
    state.stopped_at = time.time()
    # No more missions from the stop on (a stop mid-workload: Ctrl-C).
    workload = [t for t in side if t.get_name() == "sim.workload"]
    await _stop_workload(state, workload[0] if workload else None)
    if options.token is not None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(15.0):
                await _held(client, state)
    hosts.stop.set()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(30.0):
            await asyncio.shield(collector)
    # A few seconds for the last events (completions, went_offline) to arrive.
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(2.0)
    for task in (*side, collector):
        task.cancel()


async def _finish(
    client: httpx.AsyncClient, scenario: Scenario, state: LiveState, options: LiveOptions
) -> RunRecord:
    """The run's record, with the missions' final state read back through the API."""
    finals: list[dict[str, Any]] = []
    timelines: dict[str, list[SeenEvent]] = {}
    if options.token is not None:
        finals, timelines = await _read_back(client, state)
    uuids = await _vehicle_uuids(client) if options.token is not None else {}
    record = RunRecord(
        scenario=scenario.name,
        mode="live",
        strategy="daemon",
        seed=scenario.seed,
        duration_s=state.sim_s(state.stopped_at or time.time()),
        vehicles=scenario.fleet.robots + scenario.fleet.drivers,
        missions=list(state.missions.values()),
        samples=state.samples,
        layout=scenario.facility,
    )
    record.faults.extend(_fault_records(scenario, state, uuids))
    _fill_figures(record, state, scenario)
    _use_run_names(record, uuids)
    _fill_distances(record, state, timelines, uuids)
    summary = summarise(finals)
    record.notes["summary"] = summary.line()
    return record


async def _read_back(
    client: httpx.AsyncClient, state: LiveState
) -> tuple[list[dict[str, Any]], dict[str, list[SeenEvent]]]:
    """Each mission as fleetd has it at the end, and its timeline; what the event stream
    missed is filled into the mission's record from the timeline."""
    finals: list[dict[str, Any]] = []
    timelines: dict[str, list[SeenEvent]] = {}
    for mission_id, rec in state.missions.items():
        body = await _read_mission(client, mission_id)
        if body is None:
            continue
        finals.append(body)
        timelines[mission_id] = _take_timeline(state, rec, mission_id, body)
        if body.get("vehicle_id") and rec.vehicle_id is None:
            rec.vehicle_id = str(body["vehicle_id"])
    return finals, timelines


async def _read_mission(client: httpx.AsyncClient, mission_id: str) -> dict[str, Any] | None:
    """``GET /v1/missions/{id}``; None when it cannot be read."""
    try:
        response = await client.get(f"/v1/missions/{mission_id}")
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    body: dict[str, Any] = response.json()
    return body


def _take_timeline(
    state: LiveState, rec: MissionRecord, mission_id: str, body: dict[str, Any]
) -> list[SeenEvent]:
    """The events of a mission's timeline, each applied to its record as well."""
    timeline: list[SeenEvent] = []
    for entry in body.get("timeline", []):
        ev = parse_event(json.dumps({**entry, "type": "mission", "mission_id": mission_id}))
        if ev is not None:
            timeline.append(ev)
        # The stream may have missed some (a broken stream): the timeline has them
        # all; a reassignment is counted from the stream only, never twice.
        if ev is not None and entry["event"] != "reassigned":
            if entry["event"] == "assigned" and rec.assigned_s is not None:
                continue
            apply_mission_event(rec, ev, state.sim_s(ev.at))
    return timeline


def _fault_records(
    scenario: Scenario, state: LiveState, uuids: dict[str, str]
) -> list[FaultRecord]:
    """Each injected fault with what fleetd was seen to do about it."""
    by_key = {key: uuid for uuid, key in uuids.items()}
    robots = set(fleet_names(scenario)[0])
    records = []
    for injected in state.injected:
        wall_s = _fault_wall_s(injected, scenario)
        fault = dataclasses.replace(injected, wall_duration_s=wall_s)
        key = injected.vehicle
        if key in robots:
            key = f"{scenario.fleet.manufacturer}/{key}"
        uuid = by_key.get(key)
        seen = observations(fault, uuid, state.events, state.scrapes, state.held, state.stopped_at)
        records.append(
            FaultRecord(
                kind=injected.kind,
                t_s=state.sim_s(injected.at),
                vehicle_id=injected.vehicle,
                observed=seen,
                injected=injected.note,
            )
        )
    return records


def _use_run_names(record: RunRecord, uuids: dict[str, str]) -> None:
    """The missions' vehicles by the run's own names: a robot's serial, a driver's id."""
    for mission in record.missions:
        if mission.vehicle_id in uuids:
            mission.vehicle_id = uuids[mission.vehicle_id].rpartition("/")[2]


def _fill_distances(
    record: RunRecord,
    state: LiveState,
    timelines: dict[str, list[SeenEvent]],
    uuids: dict[str, str],
) -> None:
    """Empty and loaded metres of each mission, from the vehicles' odometers
    (:mod:`sim.odometry`) and fleetd's timeline of the mission (the event stream's copy
    for a mission whose timeline could not be read back)."""
    if not state.odometry:
        return

    def name(vehicle_uuid: str | None) -> str | None:
        key = uuids.get(vehicle_uuid or "")
        return key.rpartition("/")[2] if key else None

    streamed: dict[str, list[SeenEvent]] = {}
    for ev in state.events:
        if ev.type == "mission" and ev.mission_id is not None:
            streamed.setdefault(ev.mission_id, []).append(ev)
    steps = {
        mission_id: [
            Step(state.sim_s(ev.at), ev.event, name(ev.vehicle_id))
            for ev in sorted(
                timelines.get(mission_id) or streamed.get(mission_id, []), key=lambda e: e.at
            )
        ]
        for mission_id in state.missions
    }
    completions = {
        m.mission_id: (m.vehicle_id, m.picked_up_s, m.completed_s)
        for m in record.missions
        if m.final_status == "completed"
        and m.vehicle_id is not None
        and m.picked_up_s is not None
        and m.completed_s is not None
    }
    distances = mission_distances(steps, completions, state.odometry)
    measured = 0
    for m in record.missions:
        d = distances.get(m.mission_id)
        if d is not None and d.measured:
            m.empty_distance_m = round(d.empty_m, 1)
            m.loaded_distance_m = None if d.loaded_m is None else round(d.loaded_m, 1)
            measured += 1
    record.notes["distances_measured_missions"] = measured


def _all_done(state: LiveState, side: Sequence[asyncio.Task[None]]) -> bool:
    """Every planned mission created and each in a final state."""
    workload = [t for t in side if t.get_name() == "sim.workload"]
    return (
        bool(workload)
        and workload[0].done()
        and bool(state.missions)
        and all(m.final_status is not None for m in state.missions.values())
    )


def _fault_wall_s(injected: Injected, scenario: Scenario) -> float:
    from sim.schedule import FAULT_DURATION_S

    return FAULT_DURATION_S.get(injected.kind, 0.0) / scenario.time_scale


async def _held(client: httpx.AsyncClient, state: LiveState) -> None:
    """Into ``state.held``: vehicle uuid -> why a mission it had is held for an operator."""
    held = state.held
    # A copy: a workload stuck past its stop may still add the mission it was creating.
    for mission_id, rec in list(state.missions.items()):
        if rec.final_status is not None or rec.vehicle_id is None:
            continue
        try:
            response = await client.get(f"/v1/missions/{mission_id}/resolve")
        except httpx.HTTPError:
            continue
        if response.status_code == 200 and response.json().get("held"):
            held[rec.vehicle_id] = str(response.json().get("held_reason"))


async def _vehicle_uuids(client: httpx.AsyncClient) -> dict[str, str]:
    """Every vehicle fleetd knows: uuid -> ``manufacturer/serial`` (a robot: two runs with
    other manufacturers may both have an ``r0001``) or the driver id."""
    out: dict[str, str] = {}
    cursor: str | None = None
    for _ in range(1000):
        params: dict[str, Any] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        try:
            response = await client.get("/v1/vehicles", params=params)
        except httpx.HTTPError:
            break
        if response.status_code != 200:
            break
        page = response.json()
        for v in page.get("items", []):
            maker = v.get("manufacturer")
            out[str(v["id"])] = f"{maker}/{v['serial']}" if maker else str(v["serial"])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return out


def _percentile(hist: dict[int, int], q: float) -> float | None:
    total = sum(hist.values())
    if total == 0:
        return None
    rank = q * (total - 1)
    seen = 0
    for value in sorted(hist):
        seen += hist[value]
        if seen > rank:
            return float(value)
    return float(max(hist))


def merge_hists(hists: Sequence[dict[Any, int]]) -> dict[int, int]:
    merged: dict[int, int] = {}
    for h in hists:
        for k, n in h.items():
            merged[int(k)] = merged.get(int(k), 0) + n
    return merged


def _fill_figures(record: RunRecord, state: LiveState, scenario: Scenario) -> None:
    """Messages, state intervals and jitter, the daemon's CPU and memory, into notes."""
    finals = list(state.host_final.values()) or list(state.host_stats.values())
    record.messages_sent = sum(int(s.get("sent", 0)) for s in finals)
    record.messages_received = sum(int(s.get("received", 0)) for s in finals)
    notes = record.notes
    notes["vehicle_processes"] = len(state.host_stats)
    notes["connect_all_s"] = round(state.connect_s, 1)
    notes["vehicles_online_at_end"] = sum(
        int(s.get("online", 0)) for s in state.host_stats.values()
    )
    notes["state_interval_nominal_ms"] = round(scenario.fleet.state_interval_s * 1000.0)
    notes["status_interval_nominal_ms"] = round(max(2.0, scenario.fleet.state_interval_s) * 1000)
    for kind, label in (("robot", "state"), ("driver", "status")):
        hist = merge_hists([s.get(f"hist_{kind}", {}) for s in finals])
        count = sum(hist.values())
        if not count:
            continue
        mean = sum(k * n for k, n in hist.items()) / count
        var = sum(n * (k - mean) ** 2 for k, n in hist.items()) / count
        notes[f"{label}_reports_periodic"] = count
        notes[f"{label}_interval_mean_ms"] = round(mean, 1)
        notes[f"{label}_interval_jitter_sd_ms"] = round(math.sqrt(var), 1)
        for q in (0.5, 0.99, 0.999):
            notes[f"{label}_interval_p{q * 100:g}_ms"] = _percentile(hist, q) or 0.0
        notes[f"{label}_interval_max_ms"] = float(max(hist))
    late = merge_hists([s.get("late_hist", {}) for s in finals])
    if late:
        notes["report_lateness_p50_ms"] = _percentile(late, 0.5) or 0.0
        notes["report_lateness_p99_ms"] = _percentile(late, 0.99) or 0.0
    if len(state.daemon_cpu) >= 2:
        (t_a, c_a), (t_b, c_b) = state.daemon_cpu[0], state.daemon_cpu[-1]
        notes["daemon_cpu_pct_mean"] = round(100.0 * (c_b - c_a) / max(t_b - t_a, 1e-9), 1)
        peaks = [
            100.0 * (c2 - c1) / max(t2 - t1, 1e-9)
            for (t1, c1), (t2, c2) in zip(state.daemon_cpu, state.daemon_cpu[1:], strict=False)
        ]
        notes["daemon_cpu_pct_max_2s"] = round(max(peaks), 1)
    cpu = [s for s in finals if "cpu_s" in s]
    if cpu and state.t0 > 0:
        # Whole host lifetimes (connecting included) over the run's wall time.
        wall = max(float(s["wall"]) for s in cpu) - state.t0 + state.connect_s
        notes["sim_hosts_cpu_pct_mean"] = round(
            100.0 * sum(float(s["cpu_s"]) for s in cpu) / max(wall, 1e-9), 1
        )
    if state.daemon_rss_mb:
        notes["daemon_rss_mb_max"] = round(max(state.daemon_rss_mb), 1)
        notes["daemon_rss_mb_end"] = round(state.daemon_rss_mb[-1], 1)
    # Up to the stop: the vehicles leaving at the end is not the daemon's doing.
    scrapes = [s for t, s in state.scrapes if state.stopped_at is None or t <= state.stopped_at]
    if len(scrapes) >= 2:
        first, last = scrapes[0], scrapes[-1]
        rejected = last["fleetd_messages_rejected_total"] - first["fleetd_messages_rejected_total"]
        received = last["fleetd_messages_received_total"] - first["fleetd_messages_received_total"]
        alerts = last["fleetd_dispatch_alerts_total"] - first["fleetd_dispatch_alerts_total"]
        record.daemon_errors["messages_rejected"] = int(rejected)
        record.daemon_errors["missions_held_for_operator"] = int(alerts)
        notes["daemon_messages_received"] = int(received)
        notes["fleetd_vehicles_online_max"] = int(max(s["fleetd_vehicles_online"] for s in scrapes))
    record.daemon_errors["missions_refused_by_api"] = state.refused
    for error in state.host_errors:
        notes.setdefault("host_errors", error)


# --- the record -----------------------------------------------------------------------------


def write_record(record: RunRecord, folder: Path) -> Path:
    """``record.json`` (the RunRecord as dataclasses.asdict gives it) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "record.json"
    path.write_text(json.dumps(dataclasses.asdict(record), indent=1) + "\n", encoding="utf-8")
    return path

"""What a scenario will do, drawn up front: the missions to create and the faults to inject.

Both are pure functions of the scenario (its seed, rates and profile) and of what the
facility offers (place names, vehicle names): no clock, no I/O. A live run replays the
lists on the wall clock; a test checks that the same seed gives the same lists.

Each list is drawn from its own generator, seeded from the scenario's seed and a name
(``"<seed>:workload"``, ``"<seed>:fault:<kind>"``), so changing one fault's rate leaves
the workload and the other faults as they were.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sim.scenario import FaultRates, Scenario, WorkloadSpec

#: Which vehicles each fault kind can hit: robots, drivers, or both.
FAULT_TARGETS: dict[str, tuple[str, ...]] = {
    "vanish": ("robot", "driver"),
    "reconnect": ("robot", "driver"),
    "fatal_error": ("robot",),
    "stuck": ("robot",),
    "battery_fault": ("robot",),
    "silent_driver": ("driver",),
    "noisy_gps": ("driver",),
    "malformed_burst": ("robot", "driver"),
}

#: How long (simulated seconds) a fault lasts before the vehicle is itself again; 0 for
#: faults that are over at once (a burst, a battery drop, a reconnect's short gap aside).
FAULT_DURATION_S: dict[str, float] = {
    "vanish": 120.0,
    "reconnect": 10.0,
    "fatal_error": 120.0,
    "stuck": 180.0,
    "battery_fault": 0.0,
    "silent_driver": 180.0,
    "noisy_gps": 120.0,
    "malformed_burst": 0.0,
}


@dataclass(frozen=True, slots=True)
class PlannedMission:
    """One mission to create at ``at_s`` simulated seconds into the run."""

    at_s: float
    pickup: str
    dropoff: str
    priority: str
    vehicle_kind: str  # robot, driver or any
    #: Pickup window, simulated seconds since the run's start (None: as soon as possible).
    window_start_s: float | None = None
    window_end_s: float | None = None


@dataclass(frozen=True, slots=True)
class PlannedFault:
    """One fault to inject at ``at_s`` simulated seconds into the run."""

    at_s: float
    kind: str  # a key of FaultRates
    vehicle: str  # the vehicle's name in the run (robot serial or driver id)
    duration_s: float


def _weighted(rng: random.Random, mix: Mapping[str, float]) -> str:
    names = sorted(mix)  # a dict's order is the file's: sort so the draw is the seed's alone
    return rng.choices(names, [mix[n] for n in names])[0]


def arrival_times(spec: WorkloadSpec, duration_s: float, rng: random.Random) -> list[float]:
    """Poisson arrivals on the daily profile over ``duration_s`` simulated seconds
    (thinning: candidates at the profile's peak rate, each kept with rate / peak)."""
    peak_mult = max((m for _, m in spec.profile), default=1.0)
    peak = spec.missions_per_hour * peak_mult / 3600.0
    if peak <= 0.0:
        return []
    out: list[float] = []
    t = 0.0
    while True:
        t += rng.expovariate(peak)
        if t >= duration_s:
            return out
        hour = spec.start_hour + t / 3600.0
        keep = spec.rate_multiplier(hour) / peak_mult
        if rng.random() < keep:
            out.append(t)


def draw_workload(scenario: Scenario, places: Sequence[str]) -> list[PlannedMission]:
    """Every mission of the run, in order of creation. ``places``: the facility's place
    names (the scenario's ``workload.places`` narrows them). Needs two places at least."""
    spec = scenario.workload
    usable = [p for p in places if not spec.places or p in spec.places]
    if len(usable) < 2:
        raise ValueError(f"the workload needs two places at least, has {usable}")
    rng = random.Random(f"{scenario.seed}:workload")
    missions = []
    for at in arrival_times(spec, scenario.duration_s, rng):
        pickup, dropoff = rng.sample(usable, 2)
        priority = _weighted(rng, {str(k): v for k, v in spec.priority_mix.items()})
        kind = _weighted(rng, {str(k): v for k, v in spec.vehicle_kind_mix.items()})
        start = end = None
        if spec.scheduled_fraction > 0.0 and rng.random() < spec.scheduled_fraction:
            start = at + rng.uniform(*spec.window_lead_s)
            end = start + spec.window_length_s
        missions.append(PlannedMission(at, pickup, dropoff, priority, kind, start, end))
    return missions


def draw_faults(
    rates: FaultRates,
    seed: int,
    duration_s: float,
    robots: Sequence[str],
    drivers: Sequence[str],
) -> list[PlannedFault]:
    """Every fault of the run, by time: per kind a Poisson process at its rate (per
    simulated hour, fleet-wide), each hitting a vehicle drawn from those it can hit."""
    faults: list[PlannedFault] = []
    for kind, per_hour in rates.kinds().items():
        targets = [
            name
            for group, names in (("robot", robots), ("driver", drivers))
            if group in FAULT_TARGETS[kind]
            for name in names
        ]
        if per_hour <= 0.0 or not targets:
            continue
        rng = random.Random(f"{seed}:fault:{kind}")
        t = 0.0
        while True:
            t += rng.expovariate(per_hour / 3600.0)
            if t >= duration_s:
                break
            faults.append(PlannedFault(t, kind, rng.choice(targets), FAULT_DURATION_S[kind]))
    faults.sort(key=lambda f: (f.at_s, f.kind, f.vehicle))
    return faults


def fleet_names(scenario: Scenario) -> tuple[list[str], list[str]]:
    """The names the run gives its robots and drivers (serials ``r0001``..., ids ``d001``...)."""
    robots = [f"r{i + 1:04d}" for i in range(scenario.fleet.robots)]
    drivers = [f"d{i + 1:03d}" for i in range(scenario.fleet.drivers)]
    return robots, drivers


def scenario_faults(scenario: Scenario) -> list[PlannedFault]:
    """:func:`draw_faults` for the scenario's own fleet, rates and seed."""
    robots, drivers = fleet_names(scenario)
    return draw_faults(scenario.faults, scenario.seed, scenario.duration_s, robots, drivers)

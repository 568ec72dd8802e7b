"""What a scenario will do, drawn up front: the missions to create and the faults to inject.

Both are pure functions of the scenario (its seed, rates and profile) and of what the
facility offers (place names, vehicle names): no clock, no I/O. A live run replays the
lists on the wall clock; a test checks that the same seed gives the same lists.

The missions come from the one workload generator, :func:`sim.workload_draw.draw_workload`
(re-exported here), which the offline evaluation draws from too. Each fault kind is drawn
from its own generator, seeded from the scenario's seed and a name
(``"<seed>:fault:<kind>"``), so changing one fault's rate leaves the workload and the other
faults as they were.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from sim.scenario import FaultRates, Scenario
from sim.workload_draw import DrawnMission, draw_workload

#: A mission of a live run's workload: the workload has one generator and one type.
PlannedMission = DrawnMission

__all__ = [
    "FAULT_DURATION_S",
    "FAULT_TARGETS",
    "PlannedFault",
    "PlannedMission",
    "draw_faults",
    "draw_workload",
    "fleet_names",
    "scenario_faults",
]

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
class PlannedFault:
    """One fault to inject at ``at_s`` simulated seconds into the run."""

    at_s: float
    kind: str  # a key of FaultRates
    vehicle: str  # the vehicle's name in the run (robot serial or driver id)
    duration_s: float


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

"""A scenario's mission workload, drawn as a pure function of the scenario and its places.

Arrivals are a Poisson process whose rate follows the scenario's daily profile (piecewise
constant by hour of day), drawn by thinning: candidate arrivals at the profile's peak
rate, each kept with probability rate(t) / peak. Each mission gets a priority, a vehicle
kind, a pickup and a different drop-off, and (a ``scheduled_fraction`` of them) a pickup
window, all from one generator seeded with :attr:`Scenario.seed`: the same scenario and
places always give the same missions, whatever else the run does (the fault schedule has
generators of its own, :mod:`sim.schedule`).

The one workload generator: the live run (``fleetd sim run``, :mod:`sim.live`, which
creates each mission through the control API at its time) and the offline evaluation
(``fleetd sim evaluate``, :mod:`sim.evaluate.engine`) both draw from it, over the same
places (:func:`sim.evaluate.site.mission_places`: the facility's places less its
charging stations), so a seed and a scenario give the same missions in both modes. The
places are taken in name order: the order a facility lists them in does not matter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sim.scenario import Scenario, WorkloadSpec

#: Seconds per hour, for the profile's rates.
_HOUR_S = 3600.0


@dataclass(frozen=True, slots=True)
class DrawnMission:
    """One mission of the workload; times are simulated seconds since the run began."""

    mission_id: str
    created_s: float
    priority: str  # low, normal, high, urgent
    vehicle_kind: str  # robot, driver or any
    pickup: str  # a place name
    dropoff: str
    window_start_s: float | None = None
    window_end_s: float | None = None


class WorkloadError(ValueError):
    """A workload that cannot be drawn (e.g. fewer than two places)."""


def _rate_per_s(spec: WorkloadSpec, t_s: float) -> float:
    hour = spec.start_hour + t_s / _HOUR_S
    return spec.missions_per_hour * spec.rate_multiplier(hour) / _HOUR_S


def _peak_per_s(spec: WorkloadSpec) -> float:
    peak = max((m for _, m in spec.profile), default=1.0)
    return spec.missions_per_hour * peak / _HOUR_S


def arrival_times(spec: WorkloadSpec, duration_s: float, rng: np.random.Generator) -> list[float]:
    """Poisson arrivals on the daily profile over ``duration_s`` simulated seconds, by
    thinning (what :func:`draw_workload` does, without the rest of each mission)."""
    peak = _peak_per_s(spec)
    out: list[float] = []
    if peak <= 0.0:
        return out
    t = 0.0
    while True:
        t += float(rng.exponential(1.0 / peak))
        if t >= duration_s:
            return out
        if float(rng.random()) * peak <= _rate_per_s(spec, t):
            out.append(t)


def _choice(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = sorted(weights)  # a fixed order: dict order must not change the draw
    p = np.asarray([weights[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def draw_workload(scenario: Scenario, places: Sequence[str]) -> tuple[DrawnMission, ...]:
    """Every mission created during ``scenario.duration_s``, in creation order.

    ``places`` are the candidate pickups and drop-offs (the scenario's own list, when it
    has one, is used instead and must be a subset of them).
    """
    spec = scenario.workload
    chosen = sorted(set(spec.places) if spec.places else set(places))
    unknown = sorted(set(chosen) - set(places))
    if unknown:
        raise WorkloadError(f"workload.places not in the facility: {', '.join(unknown)}")
    if len(chosen) < 2:
        raise WorkloadError("a workload needs at least two places")
    rng = np.random.default_rng(scenario.seed)
    peak = _peak_per_s(spec)
    out: list[DrawnMission] = []
    if peak <= 0.0:
        return ()
    t = 0.0
    while True:
        t += float(rng.exponential(1.0 / peak))
        if t >= scenario.duration_s:
            break
        if float(rng.random()) * peak > _rate_per_s(spec, t):
            continue
        priority = _choice(rng, {str(k): v for k, v in spec.priority_mix.items()})
        kind = _choice(rng, {str(k): v for k, v in spec.vehicle_kind_mix.items()})
        a, b = rng.choice(len(chosen), size=2, replace=False)
        window: tuple[float, float] | None = None
        if spec.scheduled_fraction > 0.0 and float(rng.random()) < spec.scheduled_fraction:
            lead = float(rng.uniform(*spec.window_lead_s))
            window = (t + lead, t + lead + spec.window_length_s)
        out.append(
            DrawnMission(
                mission_id=f"m{len(out) + 1:06d}",
                created_s=round(t, 3),
                priority=priority,
                vehicle_kind=kind,
                pickup=chosen[int(a)],
                dropoff=chosen[int(b)],
                window_start_s=None if window is None else round(window[0], 3),
                window_end_s=None if window is None else round(window[1], 3),
            )
        )
    return tuple(out)

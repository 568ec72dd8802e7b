"""Simulation scenarios: one TOML file says what to simulate, live or offline.

A scenario names the fleet (how many robots and drivers, where they start, their battery),
the facility, the workload (Poisson arrivals following a daily profile, a mix of
priorities, of time-windowed missions and of vehicle kinds), the faults to inject (each
with a rate), how long to run, how much faster than real time the vehicles move, and the
random seed. The same seed gives the same workload and the same faults: everything random
in a run is drawn from generators seeded from :attr:`Scenario.seed`.

Times in a scenario are *simulated* seconds. A live run (``fleetd sim run``) lasts
``duration_s / time_scale`` wall seconds; an offline run (``fleetd sim evaluate``) runs on
a simulated clock and ``time_scale`` does not apply.

This module is the boundary (a file written by people), so it uses pydantic: a bad file
is refused with the key and the reason named.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

#: Where the shipped scenarios live (``fleetd sim run demo`` finds ``demo.toml`` here).
SCENARIO_DIR = Path(__file__).resolve().parent.parent / "configs" / "scenarios"

Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
PriorityName = Literal["low", "normal", "high", "urgent"]
KindName = Literal["robot", "driver", "any"]


def _default_priorities() -> dict[PriorityName, float]:
    return {"low": 0.15, "normal": 0.6, "high": 0.2, "urgent": 0.05}


def _default_kinds() -> dict[KindName, float]:
    return {"any": 1.0}


PerHour = Annotated[float, Field(ge=0.0, le=100_000.0, allow_inf_nan=False)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FleetSpec(_Section):
    """The simulated fleet."""

    robots: Annotated[int, Field(ge=0, le=20_000)] = 20
    drivers: Annotated[int, Field(ge=0, le=20_000)] = 5
    #: VDA 5050 ``state`` period of each robot, in wall seconds (the spec's "at least
    #: every 30 s"; fleetd's heartbeat timeout is judged on it).
    state_interval_s: Annotated[float, Field(gt=0.0, le=30.0)] = 1.0
    #: Robots start with a battery drawn uniformly from this range (percent).
    battery_start: tuple[float, float] = (40.0, 100.0)
    #: Vehicle processes for a live run; 0 picks one per 500 vehicles (at least one).
    processes: Annotated[int, Field(ge=0, le=64)] = 0
    manufacturer: Annotated[str, Field(min_length=1, max_length=64)] = "simbot"

    @model_validator(mode="after")
    def _battery_range(self) -> FleetSpec:
        low, high = self.battery_start
        if not 0.0 <= low <= high <= 100.0:
            raise ValueError("battery_start must be [low, high] with 0 <= low <= high <= 100")
        return self


class WorkloadSpec(_Section):
    """Missions created as nurses and operators would: Poisson arrivals on a daily profile."""

    #: Mean arrivals per simulated hour where the profile's multiplier is 1.0.
    missions_per_hour: PerHour = 60.0
    #: ``[[hour_of_day, multiplier], ...]``, piecewise constant from each hour on; empty means
    #: a flat profile. Hours in [0, 24), strictly increasing.
    profile: tuple[tuple[float, float], ...] = ()
    #: The simulated clock's hour of day at the start of the run.
    start_hour: Annotated[float, Field(ge=0.0, lt=24.0)] = 8.0
    priority_mix: dict[PriorityName, Fraction] = Field(default_factory=_default_priorities)
    #: Which vehicle kind a mission asks for (``requirements.vehicle_kind``).
    vehicle_kind_mix: dict[KindName, Fraction] = Field(default_factory=_default_kinds)
    #: Share of missions booked ahead with a pickup window.
    scheduled_fraction: Fraction = 0.0
    #: A scheduled mission's window opens this many simulated seconds after it is created
    #: (uniform in the range) and stays open ``window_length_s``.
    window_lead_s: tuple[float, float] = (600.0, 3600.0)
    window_length_s: Annotated[float, Field(gt=0.0, le=86_400.0)] = 900.0
    #: Pickups and dropoffs are drawn from these places of the layout; empty means all.
    places: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> WorkloadSpec:
        hours = [h for h, _ in self.profile]
        if any(not 0.0 <= h < 24.0 for h in hours) or hours != sorted(set(hours)):
            raise ValueError("profile hours must be in [0, 24) and strictly increasing")
        if any(m < 0.0 for _, m in self.profile):
            raise ValueError("profile multipliers must be >= 0")
        if not self.priority_mix or sum(self.priority_mix.values()) <= 0.0:
            raise ValueError("priority_mix needs at least one positive weight")
        if not self.vehicle_kind_mix or sum(self.vehicle_kind_mix.values()) <= 0.0:
            raise ValueError("vehicle_kind_mix needs at least one positive weight")
        low, high = self.window_lead_s
        if not 0.0 <= low <= high:
            raise ValueError("window_lead_s must be [low, high] with 0 <= low <= high")
        return self

    def rate_multiplier(self, hour_of_day: float) -> float:
        """The profile's multiplier at ``hour_of_day`` (wraps at midnight)."""
        if not self.profile:
            return 1.0
        hour = hour_of_day % 24.0
        current = self.profile[-1][1]  # before the first entry: yesterday's last one
        for start, multiplier in self.profile:
            if hour >= start:
                current = multiplier
        return current


class FaultRates(_Section):
    """How often each fault is injected, per simulated hour across the whole fleet."""

    #: A vehicle vanishes without a clean disconnect (its Last Will fires later).
    vanish: PerHour = 0.0
    #: A clean disconnect, then a reconnect a little later.
    reconnect: PerHour = 0.0
    #: A robot reports a FATAL error in the middle of an order.
    fatal_error: PerHour = 0.0
    #: A robot stops making progress (states keep coming, nothing moves).
    stuck: PerHour = 0.0
    #: A robot's battery drops suddenly (a battery fault).
    battery_fault: PerHour = 0.0
    #: A driver accepts an offer, then goes silent.
    silent_driver: PerHour = 0.0
    #: A driver's GPS fixes turn noisy for a while.
    noisy_gps: PerHour = 0.0
    #: A burst of malformed messages on a vehicle's topics.
    malformed_burst: PerHour = 0.0

    def kinds(self) -> dict[str, float]:
        """Each fault kind and its rate, in declaration order."""
        return {name: float(getattr(self, name)) for name in type(self).model_fields}


class Scenario(_Section):
    """A whole simulation scenario (one TOML file)."""

    name: Annotated[str, Field(min_length=1, max_length=64)]
    description: str = ""
    seed: int = 42
    #: Facility key the missions are created for (fleetd's ``[[facilities]]``).
    facility: Annotated[str, Field(min_length=1, max_length=64)] = "demo-campus"
    #: Simulated seconds to run.
    duration_s: Annotated[float, Field(gt=0.0, le=7 * 86_400.0)] = 600.0
    #: Live runs: vehicles move (and the workload arrives) this many times faster than real
    #: time. Offline evaluation ignores it.
    time_scale: Annotated[float, Field(gt=0.0, le=1000.0)] = 1.0
    fleet: FleetSpec = Field(default_factory=FleetSpec)
    workload: WorkloadSpec = Field(default_factory=WorkloadSpec)
    faults: FaultRates = Field(default_factory=FaultRates)

    @property
    def wall_duration_s(self) -> float:
        """How long a live run lasts on the wall clock."""
        return self.duration_s / self.time_scale


class ScenarioError(ValueError):
    """A scenario file that cannot be used, with the file and the reason named."""


def scenario_path(name_or_path: str) -> Path:
    """A scenario's file: a path as given, or ``configs/scenarios/<name>.toml``."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        return candidate
    return SCENARIO_DIR / f"{name_or_path}.toml"


def load_scenario(name_or_path: str) -> Scenario:
    """Read and validate a scenario; :class:`ScenarioError` names what is wrong."""
    path = scenario_path(name_or_path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))
        raise ScenarioError(
            f"{path}: no such scenario (shipped: {', '.join(known) or 'none'})"
        ) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read: {exc}") from exc
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ScenarioError(f"{path}: {problems}") from exc

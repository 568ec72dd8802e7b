"""What a simulation run recorded: the raw material of its report.

Both modes fill one :class:`RunRecord`: a live run (``fleetd sim run``) from the control
API's event stream and its own vehicles, an offline run (``fleetd sim evaluate``) from its
discrete-event simulation. The report (KPI tables and plots) is computed from this record
alone, so live and offline reports compare like for like.

Times are simulated seconds since the run started (a live run multiplies wall seconds by
its time scale). Distances are metres.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class MissionRecord:
    """One mission's life in the run."""

    mission_id: str
    priority: str
    vehicle_kind: str  # what the mission asked for: robot, driver or any
    created_s: float
    #: Pickup window (None when the mission was for "as soon as possible").
    window_start_s: float | None = None
    window_end_s: float | None = None
    assigned_s: float | None = None
    picked_up_s: float | None = None
    completed_s: float | None = None
    #: Terminal status when the run ended, or None while still open.
    final_status: str | None = None  # completed, failed, cancelled
    vehicle_id: str | None = None
    reassignments: int = 0
    #: Distance driven empty (to the pickup) and loaded (pickup to dropoff); None when
    #: the run did not measure it (a live run measures it from the simulator's odometers,
    #: see sim.odometry).
    empty_distance_m: float | None = None
    loaded_distance_m: float | None = None
    failure_reason: str | None = None

    @property
    def pickup_wait_s(self) -> float | None:
        """From the moment it could be served (created or window start) to the pickup."""
        if self.picked_up_s is None:
            return None
        ready = self.created_s
        if self.window_start_s is not None:
            ready = max(ready, self.window_start_s)
        return max(0.0, self.picked_up_s - ready)

    @property
    def on_time(self) -> bool | None:
        """Picked up within its window (windowless: within the report's on-time target)."""
        if self.picked_up_s is None or self.window_end_s is None:
            return None
        return self.picked_up_s <= self.window_end_s


@dataclass(frozen=True, slots=True)
class VehicleSample:
    """A vehicle as seen at one moment: for utilisation, battery and tracks plots."""

    t_s: float
    vehicle_id: str
    kind: str  # robot or driver
    busy: bool  # holds a mission (to pickup, carrying) or charging for one
    online: bool
    battery_pct: float | None
    x: float  # layout frame metres (robots) or lon (drivers)
    y: float  # layout frame metres (robots) or lat (drivers)


@dataclass(slots=True)
class FaultRecord:
    """One injected fault and what fleetd did about it."""

    kind: str  # a key of sim.scenario.FaultRates
    t_s: float
    vehicle_id: str | None
    #: What fleetd was seen to do: e.g. "vehicle offline", "mission reassigned",
    #: "waiting for operator", "messages refused"; empty when nothing was observed.
    observed: list[str] = field(default_factory=list)
    #: What exactly was injected (e.g. "FATAL error during order o-12", "10 malformed
    #: messages"); empty when the mode does not say.
    injected: str = ""


@dataclass(slots=True)
class ReplanRecord:
    """One planner run: how long it took and how big the problem was."""

    t_s: float
    duration_s: float
    missions: int
    vehicles: int
    #: The daemon's quick insertion for new missions (``greedy``), not the full plan.
    quick: bool = False


@dataclass(slots=True)
class RunRecord:
    """Everything one run recorded."""

    scenario: str
    mode: str  # "live" or "evaluate"
    strategy: str  # the planner strategy (e.g. "optimise", "greedy"); live: the daemon's
    seed: int
    duration_s: float
    vehicles: int
    missions: list[MissionRecord] = field(default_factory=list)
    samples: list[VehicleSample] = field(default_factory=list)
    faults: list[FaultRecord] = field(default_factory=list)
    replans: list[ReplanRecord] = field(default_factory=list)
    messages_sent: int = 0
    messages_received: int = 0
    #: Errors fleetd itself reported (refused messages, failed commands), by kind.
    daemon_errors: dict[str, int] = field(default_factory=dict)
    #: Free-form facts for the report's header (state interval achieved, jitter, CPU...).
    notes: dict[str, float | int | str] = field(default_factory=dict)
    #: Layout to draw tracks on: the facility key (or LIF path) the run used.
    layout: str | None = None

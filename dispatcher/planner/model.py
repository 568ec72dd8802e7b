"""The planner's data model: vehicles, requests, matrices in; routes and unserved requests out.

Plain frozen dataclasses, no I/O. Locations are indices into the matrices of a vehicle's
profile (the caller builds the matrices, e.g. from a facility layout). Times are integer
seconds on one clock chosen by the caller (epoch seconds or seconds since the plan began).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

import numpy as np
import numpy.typing as npt

#: "No bound" for times, ranges and capacities; well below int64 so sums cannot overflow.
HORIZON = 2**40

IntMatrix = npt.NDArray[np.int64]


class VehicleKind(StrEnum):
    ROBOT = "robot"
    DRIVER = "driver"


class Priority(IntEnum):
    """A live request's urgency; the value is the VROOM-format ``priority`` (0-100)."""

    LOW = 0
    NORMAL = 25
    HIGH = 50
    URGENT = 100


class UnservedReason(StrEnum):
    """Why a request has no vehicle in a plan. Every unserved request carries one."""

    NO_ELIGIBLE_VEHICLE = "no_eligible_vehicle"  # kind / capabilities / profile
    CAPACITY = "capacity"  # demand exceeds every eligible vehicle's capacity
    TIME_WINDOW = "time_window_unreachable"  # no eligible vehicle can be there in time
    BATTERY = "battery"  # no eligible vehicle can do it and stay above its reserve
    NOT_FOUND = "not_found_within_limit"  # feasible alone, but the solver found no room


class Objective(StrEnum):
    """What the optimiser minimises.

    ``waiting``: the live objective: serve as many requests as possible (higher priority
    first), then minimise passenger waiting (pickup start minus requested time) weighted
    by priority, then travel cost.  ``cost``: VROOM's objective, so costs compare with
    ``vroom`` on the same file: serve the most priority, then the most tasks, then
    minimise travel cost plus fixed vehicle costs.
    """

    WAITING = "waiting"
    COST = "cost"


@dataclass(frozen=True, slots=True)
class Profile:
    """Travel between locations for one vehicle profile (e.g. ``robot``, ``driver``).

    ``durations`` (seconds) and ``costs`` are square ``int64`` matrices over location
    indices; ``distances`` (metres) feeds battery range and defaults to ``costs``.
    """

    durations: IntMatrix
    costs: IntMatrix
    distances: IntMatrix | None = None

    def distance_matrix(self) -> IntMatrix:
        return self.costs if self.distances is None else self.distances

    @property
    def size(self) -> int:
        return int(self.durations.shape[0])


@dataclass(frozen=True, slots=True)
class Vehicle:
    """One vehicle as the planner sees it.

    ``start`` is where it is, or where its committed (started) leg ends; ``ready_time`` is
    when it is free there. ``end`` is where it must finish (``None``: anywhere).
    ``range_m`` is the distance it can still travel on its battery and ``reserve_m`` what
    must be left at the end (``None``: no battery limit, e.g. a driver).
    ``onboard_load`` is what it already carries for requests picked up earlier.
    """

    id: str
    start: int | None
    end: int | None = None
    profile: str = "robot"
    kind: VehicleKind = VehicleKind.ROBOT
    capacity: tuple[int, ...] = (1,)
    capabilities: frozenset[str] = frozenset()
    ready_time: int = 0
    available_until: int = HORIZON
    range_m: int | None = None
    reserve_m: int = 0
    fixed_cost: int = 0
    max_tasks: int | None = None


@dataclass(frozen=True, slots=True)
class Request:
    """A transport: from ``pickup`` to ``dropoff``.

    ``pickup_windows`` are the windows in which pickup service may begin (the first
    window's start is the requested time the live objective measures waiting from);
    ``dropoff_windows`` likewise for drop-off (the last end is the drop-off deadline).
    ``required_kind`` ``None`` lets robots and drivers compete for it.
    ``onboard_vehicle`` names the vehicle already carrying it: only the drop-off remains.
    """

    id: str
    pickup: int
    dropoff: int
    demand: tuple[int, ...] = (1,)
    pickup_service: int = 0
    dropoff_service: int = 0
    pickup_windows: tuple[tuple[int, int], ...] = ((0, HORIZON),)
    dropoff_windows: tuple[tuple[int, int], ...] = ((0, HORIZON),)
    priority: int = Priority.NORMAL
    required_kind: VehicleKind | None = None
    required_capabilities: frozenset[str] = frozenset()
    onboard_vehicle: str | None = None

    @property
    def requested_time(self) -> int:
        return self.pickup_windows[0][0]


@dataclass(frozen=True, slots=True)
class Problem:
    """One planning problem: a fleet, open requests and a profile per vehicle profile name."""

    vehicles: tuple[Vehicle, ...]
    requests: tuple[Request, ...]
    profiles: dict[str, Profile]
    objective: Objective = Objective.WAITING


class StopKind(StrEnum):
    PICKUP = "pickup"
    DROPOFF = "dropoff"


@dataclass(frozen=True, slots=True)
class Stop:
    """One planned stop: ``arrival`` at the location, service from ``start`` (after waiting)."""

    request_id: str
    kind: StopKind
    location: int
    arrival: int
    start: int
    load: tuple[int, ...]

    @property
    def waiting(self) -> int:
        return self.start - self.arrival


@dataclass(frozen=True, slots=True)
class Route:
    """A vehicle's ordered stops; ``end_time`` is when it reaches its end (or finishes)."""

    vehicle_id: str
    stops: tuple[Stop, ...]
    start_time: int
    end_time: int
    cost: int
    distance: int


@dataclass(frozen=True, slots=True)
class Unserved:
    request_id: str
    reason: UnservedReason


@dataclass(frozen=True, slots=True)
class Plan:
    """A solution: one route per vehicle that has stops, and every request not served."""

    routes: tuple[Route, ...]
    unserved: tuple[Unserved, ...]
    strategy: str
    stats: dict[str, float] = field(default_factory=dict)

    def assignment(self) -> dict[str, str]:
        """request id -> vehicle id for every served request."""
        return {s.request_id: r.vehicle_id for r in self.routes for s in r.stops}

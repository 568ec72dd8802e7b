"""The planner: pure assignment and routing of transport requests to vehicles.

No I/O, no asyncio, nothing from the daemon's edges: matrices and dataclasses in, a
:class:`Plan` out. Entry point: :func:`solve`.
"""

from dispatcher.planner.model import (
    Objective,
    Plan,
    Priority,
    Problem,
    Profile,
    Request,
    Route,
    Stop,
    StopKind,
    Unserved,
    UnservedReason,
    Vehicle,
    VehicleKind,
)
from dispatcher.planner.options import PlannerOptions
from dispatcher.planner.solve import STRATEGIES, UnknownStrategyError, solve

__all__ = [
    "STRATEGIES",
    "Objective",
    "Plan",
    "PlannerOptions",
    "Priority",
    "Problem",
    "Profile",
    "Request",
    "Route",
    "Stop",
    "StopKind",
    "UnknownStrategyError",
    "Unserved",
    "UnservedReason",
    "Vehicle",
    "VehicleKind",
    "solve",
]

"""A first solution from VROOM (pyvroom), for OR-Tools to improve.

VROOM builds good pickup-and-delivery routes fast; OR-Tools then searches on the model
VROOM cannot express (the soft pickup-time objective, per-request vehicle lists). Used
only when every constraint of the sub-problem maps onto VROOM's model: kind and
capabilities become skills, battery range becomes ``max_distance``. Requests already on
board (drop-off only) do not map, and neither do pruned candidate lists: then no seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import numpy as np

from dispatcher.planner.model import Problem, StopKind

#: VROOM's times are unsigned 32-bit.
_VROOM_MAX = 2**32 - 1


def _tw(begin: int, end: int) -> object:
    import vroom

    return vroom.TimeWindow(max(0, begin), min(end, _VROOM_MAX))


def _skills(labels: set[str], table: dict[str, int]) -> set[int]:
    return {table.setdefault(label, len(table) + 1) for label in labels}


def _input(problem: Problem, vehicles: Sequence[int], requests: Sequence[int]) -> object:
    import vroom

    table: dict[str, int] = {}
    dims = max(len(problem.vehicles[v].capacity) for v in vehicles)
    vin = vroom.Input()
    for name in {problem.vehicles[v].profile for v in vehicles}:
        prof = problem.profiles[name]
        vin.set_durations_matrix(name, np.asarray(prof.durations, dtype=np.uint32))
        vin.set_costs_matrix(name, np.asarray(prof.costs, dtype=np.uint32))
        vin.set_distances_matrix(name, np.asarray(prof.distance_matrix(), dtype=np.uint32))
    for m, v in enumerate(vehicles):
        veh = problem.vehicles[v]
        cap = list(veh.capacity) + [0] * (dims - len(veh.capacity))
        battery = None if veh.range_m is None else max(0, veh.range_m - veh.reserve_m)
        vin.add_vehicle(
            vroom.Vehicle(
                m,
                start=veh.start,
                end=veh.end,
                profile=veh.profile,
                capacity=vroom.Amount(cap),
                skills=_skills({*veh.capabilities, "kind:" + veh.kind.value}, table),
                time_window=_tw(veh.ready_time, veh.available_until),
                costs=vroom.VehicleCosts(fixed=veh.fixed_cost),
                **({} if battery is None else {"max_distance": battery}),
                **({} if veh.max_tasks is None else {"max_tasks": veh.max_tasks}),
            )
        )
    for r in requests:
        req = problem.requests[r]
        labels = set(req.required_capabilities)
        if req.required_kind is not None:
            labels.add("kind:" + req.required_kind.value)
        amount = list(req.demand) + [0] * (dims - len(req.demand))
        vin.add_shipment(
            vroom.ShipmentStep(
                r,
                req.pickup,
                default_service=req.pickup_service,
                time_windows=[_tw(a, b) for a, b in req.pickup_windows],
            ),
            vroom.ShipmentStep(
                r,
                req.dropoff,
                default_service=req.dropoff_service,
                time_windows=[_tw(a, b) for a, b in req.dropoff_windows],
            ),
            amount=vroom.Amount(amount[:dims]),
            skills=_skills(labels, table),
            priority=int(req.priority),
        )
    return vin


def vroom_routes(
    problem: Problem,
    vehicles: Sequence[int],
    requests: Sequence[int],
    seconds: float,
    threads: int,
    level: int = 5,
) -> list[list[tuple[int, StopKind]]] | None:
    """VROOM's routes per model vehicle as (request index, kind), or ``None`` when VROOM is
    not installed, the problem does not map, or VROOM fails."""
    try:
        import vroom  # noqa: F401
    except ImportError:
        return None
    if any(problem.requests[r].onboard_vehicle is not None for r in requests):
        return None
    try:
        vin = _input(problem, vehicles, requests)
        solution = vin.solve(  # type: ignore[attr-defined]
            exploration_level=level, nb_threads=threads, timeout=timedelta(seconds=seconds)
        )
        data = solution.to_dict()
    except (RuntimeError, ValueError, OverflowError):
        return None
    routes: list[list[tuple[int, StopKind]]] = [[] for _ in vehicles]
    for route in data.get("routes", []):
        routes[int(route["vehicle"])] = [
            (int(step["id"]), StopKind.PICKUP if step["type"] == "pickup" else StopKind.DROPOFF)
            for step in route["steps"]
            if step["type"] in ("pickup", "delivery")
        ]
    return routes

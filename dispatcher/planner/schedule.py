"""Timing one vehicle's stop sequence: arrivals, waiting, loads, cost, distance, feasibility.

The earliest schedule is the one to use: every objective here prefers earlier pickups,
and no constraint rewards waiting, so starting each stop as soon as allowed is optimal
for a fixed order. Used to report plans (whatever produced the order) and by ``greedy``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dispatcher.planner.model import Problem, Request, Route, Stop, StopKind, Vehicle

#: (request, pickup-or-dropoff) in visiting order.
Visit = tuple[Request, StopKind]


@dataclass(frozen=True, slots=True)
class Infeasible:
    """Why a sequence cannot be driven; ``what`` is one of capacity/time/battery/order."""

    what: str
    request_id: str


def _window_start(arrival: int, windows: Sequence[tuple[int, int]]) -> int | None:
    for begin, end in windows:
        if arrival <= end:
            return max(arrival, begin)
    return None


def _initial_load(vehicle: Vehicle, requests: Mapping[str, Request]) -> list[int]:
    load = [0] * len(vehicle.capacity)
    for req in requests.values():
        if req.onboard_vehicle == vehicle.id:
            for k, amount in enumerate(req.demand[: len(load)]):
                load[k] += amount
    return load


def _check_order(vehicle: Vehicle, visits: Sequence[Visit]) -> Infeasible | None:
    picked: set[str] = set()
    for req, kind in visits:
        if kind is StopKind.PICKUP:
            if req.onboard_vehicle is not None or req.id in picked:
                return Infeasible("order", req.id)
            picked.add(req.id)
        elif req.id not in picked and req.onboard_vehicle != vehicle.id:
            return Infeasible("order", req.id)
    return None


def schedule(
    problem: Problem,
    vehicle: Vehicle,
    visits: Sequence[Visit],
    onboard: Mapping[str, Request] | None = None,
) -> Route | Infeasible:
    """Drive ``visits`` with ``vehicle`` as early as allowed; the route or the first violation.

    ``onboard`` maps request ids to requests the vehicle already carries (their load
    counts from the start); pass ``None`` to take them from ``problem``.
    """
    bad = _check_order(vehicle, visits)
    if bad is not None:
        return bad
    if onboard is None:
        onboard = {r.id: r for r in problem.requests if r.onboard_vehicle == vehicle.id}
    prof = problem.profiles[vehicle.profile]
    dur, cost_m, dist_m = prof.durations, prof.costs, prof.distance_matrix()
    load = _initial_load(vehicle, onboard)
    t, prev = vehicle.ready_time, vehicle.start
    cost = distance = 0
    stops: list[Stop] = []
    for req, kind in visits:
        loc = req.pickup if kind is StopKind.PICKUP else req.dropoff
        if prev is not None:
            t += int(dur[prev, loc])
            cost += int(cost_m[prev, loc])
            distance += int(dist_m[prev, loc])
        pickup = kind is StopKind.PICKUP
        begin = _window_start(t, req.pickup_windows if pickup else req.dropoff_windows)
        if begin is None:
            return Infeasible("time", req.id)
        sign = 1 if pickup else -1
        for k, amount in enumerate(req.demand[: len(load)]):
            load[k] += sign * amount
        if any(x > c for x, c in zip(load, vehicle.capacity, strict=True)):
            return Infeasible("capacity", req.id)
        stops.append(Stop(req.id, kind, loc, t, begin, tuple(load)))
        t = begin + (req.pickup_service if pickup else req.dropoff_service)
        prev = loc
    if vehicle.end is not None and prev is not None:
        t += int(dur[prev, vehicle.end])
        cost += int(cost_m[prev, vehicle.end])
        distance += int(dist_m[prev, vehicle.end])
    last = stops[-1].request_id if stops else ""
    if t > vehicle.available_until:
        return Infeasible("time", last)
    if vehicle.range_m is not None and distance > vehicle.range_m - vehicle.reserve_m:
        return Infeasible("battery", last)
    if stops:
        cost += vehicle.fixed_cost
    start_time = vehicle.ready_time
    return Route(vehicle.id, tuple(stops), start_time, t, cost, distance)


def waiting_cost(route: Route, requests: Mapping[str, Request], weights: Mapping[int, int]) -> int:
    """Priority-weighted passenger waiting of a route (the live objective's main term)."""
    total = 0
    for stop in route.stops:
        if stop.kind is StopKind.PICKUP:
            req = requests[stop.request_id]
            total += weight_of(req.priority, weights) * max(0, stop.start - req.requested_time)
    return total


def weight_of(priority: int, weights: Mapping[int, int]) -> int:
    """The waiting weight of a priority: the weight of the highest level not above it."""
    best = min(weights)
    for level in weights:
        if level <= priority and level > best:
            best = level
    return weights[best]

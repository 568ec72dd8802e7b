"""Writing plans as VROOM solutions and problems as VROOM problems (snapshots)."""

from __future__ import annotations

from typing import Any

from dispatcher.planner.model import HORIZON, Plan, Problem, Request, Route, StopKind, Vehicle
from dispatcher.planner.vroom_format import VroomProblem


def _step(
    kind: str, location: int | None, arrival: int, travel: int, load: list[int]
) -> dict[str, Any]:
    step: dict[str, Any] = {"type": kind, "arrival": arrival, "duration": travel, "setup": 0}
    step.update({"service": 0, "waiting_time": 0, "load": load, "violations": []})
    if location is not None:
        step["location_index"] = location
    return step


def _route(
    problem: Problem, route: Route, vehicle: Vehicle, ids: dict[str, tuple[int, int]], vid: int
) -> dict[str, Any]:
    dur = problem.profiles[vehicle.profile].durations
    requests = {r.id: r for r in problem.requests}
    dims = len(route.stops[0].load)
    initial = [0] * dims
    for req in problem.requests:
        if req.onboard_vehicle == vehicle.id:
            initial = [a + b for a, b in zip(initial, _demand(req, dims), strict=True)]
    steps: list[dict[str, Any]] = []
    travel, prev = 0, vehicle.start
    if vehicle.start is not None:
        steps.append(_step("start", vehicle.start, route.start_time, 0, initial))
    service = waiting = priority = 0
    for stop in route.stops:
        req = requests[stop.request_id]
        travel += 0 if prev is None else int(dur[prev, stop.location])
        pickup = stop.kind is StopKind.PICKUP
        step = _step(
            "pickup" if pickup else "delivery", stop.location, stop.arrival, travel, list(stop.load)
        )
        step["id"] = ids[req.id][0 if pickup else 1]
        step["service"] = req.pickup_service if pickup else req.dropoff_service
        step["waiting_time"] = stop.waiting
        steps.append(step)
        service += step["service"]
        waiting += stop.waiting
        priority += req.priority if pickup else 0
        prev = stop.location
    if vehicle.end is not None and prev is not None:
        travel += int(dur[prev, vehicle.end])
        steps.append(_step("end", vehicle.end, route.end_time, travel, list(route.stops[-1].load)))
    return {
        "vehicle": vid,
        "cost": route.cost,
        "setup": 0,
        "service": service,
        "duration": travel,
        "waiting_time": waiting,
        "priority": priority,
        "steps": steps,
        "violations": [],
        "distance": route.distance,
    }


def _demand(req: Request, dims: int) -> list[int]:
    return list(req.demand[:dims]) + [0] * (dims - len(req.demand))


def write_solution(vp: VroomProblem, problem: Problem, plan: Plan) -> dict[str, Any]:
    """VROOM's solution object for ``plan`` of ``problem`` read from ``vp``.

    fleetd adds ``reason`` to each ``unassigned`` entry and a ``summary.fleetd`` object
    (strategy and solver figures); everything else is VROOM's layout.
    """
    ids = {
        r.id: (s.pickup.id, s.delivery.id)
        for r, s in zip(problem.requests, vp.shipments, strict=True)
    }
    vids = {v.id: vv.id for v, vv in zip(problem.vehicles, vp.vehicles, strict=True)}
    vehicles = {v.id: v for v in problem.vehicles}
    routes = [
        _route(problem, r, vehicles[r.vehicle_id], ids, vids[r.vehicle_id]) for r in plan.routes
    ]
    by_id = {r.id: r for r in problem.requests}
    unassigned: list[dict[str, Any]] = []
    for u in plan.unserved:
        req = by_id[u.request_id]
        pid, did = ids[u.request_id]
        unassigned.append(
            {"id": pid, "type": "pickup", "location_index": req.pickup, "reason": u.reason.value}
        )
        unassigned.append(
            {"id": did, "type": "delivery", "location_index": req.dropoff, "reason": u.reason.value}
        )
    summary = {
        "cost": sum(r["cost"] for r in routes),
        "routes": len(routes),
        "unassigned": len(plan.unserved),
        "setup": 0,
        "service": sum(r["service"] for r in routes),
        "duration": sum(r["duration"] for r in routes),
        "waiting_time": sum(r["waiting_time"] for r in routes),
        "priority": sum(r["priority"] for r in routes),
        "distance": sum(r["distance"] for r in routes),
        "violations": [],
        "fleetd": {"strategy": plan.strategy, **plan.stats},
    }
    return {"code": 0, "summary": summary, "unassigned": unassigned, "routes": routes}


def _windows(windows: tuple[tuple[int, int], ...]) -> list[list[int]]:
    if windows == ((0, HORIZON),):
        return []
    return [[a, b] for a, b in windows]


class _Skills:
    """Capability labels as VROOM integer skills: ``skill:N`` stays N, others get new ids."""

    def __init__(self, labels: set[str]) -> None:
        known = [int(x[6:]) for x in labels if x.startswith("skill:") and x[6:].isdigit()]
        nxt = max(known, default=0) + 1
        self.ids: dict[str, int] = {}
        for label in sorted(labels):
            if label.startswith("skill:") and label[6:].isdigit():
                self.ids[label] = int(label[6:])
            else:
                self.ids[label] = nxt
                nxt += 1

    def of(self, labels: frozenset[str]) -> list[int]:
        return sorted(self.ids[x] for x in labels)

    @staticmethod
    def named(labels: frozenset[str]) -> list[str]:
        return sorted(x for x in labels if not x.startswith(("skill:", "kind:")))


def _int_ids(ids: list[str]) -> list[int]:
    """Integer ids for VROOM: the ids themselves when all are distinct integers, else 1..n."""
    if all(i.isdigit() for i in ids) and len({int(i) for i in ids}) == len(ids):
        return [int(i) for i in ids]
    return list(range(1, len(ids) + 1))


def _vehicle(v: Vehicle, vid: int, skills: _Skills) -> dict[str, Any]:
    out: dict[str, Any] = {"id": vid, "profile": v.profile, "capacity": list(v.capacity)}
    if v.start is not None:
        out["start_index"] = v.start
    if v.end is not None:
        out["end_index"] = v.end
    out["skills"] = skills.of(v.capabilities - {f"kind:{v.kind.value}"})
    out["time_window"] = [v.ready_time, v.available_until]
    out["costs"] = {"fixed": v.fixed_cost}
    if v.max_tasks is not None:
        out["max_tasks"] = v.max_tasks
    if v.range_m is not None:
        out["max_distance"] = max(0, v.range_m - v.reserve_m)
    ext: dict[str, Any] = {
        "id": v.id,
        "kind": v.kind.value,
        "capabilities": skills.named(v.capabilities),
    }
    if v.range_m is not None:
        ext.update(range_m=v.range_m, reserve_m=v.reserve_m)
    out["fleetd"] = ext
    return out


def _shipment(r: Request, pid: int, skills: _Skills) -> dict[str, Any]:
    kinds = [x[5:] for x in r.required_capabilities if x.startswith("kind:")]
    required_kind = r.required_kind.value if r.required_kind is not None else None
    if required_kind is None and kinds:
        required_kind = kinds[0]
    plain = frozenset(x for x in r.required_capabilities if not x.startswith("kind:"))
    ext: dict[str, Any] = {"id": r.id, "capabilities": skills.named(plain)}
    if required_kind is not None:
        ext["required_kind"] = required_kind
    if r.onboard_vehicle is not None:
        ext["onboard_vehicle"] = r.onboard_vehicle
    return {
        "pickup": {
            "id": pid,
            "location_index": r.pickup,
            "service": r.pickup_service,
            "time_windows": _windows(r.pickup_windows),
        },
        "delivery": {
            "id": pid,
            "location_index": r.dropoff,
            "service": r.dropoff_service,
            "time_windows": _windows(r.dropoff_windows),
        },
        "amount": list(r.demand),
        "skills": skills.of(plain),
        "priority": int(r.priority),
        "fleetd": ext,
    }


def write_problem(problem: Problem) -> dict[str, Any]:
    """``problem`` as a VROOM problem object: ``vroom`` and ``fleetd plan solve`` both read it.

    Vehicle kinds, capability names, battery range/reserve and on-board requests, which
    VROOM has no field for, go in ``fleetd`` extension objects; capability names are also
    written as integer ``skills`` and battery as ``max_distance``, so VROOM applies them.
    """
    labels: set[str] = set()
    for v in problem.vehicles:
        labels |= {x for x in v.capabilities if not x.startswith("kind:")}
    for r in problem.requests:
        labels |= {x for x in r.required_capabilities if not x.startswith("kind:")}
    skills = _Skills(labels)
    vids = _int_ids([v.id for v in problem.vehicles])
    pids = _int_ids([r.id for r in problem.requests])
    matrices: dict[str, Any] = {}
    for name, prof in problem.profiles.items():
        m: dict[str, Any] = {"durations": prof.durations.tolist(), "costs": prof.costs.tolist()}
        if prof.distances is not None:
            m["distances"] = prof.distances.tolist()
        matrices[name] = m
    return {
        "vehicles": [_vehicle(v, i, skills) for v, i in zip(problem.vehicles, vids, strict=True)],
        "shipments": [_shipment(r, i, skills) for r, i in zip(problem.requests, pids, strict=True)],
        "matrices": matrices,
        "fleetd": {"objective": problem.objective.value},
    }

"""The OR-Tools routing model of a planning problem, built from matrices only.

Nodes: one per distinct start and end location, and "nowhere" for vehicles without a
start or end (zero travel to and from it), then a pickup and a drop-off node
per request (a drop-off only for requests already on board). Every transit is handed to
OR-Tools as a node matrix or a unary vector (``RegisterTransitMatrix`` /
``RegisterUnaryTransitVector``), never a per-arc Python callback: those cost more than a
whole one-second search on 100-task problems.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from ortools.constraint_solver import pywrapcp

from dispatcher.planner.model import (
    HORIZON,
    Objective,
    Plan,
    Problem,
    Request,
    StopKind,
    Vehicle,
)
from dispatcher.planner.options import PlannerOptions
from dispatcher.planner.schedule import waiting_cost, weight_of

IntArray = npt.NDArray[np.int64]


@dataclass(slots=True)
class RoutingModel:
    """An OR-Tools model plus the maps between its indices and the problem."""

    manager: pywrapcp.RoutingIndexManager
    routing: pywrapcp.RoutingModel
    vehicles: list[int]  # model vehicle -> index into problem.vehicles
    tasks: list[tuple[int, StopKind]]  # node - first_task -> (request index, kind)
    first_task: int
    node_of: dict[tuple[int, StopKind], int]


@dataclass(frozen=True, slots=True)
class _Nodes:
    loc: IntArray  # location per node, -1 for "nowhere"
    service: IntArray
    starts: list[int]
    ends: list[int]
    tasks: list[tuple[int, StopKind]]
    first_task: int


def _layout(problem: Problem, vehicles: Sequence[int], requests: Sequence[int]) -> _Nodes:
    locs: list[int] = []
    depot: dict[tuple[str, int], int] = {}

    def depot_node(tag: str, location: int | None) -> int:
        # Every node that is not a task is some vehicle's start or end: OR-Tools would
        # make any other node a mandatory visit.
        key = ("nowhere", -1) if location is None else (tag, location)
        if key not in depot:
            depot[key] = len(locs)
            locs.append(-1 if location is None else location)
        return depot[key]

    starts = [depot_node("s", problem.vehicles[v].start) for v in vehicles]
    ends = [depot_node("e", problem.vehicles[v].end) for v in vehicles]
    first_task = len(locs)
    service = [0] * first_task
    tasks: list[tuple[int, StopKind]] = []
    for r in requests:
        req = problem.requests[r]
        if req.onboard_vehicle is None:
            tasks.append((r, StopKind.PICKUP))
            locs.append(req.pickup)
            service.append(req.pickup_service)
        tasks.append((r, StopKind.DROPOFF))
        locs.append(req.dropoff)
        service.append(req.dropoff_service)
    return _Nodes(np.asarray(locs), np.asarray(service), starts, ends, tasks, first_task)


def _node_array(matrix: IntArray, loc: IntArray) -> IntArray:
    safe = np.maximum(loc, 0)
    sub: IntArray = matrix[np.ix_(safe, safe)].astype(np.int64)
    sub[loc < 0, :] = 0
    sub[:, loc < 0] = 0
    return sub


def _node_matrix(matrix: IntArray, loc: IntArray) -> list[list[int]]:
    out: list[list[int]] = _node_array(matrix, loc).tolist()
    return out


@dataclass(frozen=True, slots=True)
class NodeMatrices:
    """The node layout and, per profile, its cost / time / distance node matrices as the
    lists OR-Tools takes; computed once and shared by the models of one re-plan."""

    nodes: _Nodes
    cost: dict[str, list[list[int]]]
    time: dict[str, list[list[int]]]
    distance: dict[str, list[list[int]] | None]


def node_matrices(
    problem: Problem, vehicles: Sequence[int], requests: Sequence[int]
) -> NodeMatrices:
    """Lay out the nodes of ``requests`` on ``vehicles`` and cut their matrices."""
    nodes = _layout(problem, vehicles, requests)
    battery = any(problem.vehicles[v].range_m is not None for v in vehicles)
    cost, timed, dist = {}, {}, {}
    for name in sorted({problem.vehicles[v].profile for v in vehicles}):
        prof = problem.profiles[name]
        cost[name] = _node_matrix(prof.costs, nodes.loc)
        # Converted to lists once: the list round trip took a second on 2,000 nodes.
        timed[name] = (_node_array(prof.durations, nodes.loc) + nodes.service[:, None]).tolist()
        same = prof.distances is None or np.array_equal(prof.distances, prof.costs)
        dist[name] = (
            None
            if not battery
            else cost[name]
            if same
            else _node_matrix(prof.distance_matrix(), nodes.loc)
        )
    return NodeMatrices(nodes, cost, timed, dist)


def build(
    problem: Problem,
    vehicles: Sequence[int],
    requests: Sequence[int],
    allowed: dict[int, list[int]],
    options: PlannerOptions,
    prepared: NodeMatrices | None = None,
) -> RoutingModel:
    """The model for ``requests`` on ``vehicles`` (indices into the problem).

    ``allowed`` maps a request index to the model-vehicle indices it may use (absent: any).
    ``prepared``: the :func:`node_matrices` of the same vehicles and requests, if at hand.
    """
    mats = prepared or node_matrices(problem, vehicles, requests)
    nodes = mats.nodes
    manager = pywrapcp.RoutingIndexManager(len(nodes.loc), len(vehicles), nodes.starts, nodes.ends)
    routing = pywrapcp.RoutingModel(manager)
    node_of = {task: nodes.first_task + i for i, task in enumerate(nodes.tasks)}
    model = RoutingModel(manager, routing, list(vehicles), nodes.tasks, nodes.first_task, node_of)
    cost_cb = {name: routing.RegisterTransitMatrix(m) for name, m in mats.cost.items()}
    time_cb = {name: routing.RegisterTransitMatrix(m) for name, m in mats.time.items()}
    dist_cb = {
        name: cost_cb[name] if m is mats.cost[name] else routing.RegisterTransitMatrix(m)
        for name, m in mats.distance.items()
        if m is not None
    }
    fleet = [problem.vehicles[v] for v in vehicles]
    for m, veh in enumerate(fleet):
        routing.SetArcCostEvaluatorOfVehicle(cost_cb[veh.profile], m)
        routing.SetFixedCostOfVehicle(veh.fixed_cost, m)
    time_dim = _time_dimension(routing, fleet, time_cb)
    _load_dimensions(model, problem, fleet)
    if dist_cb:
        _battery_dimension(routing, fleet, dist_cb)
    _tasks(model, problem, fleet, time_dim, allowed, options)
    return model


def _time_dimension(
    routing: pywrapcp.RoutingModel, fleet: Sequence[Vehicle], time_cb: dict[str, int]
) -> pywrapcp.RoutingDimension:
    routing.AddDimensionWithVehicleTransits(
        [time_cb[v.profile] for v in fleet], HORIZON, HORIZON, False, "time"
    )
    dim = routing.GetDimensionOrDie("time")
    for m, veh in enumerate(fleet):
        dim.CumulVar(routing.Start(m)).SetRange(veh.ready_time, min(veh.available_until, HORIZON))
        dim.CumulVar(routing.End(m)).SetMax(min(veh.available_until, HORIZON))
    return dim


def _load_dimensions(model: RoutingModel, problem: Problem, fleet: Sequence[Vehicle]) -> None:
    routing = model.routing
    dims = max(len(v.capacity) for v in fleet)
    size = model.first_task + len(model.tasks)
    for k in range(dims):
        demand = [0] * size
        for i, (r, kind) in enumerate(model.tasks):
            req = problem.requests[r]
            amount = req.demand[k] if k < len(req.demand) else 0
            demand[model.first_task + i] = amount if kind is StopKind.PICKUP else -amount
        cb = routing.RegisterUnaryTransitVector(demand)
        caps = [v.capacity[k] if k < len(v.capacity) else 0 for v in fleet]
        routing.AddDimensionWithVehicleCapacity(cb, 0, caps, False, f"load{k}")
        dim = routing.GetDimensionOrDie(f"load{k}")
        for m, veh in enumerate(fleet):
            carried = sum(
                (req.demand[k] if k < len(req.demand) else 0)
                for req in problem.requests
                if req.onboard_vehicle == veh.id
            )
            dim.CumulVar(routing.Start(m)).SetValue(carried)
    if any(v.max_tasks is not None for v in fleet):
        ones = [0] * model.first_task + [1] * len(model.tasks)
        cb = routing.RegisterUnaryTransitVector(ones)
        caps = [len(model.tasks) if v.max_tasks is None else v.max_tasks for v in fleet]
        routing.AddDimensionWithVehicleCapacity(cb, 0, caps, True, "tasks")


def _battery_dimension(
    routing: pywrapcp.RoutingModel, fleet: Sequence[Vehicle], dist_cb: dict[str, int]
) -> None:
    caps = [HORIZON if v.range_m is None else max(0, v.range_m - v.reserve_m) for v in fleet]
    routing.AddDimensionWithVehicleTransitAndCapacity(
        [dist_cb[v.profile] for v in fleet], 0, caps, True, "battery"
    )


def _set_windows(var: pywrapcp.IntVar, windows: Sequence[tuple[int, int]]) -> None:
    var.SetRange(windows[0][0], min(windows[-1][1], HORIZON))
    for (_, end), (begin, _) in itertools.pairwise(windows):
        if begin - 1 >= end + 1:
            var.RemoveInterval(end + 1, begin - 1)


def unserved_penalty(problem: Problem, req: Request, options: PlannerOptions, big: int) -> int:
    """What leaving ``req`` unserved adds to the objective (per node of the request).

    ``cost``: like VROOM, priority first, then the number served, then cost: ``big``
    outweighs any route cost and each priority point outweighs any count of tasks.
    ``waiting``: outweighs travel, plus ``unserved_wait_s`` of priority-weighted waiting.
    """
    if problem.objective is Objective.COST:
        return big + req.priority * big * (len(problem.requests) + 1)
    weight = weight_of(req.priority, options.waiting_weights)
    return big + weight * options.unserved_wait_s


def _tasks(
    model: RoutingModel,
    problem: Problem,
    fleet: Sequence[Vehicle],
    time_dim: pywrapcp.RoutingDimension,
    allowed: dict[int, list[int]],
    options: PlannerOptions,
) -> None:
    routing, manager = model.routing, model.manager
    solver = routing.solver()
    big = cost_bound(problem, fleet, len(model.tasks))
    for (r, kind), node in model.node_of.items():
        req = problem.requests[r]
        index = manager.NodeToIndex(node)
        windows = req.pickup_windows if kind is StopKind.PICKUP else req.dropoff_windows
        _set_windows(time_dim.CumulVar(index), windows)
        if r in allowed and len(allowed[r]) < len(fleet):
            # SetAllowedVehiclesForIndex's Span argument does not bind in ortools 9.15's
            # Python wrapper; restricting the vehicle variable is the same constraint
            # (-1: the request may still go unserved).
            routing.VehicleVar(index).SetValues([*allowed[r], -1])
        routing.AddDisjunction([index], unserved_penalty(problem, req, options, big))
        if kind is StopKind.DROPOFF and req.onboard_vehicle is None:
            pickup = manager.NodeToIndex(model.node_of[(r, StopKind.PICKUP)])
            routing.AddPickupAndDelivery(pickup, index)
            solver.Add(routing.VehicleVar(pickup) == routing.VehicleVar(index))
            solver.Add(time_dim.CumulVar(pickup) <= time_dim.CumulVar(index))
        if kind is StopKind.PICKUP and problem.objective is Objective.WAITING:
            weight = weight_of(req.priority, options.waiting_weights)
            time_dim.SetCumulVarSoftUpperBound(index, req.requested_time, weight)


def cost_bound(problem: Problem, fleet: Sequence[Vehicle], tasks: int) -> int:
    """More than any set of routes can cost: every arc at the dearest, every fixed cost."""
    # One max per profile, not per vehicle: on a 2,000-node matrix and 250 vehicles the
    # per-vehicle scan took 1.6 s of a 1 s limit.
    dearest = max(
        int(problem.profiles[name].costs.max(initial=0)) for name in {v.profile for v in fleet}
    )
    return (tasks + 2 * len(fleet) + 1) * max(dearest, 1) + sum(v.fixed_cost for v in fleet) + 1


def plan_score(
    problem: Problem, plan: Plan, fleet: Sequence[Vehicle], options: PlannerOptions
) -> int:
    """The model's objective for a timed plan: route costs, priority-weighted waiting
    (live objective) and the penalty of each unserved request, as OR-Tools counts them."""
    requests = {r.id: r for r in problem.requests}
    nodes = sum(1 if r.onboard_vehicle else 2 for r in problem.requests)
    big = cost_bound(problem, fleet, nodes) if fleet else 1
    total = sum(route.cost for route in plan.routes)
    for u in plan.unserved:
        req = requests[u.request_id]
        total += unserved_penalty(problem, req, options, big) * (1 if req.onboard_vehicle else 2)
    if problem.objective is Objective.WAITING:
        total += sum(waiting_cost(r, requests, options.waiting_weights) for r in plan.routes)
    return total

"""The ``optimise`` strategy: OR-Tools routing, seeded by VROOM or the previous plan.

Flow: filter and prune candidate vehicles; build one OR-Tools model; take a first
solution (VROOM's, when the problem fits VROOM's model, else the previous plan's, else
OR-Tools' parallel cheapest insertion); improve it with guided local search for the rest
of the time limit. Re-planning with a previous plan solves twice: once with every
previously assigned request kept on its vehicle (new requests free), once free, seeded
with the first; the free plan wins only if it is better by the improvement threshold.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from ortools.constraint_solver import pywrapcp, routing_enums_pb2

from dispatcher.planner.eligibility import Candidates, candidates
from dispatcher.planner.greedy import greedy
from dispatcher.planner.insertion import insert_requests
from dispatcher.planner.model import Objective, Plan, Problem, StopKind
from dispatcher.planner.options import PlannerOptions
from dispatcher.planner.report import plan_from_visits
from dispatcher.planner.routing_model import RoutingModel, build, node_matrices, plan_score
from dispatcher.planner.vroom_seed import vroom_routes

#: Below this much time left after the VROOM seed, the search is skipped.
_MIN_SEARCH_S = 0.05

#: Seconds per node pair to cut the node matrices and build the OR-Tools model
#: (measured: 4.6 s for 1,000 requests, 2,001 nodes, on the loaded 2-core machine).
_BUILD_S_PER_PAIR = 1.2e-6


def _search_floor(requests: Sequence[int]) -> float:
    """Below this much time left after VROOM's seed, searching is not worth starting:
    building the model would take most of it (half for building, half for searching)."""
    nodes = 2 * len(requests) + 1
    return max(_MIN_SEARCH_S, 2 * _BUILD_S_PER_PAIR * nodes * nodes)


def _share(options: PlannerOptions, deadline: float, share: float) -> float:
    """Seconds a search may take: ``share`` of what is left before ``deadline``; under a
    deterministic stop, ``share`` of the whole limit (a cap, the solution count stops it)."""
    if options.deterministic:
        return max(0.01, share * options.time_limit_s)
    left = deadline - time.monotonic()
    return max(0.01, left) if share >= 1.0 else share * max(0.0, left)


#: Above this many vehicles or requests, a greedy plan seeds the search.
_LARGE = 150

#: Per model vehicle, its ordered (request index, kind) visits.
Routes = list[list[tuple[int, StopKind]]]


def _params(
    seconds: float, solution_limit: int | None = None
) -> pywrapcp.DefaultRoutingSearchParameters:
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = (
        routing_enums_pb2.FirstSolutionStrategy.PARALLEL_CHEAPEST_INSERTION
    )
    params.local_search_metaheuristic = (
        routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    )
    params.time_limit.FromMilliseconds(max(1, int(seconds * 1000)))
    if solution_limit is not None:
        params.solution_limit = solution_limit
    return params


def _to_indices(model: RoutingModel, routes: Routes) -> list[list[int]]:
    out: list[list[int]] = [[] for _ in model.vehicles]
    for m, route in enumerate(routes):
        out[m] = [
            model.manager.NodeToIndex(model.node_of[task])
            for task in route
            if task in model.node_of
        ]
    return out


def _read(model: RoutingModel, assignment: pywrapcp.Assignment) -> Routes:
    routing, manager = model.routing, model.manager
    routes: Routes = []
    for m in range(len(model.vehicles)):
        index = routing.Start(m)
        visits: list[tuple[int, StopKind]] = []
        index = assignment.Value(routing.NextVar(index))
        while not routing.IsEnd(index):
            visits.append(model.tasks[manager.IndexToNode(index) - model.first_task])
            index = assignment.Value(routing.NextVar(index))
        routes.append(visits)
    return routes


def _solve_model(
    model: RoutingModel, seeds: Sequence[Routes], seconds: float, solution_limit: int | None
) -> tuple[Routes, int] | None:
    """Close the model, start from the best seed that reads as feasible, search (until
    ``seconds`` pass or, when set, ``solution_limit`` solutions were found)."""
    params = _params(seconds, solution_limit)
    model.routing.CloseModelWithParameters(params)
    start = None
    for seed in seeds:
        start = model.routing.ReadAssignmentFromRoutes(_to_indices(model, seed), True)
        if start is not None:
            break
    if start is not None:
        solution = model.routing.SolveFromAssignmentWithParameters(start, params)
    else:
        solution = model.routing.SolveWithParameters(params)
    if solution is None:
        return None
    return _read(model, solution), int(solution.ObjectiveValue())


def _allowed(
    found: Candidates, vehicles: Sequence[int], lock: Mapping[int, int] | None
) -> dict[int, list[int]]:
    model_index = {v: m for m, v in enumerate(vehicles)}
    allowed: dict[int, list[int]] = {}
    for r, arr in found.by_request.items():
        if lock is not None and r in lock and lock[r] in arr:
            allowed[r] = [model_index[lock[r]]]
        else:
            allowed[r] = [model_index[int(v)] for v in arr]
    return allowed


def _previous_routes(
    problem: Problem, previous: Plan, vehicles: Sequence[int], found: Candidates
) -> Routes:
    """The previous plan's routes, keeping only the requests still allowed on their
    vehicle (a vehicle that refused a request since is no longer among its candidates:
    a seed that kept it there would be infeasible, and returned as is when it is the best
    plan at hand)."""
    req_index = {r.id: i for i, r in enumerate(problem.requests)}
    by_vehicle = {r.vehicle_id: r for r in previous.routes}
    routes: Routes = []
    for v in vehicles:
        old = by_vehicle.get(problem.vehicles[v].id)
        stops = old.stops if old is not None else ()
        routes.append(
            [
                (r, s.kind)
                for s in stops
                if (r := req_index.get(s.request_id)) is not None
                and r in found.by_request
                and v in found.by_request[r]
            ]
        )
    return routes


def optimise(
    problem: Problem,
    options: PlannerOptions,
    previous: Plan | None = None,
    given: Mapping[str, Sequence[str]] | None = None,
) -> Plan:
    """Solve ``problem`` within ``options.time_limit_s`` (see the module docstring).

    Python's cyclic garbage collector is held off for the solve: a full (generation 2)
    collection walks every container object of the process, and one that fell inside a
    1 s plan took 0.24-0.27 s of it (measured at 1,000 shipments, with the caller holding
    the problem's JSON). The solve allocates a bounded amount; what it leaves is collected
    at the next collection after it. Another thread's solve may have turned it off
    already: only the one that turned it off turns it back on.
    """
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        return _optimise(problem, options, previous, given)
    finally:
        if paused:
            gc.enable()


def _optimise(
    problem: Problem,
    options: PlannerOptions,
    previous: Plan | None,
    given: Mapping[str, Sequence[str]] | None,
) -> Plan:
    began = time.monotonic()
    sticky = previous.assignment() if previous is not None else None
    found = candidates(problem, options.max_candidates, given, options.prune_above, sticky)
    vehicles = found.vehicles_used()
    requests = sorted(found.by_request)
    if not requests:
        return plan_from_visits(problem, {}, found.unserved, "optimise", {})
    deadline = began + options.time_limit_s
    seeds: list[Routes] = []
    stats: dict[str, float] = {"model_vehicles": len(vehicles), "model_requests": len(requests)}
    lock = _lock_map(problem, previous, requests) if previous is not None else None
    if previous is not None:
        # New requests are inserted for at most a quarter of the time limit; the search
        # places any left over.
        # (Deterministic stop: no deadline, every new request is tried.)
        budget = None if options.deterministic else time.monotonic() + 0.25 * options.time_limit_s
        seeds.append(_warm_start(problem, previous, vehicles, found, budget))
    pruned = any(len(found.by_request[r]) < len(vehicles) for r in requests)
    late_seed = None
    # Not under a deterministic stop: VROOM's routes for one input vary from run to run
    # (measured with pyvroom 1.15: 2-4 different seeds in 30 runs of a 12-shipment
    # problem at level 1, one thread, no timeout; at level 0 on 30 shipments too), and
    # the search polishes whichever it gets into a different plan. OR-Tools' own first
    # solution (or the greedy plan, on large problems) is the same every time.
    if options.use_vroom and not options.deterministic and not pruned and previous is None:
        late_seed = _vroom_seed(problem, options, vehicles, requests, stats, began)
    elif not seeds and (len(vehicles) > _LARGE or len(requests) > _LARGE):
        # OR-Tools' own construction may not finish inside the limit on a large fleet;
        # the greedy plan is a feasible start found in a fraction of it.
        seeds.append(_greedy_routes(problem, options, given, vehicles))
        stats["greedy_seed_s"] = round(time.monotonic() - began, 3)
    best = _search(
        problem, found, vehicles, requests, seeds, lock, options, deadline, stats, late_seed
    )
    stats["solve_s"] = round(time.monotonic() - began, 3)
    if best is None and not seeds:
        stats["fallback_greedy"] = 1
        fallback = greedy(problem, options, given)
        return replace(fallback, strategy="optimise", stats={**fallback.stats, **stats})
    return _best_plan(
        problem, vehicles, found, [best] if best is not None else [], seeds, options, stats
    )


def _vroom_seed(
    problem: Problem,
    options: PlannerOptions,
    vehicles: Sequence[int],
    requests: Sequence[int],
    stats: dict[str, float],
    began: float,
) -> Callable[[float], Routes | None]:
    """VROOM's routes as a seed, found within the budget the search gives it."""

    def late_seed(budget: float) -> Routes | None:
        level = (
            options.vroom_level_cost
            if problem.objective is Objective.COST
            else options.vroom_level_waiting
        )
        seeded = vroom_routes(
            problem,
            vehicles,
            requests,
            budget,
            options.vroom_threads,
            level,
            options.vroom_fit_level,
        )
        stats["vroom_seed_s"] = round(time.monotonic() - began, 3)
        return seeded

    return late_seed


def _best_plan(
    problem: Problem,
    vehicles: Sequence[int],
    found: Candidates,
    searched: list[Routes],
    seeds: list[Routes],
    options: PlannerOptions,
    stats: dict[str, float],
) -> Plan:
    """The lowest-objective plan among the search result and the seeds.

    The search never returns worse than the seed it read, but if it ran out of time
    before reading one, the seed itself may be the best plan found.
    """
    plans = [
        plan_from_visits(
            problem,
            {vehicles[m]: route for m, route in enumerate(routes) if route},
            found.unserved,
            "optimise",
            stats,
        )
        for routes in searched + seeds
    ]
    if len(plans) == 1:
        return plans[0]  # nothing to compare (scoring reads whole matrices: 10 ms at 1,000)
    fleet = [problem.vehicles[v] for v in vehicles]
    return min(plans, key=lambda plan: plan_score(problem, plan, fleet, options))


def _greedy_routes(
    problem: Problem,
    options: PlannerOptions,
    given: Mapping[str, Sequence[str]] | None,
    vehicles: Sequence[int],
) -> Routes:
    plan = greedy(problem, options, given)
    req_index = {r.id: i for i, r in enumerate(problem.requests)}
    by_vehicle = {r.vehicle_id: r for r in plan.routes}
    routes: Routes = []
    for v in vehicles:
        route = by_vehicle.get(problem.vehicles[v].id)
        stops = route.stops if route is not None else ()
        routes.append([(req_index[s.request_id], s.kind) for s in stops])
    return routes


def _warm_start(
    problem: Problem,
    previous: Plan,
    vehicles: Sequence[int],
    found: Candidates,
    until: float | None,
) -> Routes:
    """The previous plan's routes with the requests new since then inserted."""
    routes = _previous_routes(problem, previous, vehicles, found)
    kept = {r for route in routes for r, _ in route}
    new = [r for r in found.by_request if r not in kept]
    by_vehicle = {vehicles[m]: route for m, route in enumerate(routes)}
    grown = insert_requests(problem, by_vehicle, new, found.by_request, deadline=until)
    return [grown.get(v, []) for v in vehicles]


def _polish_reserve(options: PlannerOptions, requests: Sequence[int]) -> float:
    """Time kept from VROOM for the OR-Tools search: ``1 - vroom_share`` of the limit,
    or nothing when that is under ``min_polish_s`` or under what building the model
    takes (too little to build and search; measured: VROOM's routes at its full budget
    beat them)."""
    reserve = (1.0 - options.vroom_share) * options.time_limit_s
    floor = max(options.min_polish_s, _search_floor(requests))
    return reserve if reserve >= floor else 0.0


#: Seconds kept, per request, after VROOM's seed for turning routes into the plan
#: (schedules, the score of each candidate plan): measured 25-40 ms at 1,000 requests.
_FINISH_S_PER_REQUEST = 5e-5


def _finish_reserve(requests: Sequence[int]) -> float:
    """Time the plan still needs once the last search or seed returns."""
    return 0.01 + _FINISH_S_PER_REQUEST * len(requests)


def _vroom_budget(
    problem: Problem, options: PlannerOptions, left: float, requests: Sequence[int]
) -> float:
    """VROOM's share of the ``left`` seconds. Under the live objective VROOM only builds a
    start (it cannot see waiting), so half the time stays for the search. When no search
    follows, VROOM's routes are the plan: the time to read them into it is kept back, so
    the plan as a whole keeps to the limit."""
    if problem.objective is Objective.WAITING:
        return 0.5 * left
    reserve = _polish_reserve(options, requests)
    if reserve == 0.0:
        reserve = _finish_reserve(requests)
    return max(0.0, left - reserve)


def _lock_map(problem: Problem, previous: Plan, requests: Sequence[int]) -> dict[int, int]:
    vehicle_index = {v.id: i for i, v in enumerate(problem.vehicles)}
    was = previous.assignment()
    lock: dict[int, int] = {}
    for r in requests:
        vid = was.get(problem.requests[r].id)
        if vid is not None and vid in vehicle_index:
            lock[r] = vehicle_index[vid]
    return lock


def _search(
    problem: Problem,
    found: Candidates,
    vehicles: Sequence[int],
    requests: Sequence[int],
    seeds: list[Routes],
    lock: Mapping[int, int] | None,
    options: PlannerOptions,
    deadline: float,
    stats: dict[str, float],
    late_seed: Callable[[float], Routes | None] | None = None,
) -> Routes | None:
    """One free search, or (re-planning) a stable search then a free one that must win
    by the improvement threshold. ``late_seed`` is called first with the share of the
    remaining time it may use; its routes join ``seeds`` (and are the answer when too
    little time is left to search)."""
    stable: tuple[Routes, int] | None = None
    if late_seed is not None:
        # VROOM first, on most of the limit: it is the stronger constructor, and on a
        # short limit its routes are the plan; the search polishes in what is left.
        seeded = late_seed(_vroom_budget(problem, options, deadline - time.monotonic(), requests))
        if seeded is not None:
            seeds.insert(0, seeded)
        left = deadline - time.monotonic()
        if seeded is not None and not options.deterministic and left < _search_floor(requests):
            return None
    mats = node_matrices(problem, vehicles, requests)
    if lock:
        model = build(problem, vehicles, requests, _allowed(found, vehicles, lock), options, mats)
        stable = _solve_model(model, seeds, _share(options, deadline, 0.4), options.solution_limit)
        if stable is not None:
            seeds = [stable[0], *seeds]
            stats["stable_objective"] = stable[1]
    model = build(problem, vehicles, requests, _allowed(found, vehicles, None), options, mats)
    free = _solve_model(model, seeds, _share(options, deadline, 1.0), options.solution_limit)
    if free is not None:
        stats["objective"] = free[1]
    if stable is None:
        return None if free is None else free[0]
    if free is None or free[1] >= stable[1] * (1.0 - options.improvement_threshold):
        stats["kept_assignment"] = 1
        return stable[0]
    return free[0]

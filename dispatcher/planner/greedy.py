"""The ``greedy`` strategy: first come first served, nearest available eligible vehicle.

What the seed designs do, kept for comparison: requests in order of requested pickup
time; each goes to the eligible vehicle that can start its pickup soonest after finishing
what it already has, appended to that vehicle's route (no pooling, no reordering).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dispatcher.planner.eligibility import candidates
from dispatcher.planner.model import Plan, Problem, Route, StopKind, Unserved, UnservedReason
from dispatcher.planner.options import PlannerOptions
from dispatcher.planner.report import plan_from_visits
from dispatcher.planner.schedule import Infeasible, schedule


def greedy(
    problem: Problem,
    options: PlannerOptions,
    given: Mapping[str, Sequence[str]] | None = None,
) -> Plan:
    """Assign requests one by one (see the module docstring)."""
    found = candidates(problem, options.max_candidates, given, options.prune_above)
    visits: dict[int, list[tuple[int, StopKind]]] = {}
    onboard = [r for r in found.by_request if problem.requests[r].onboard_vehicle is not None]
    for r in sorted(onboard, key=lambda r: problem.requests[r].dropoff_windows[-1][1]):
        v = int(found.by_request[r][0])
        visits.setdefault(v, []).append((r, StopKind.DROPOFF))
    unserved = list(found.unserved)
    fresh = [r for r in found.by_request if problem.requests[r].onboard_vehicle is None]
    for r in sorted(fresh, key=lambda r: (problem.requests[r].requested_time, r)):
        best: tuple[int, int] | None = None
        for v in found.by_request[r]:
            route = _try(problem, int(v), visits.get(int(v), []), r)
            if route is not None and (best is None or route.stops[-2].start < best[0]):
                best = (route.stops[-2].start, int(v))
        if best is None:
            unserved.append(Unserved(problem.requests[r].id, UnservedReason.NOT_FOUND))
            continue
        visits.setdefault(best[1], []).extend([(r, StopKind.PICKUP), (r, StopKind.DROPOFF)])
    return plan_from_visits(problem, visits, unserved, "greedy", {})


def _try(problem: Problem, v: int, current: list[tuple[int, StopKind]], r: int) -> Route | None:
    seq = [
        (problem.requests[i], k) for i, k in [*current, (r, StopKind.PICKUP), (r, StopKind.DROPOFF)]
    ]
    timed = schedule(problem, problem.vehicles[v], seq)
    return None if isinstance(timed, Infeasible) else timed

"""Turning visit orders into a :class:`Plan`: timed routes plus every unserved request."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dispatcher.planner.model import Plan, Problem, Route, StopKind, Unserved, UnservedReason
from dispatcher.planner.schedule import Infeasible, schedule


def plan_from_visits(
    problem: Problem,
    visits: Mapping[int, Sequence[tuple[int, StopKind]]],
    unserved: Sequence[Unserved],
    strategy: str,
    stats: dict[str, float],
) -> Plan:
    """Time each vehicle's visits (``vehicle index -> [(request index, kind)]``).

    A request in no route and not already in ``unserved`` is reported ``not_found``: no
    request is dropped silently. A route that fails its own timing (which would be a
    solver bug) is not returned; its requests are reported ``not_found`` and counted in
    ``stats["rejected_routes"]``.
    """
    routes: list[Route] = []
    for v in sorted(visits):
        seq = [(problem.requests[r], kind) for r, kind in visits[v]]
        timed = schedule(problem, problem.vehicles[v], seq)
        if isinstance(timed, Infeasible):
            stats["rejected_routes"] = stats.get("rejected_routes", 0) + 1
            continue
        if timed.stops:
            routes.append(timed)
    served = {s.request_id for r in routes for s in r.stops}
    reported = {u.request_id for u in unserved}
    missing = [
        Unserved(req.id, UnservedReason.NOT_FOUND)
        for req in problem.requests
        if req.id not in served and req.id not in reported
    ]
    return Plan(tuple(routes), (*unserved, *missing), strategy, stats)

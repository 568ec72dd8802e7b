"""Cheapest feasible insertion of requests into existing routes (the re-plan warm start).

A re-plan starts from the previous plan's routes; requests that are new since then are
inserted here, each where its pickup can start soonest (then least added cost), as a
pickup immediately followed by its drop-off at some position of one of the ``nearest``
candidate vehicles (by travel time from their start to the pickup). OR-Tools' local
search then improves the whole.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from dispatcher.planner.model import Problem, Route, StopKind
from dispatcher.planner.schedule import Infeasible, schedule

Visits = list[tuple[int, StopKind]]


def _options(route: Visits, r: int) -> list[Visits]:
    pick, drop = (r, StopKind.PICKUP), (r, StopKind.DROPOFF)
    out = [[*route[:i], pick, drop, *route[i:]] for i in range(len(route) + 1)]
    if route:
        out.append([*route[:-1], pick, route[-1], drop])
    return out


def _timed(problem: Problem, v: int, visits: Visits) -> Route | None:
    seq = [(problem.requests[i], k) for i, k in visits]
    timed = schedule(problem, problem.vehicles[v], seq)
    return None if isinstance(timed, Infeasible) else timed


def insert_requests(
    problem: Problem,
    routes: dict[int, Visits],
    new: Sequence[int],
    allowed: Mapping[int, npt.NDArray[np.int64]],
    nearest: int = 6,
    deadline: float | None = None,
) -> dict[int, Visits]:
    """``routes`` (vehicle index -> visits) with each of ``new`` (request indices, in
    requested-time order) inserted where it fits best; a request that fits nowhere is
    left out (the search may still place it), and so is every request still waiting
    when ``deadline`` (``time.monotonic()``) passes."""
    out = {v: list(seq) for v, seq in routes.items()}
    for r in sorted(new, key=lambda r: problem.requests[r].requested_time):
        if deadline is not None and time.monotonic() > deadline:
            break
        best: tuple[int, int, int, Visits] | None = None
        for v in _nearest(problem, r, allowed.get(r, np.zeros(0, np.int64)), nearest):
            current = out.get(v, [])
            base = _timed(problem, v, current)
            base_cost = 0 if base is None else base.cost
            for visits in _options(current, r):
                timed = _timed(problem, v, visits)
                if timed is None:
                    continue
                pickup = next(
                    s.start for s in timed.stops if s.request_id == problem.requests[r].id
                )
                key = (pickup, timed.cost - base_cost, v, visits)
                if best is None or key[:2] < best[:2]:
                    best = key
        if best is not None:
            out[best[2]] = best[3]
    return out


def _nearest(problem: Problem, r: int, vehicles: npt.NDArray[np.int64], k: int) -> list[int]:
    pickup = problem.requests[r].pickup

    def away(v: int) -> int:
        veh = problem.vehicles[v]
        if veh.start is None:
            return 0
        return int(problem.profiles[veh.profile].durations[veh.start, pickup])

    return sorted((int(v) for v in vehicles), key=away)[:k]

"""Splitting a problem too large for one VROOM construction into parts that fit (pure).

VROOM's constructions grow about with the 2.6th power of the number of shipments (see
:mod:`dispatcher.planner.vroom_seed`): on 1,000 shipments level 0's four alone took 29 s
under a 10 s limit. Cut into ``k`` parts of ``n / k`` shipments, the constructions take
about ``k * (n / k) ** 2.6``, i.e. ``k ** 1.6`` times less. :func:`parts_needed` picks the
smallest ``k`` that fits the budget.

How requests and vehicles are split, with nothing but the problem's matrices (no
coordinates): ``k`` centres are chosen among the pickups by farthest-point sampling on the
symmetrised travel times; each request joins the centre nearest its pickup and drop-off,
with sizes capped so parts stay balanced (a part bigger than planned would blow its time);
vehicles are dealt out in proportion to their parts' requests, each to the part whose
centre it reaches soonest among those still short of vehicles. A request a part leaves
unassigned gets a second chance in one last run over the vehicles no part used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from dispatcher.planner.model import Problem

IntArray = npt.NDArray[np.int64]

#: Parts smaller than this are not worth a VROOM run of their own.
MIN_PART = 40


def parts_needed(shipments: int, per_init_s: float, inits: int, seconds: float) -> int:
    """The smallest ``k`` with ``k`` parts' constructions in ``seconds`` (at most
    ``shipments // MIN_PART``), given one construction's ``per_init_s`` on all of them,
    ``inits`` constructions per thread and growth ``n ** 2.6``."""
    most = max(1, shipments // MIN_PART)
    for k in range(1, most + 1):
        if k * inits * per_init_s * (1 / k) ** 2.6 <= seconds:
            return k
    return most


class _Symmetric:
    """Travel times made symmetric, ``(d[a, b] + d[b, a]) / 2``, for the rows and columns
    asked only (the whole matrix of a 1,000-shipment problem took 0.4 s to convert)."""

    def __init__(self, problem: Problem, profile: str) -> None:
        self._d = np.asarray(problem.profiles[profile].durations)

    def __call__(self, rows: IntArray, cols: IntArray) -> npt.NDArray[np.float64]:
        there = self._d[np.ix_(rows, cols)].astype(np.float64)
        back = self._d[np.ix_(cols, rows)].astype(np.float64)
        return (there + back.T) / 2


def _centres(dist: _Symmetric, points: IntArray, k: int) -> IntArray:
    """``k`` of ``points`` spread out: farthest-point sampling from the first."""
    chosen = [int(points[0])]
    near = dist(points, np.asarray(chosen[:1]))[:, 0]
    for _ in range(1, k):
        nxt = int(points[int(np.argmax(near))])
        chosen.append(nxt)
        near = np.minimum(near, dist(points, np.asarray([nxt]))[:, 0])
    return np.asarray(chosen, dtype=np.int64)


def split(
    problem: Problem, vehicles: Sequence[int], requests: Sequence[int], k: int
) -> list[tuple[list[int], list[int]]]:
    """``k`` (vehicles, requests) parts covering ``requests`` and ``vehicles`` once each.

    Every part gets at least one vehicle when there are enough; a part with no vehicle
    keeps its requests (they go to the last run with the vehicles no part used).
    """
    if k <= 1 or not requests:
        return [(list(vehicles), list(requests))]
    profile = problem.vehicles[vehicles[0]].profile if vehicles else next(iter(problem.profiles))
    dist = _Symmetric(problem, profile)
    pickups = np.asarray([problem.requests[r].pickup for r in requests], dtype=np.int64)
    drops = np.asarray([problem.requests[r].dropoff for r in requests], dtype=np.int64)
    k = min(k, len(requests))
    centres = _centres(dist, pickups, k)
    # Distance of each request to each centre: its pickup's and its drop-off's.
    cost = dist(pickups, centres) + dist(drops, centres)
    cap = math.ceil(len(requests) / k * 1.1)
    sizes = np.zeros(k, dtype=np.int64)
    owner = np.full(len(requests), -1, dtype=np.int64)
    # Most decided requests first (largest gap between their best and second-best part).
    ordered = np.sort(cost, axis=1)
    regret = ordered[:, 1] - ordered[:, 0] if k > 1 else ordered[:, 0]
    for i in np.argsort(-regret, kind="stable"):
        for c in np.argsort(cost[i], kind="stable"):
            if sizes[c] < cap:
                owner[i] = c
                sizes[c] += 1
                break
    parts_req = [[int(requests[int(i)]) for i in np.flatnonzero(owner == c)] for c in range(k)]
    # Vehicles in proportion to requests (largest remainders), each to the nearest part
    # still short of them.
    exact = [len(vehicles) * len(p) / len(requests) for p in parts_req]
    quota = [math.floor(q) for q in exact]
    for c in sorted(range(k), key=lambda c: quota[c] - exact[c])[: len(vehicles) - sum(quota)]:
        quota[c] += 1
    starts = np.asarray([problem.vehicles[v].start for v in vehicles], dtype=np.int64)
    to_centre = dist(starts, centres)
    parts_veh: list[list[int]] = [[] for _ in range(k)]
    for j in np.argsort(to_centre.min(axis=1), kind="stable"):
        short = [c for c in range(k) if len(parts_veh[c]) < quota[c]]
        pool = short or list(range(k))
        best = min(pool, key=lambda c: (to_centre[j, c], len(parts_veh[c])))
        parts_veh[best].append(int(vehicles[j]))
    return [(parts_veh[c], parts_req[c]) for c in range(k)]

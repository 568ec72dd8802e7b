"""A first solution from VROOM (pyvroom), for OR-Tools to improve.

VROOM builds good pickup-and-delivery routes fast; OR-Tools then searches on the model
VROOM cannot express (the soft pickup-time objective, per-request vehicle lists). Used
only when every constraint of the sub-problem maps onto VROOM's model: kind and
capabilities become skills, battery range becomes ``max_distance``. Requests already on
board (drop-off only) do not map, and neither do pruned candidate lists: then no seed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

# Imported with the planner, not on the first solve: pyvroom loads pandas, which took
# 3 s of the first 1 s plan when imported inside the time limit.
import vroom
from vroom.solution.solution import Solution

from dispatcher.planner.model import Problem, StopKind
from dispatcher.planner.vroom_parts import parts_needed, split

#: VROOM's times are unsigned 32-bit.
_VROOM_MAX = 2**32 - 1

#: VROOM's timeout bounds only its local search: each exploration level first runs all
#: of its construction heuristics to the end (4, 8, 12, 16, 24, 32 for levels 0-5, split
#: over the threads), so level 5 on 1,000 shipments ran 250 s under a 1 s timeout.
#: Seconds one construction takes on 200 shipments and how that grows with the number
#: of shipments (a power law), measured with pyvroom 1.15 on the loaded 2-core
#: development machine (0.18 s at 200, 1.7 s at 400, 11.6 s at 1,000 shipments, tight
#: windows). Used only to skip the probe (below) when the wanted level surely fits, with
#: a margin: wide windows made constructions several times slower (200 shipments, level 5
#: under a 9 s timeout: 16 s).
_INIT_S_AT_200 = 0.18
_INIT_GROWTH = 2.6
_INIT_MARGIN = 1.5

#: The share of VROOM's budget its constructions may take; the rest is its local search.
_INIT_SHARE = 1.0

#: A probe's timeout: its constructions only, no local search to speak of.
_PROBE_S = 0.001

#: The share of the budget the parts' constructions may take when a problem is cut into
#: parts (the rest: the parts' local search and the leftovers' run).
_PARTS_SHARE = 0.6


def _inits(level: int) -> int:
    return 4 * (level + 1) + (4 if level >= 4 else 0) + (4 if level >= 5 else 0)


def _per_thread(level: int, threads: int) -> int:
    return -(-_inits(level) // max(threads, 1))


def fitting_level(per_init_s: float, seconds: float, threads: int, wanted: int) -> int:
    """The highest exploration level up to ``wanted`` whose constructions, at
    ``per_init_s`` each, take at most a share of ``seconds`` (0 when none does)."""
    for level in range(min(max(wanted, 0), 5), 0, -1):
        if _per_thread(level, threads) * per_init_s <= _INIT_SHARE * seconds:
            return level
    return 0


def estimated_init_s(shipments: int) -> float:
    """An upper estimate of one VROOM construction's seconds on ``shipments``."""
    return float(_INIT_S_AT_200 * (max(shipments, 1) / 200) ** _INIT_GROWTH)


#: VROOM's timeout is shared out evenly among its searches (one construction, then its
#: local search), one after the other on each thread: a search that settles early gives
#: its time to no other. More searches than can settle in the limit lose to fewer settled
#: ones (pyvroom 1.15, 2 threads, generated instances: at 0.9 s level 1 beat level 5 by
#: 4 % on 100 shipments at load 7, level 5 beat level 1 on a quiet machine; docs/dispatch.md).
#: How long a search takes to settle depends on the instance and on the machine's load at
#: the time, so it is measured, not modelled: one search per thread first (the first
#: heuristics of VROOM's list), and its wall time decides how many more
#: searches fit the time left, with this margin: the first search took 0.7-1.4 times
#: the mean of eight on 100 shipments, and 16 searches in 0.95 s (each cut at 0.12 s)
#: lost 1 % to 8 (docs/dispatch.md).
_SETTLE_MARGIN = 1.2


def settling_searches(per_search_s: float, seconds: float, threads: int, most: int) -> int:
    """How many searches (whole rounds of ``threads``, at most ``most``) settle in
    ``seconds`` when one takes ``per_search_s``."""
    if per_search_s <= 0.0:
        return most
    rounds = int(max(seconds, 0.0) // (per_search_s * _SETTLE_MARGIN))
    return min(most, rounds * max(threads, 1))


def _tw(begin: int, end: int) -> object:
    return vroom.TimeWindow(max(0, begin), min(end, _VROOM_MAX))


def _skills(labels: set[str], table: dict[str, int]) -> set[int]:
    # Sorted: a set's order of strings follows PYTHONHASHSEED, and so would the numbers.
    return {table.setdefault(label, len(table) + 1) for label in sorted(labels)}


def _locations(problem: Problem, vehicles: Sequence[int], requests: Sequence[int]) -> list[int]:
    """The locations a sub-problem visits (vehicles' starts and ends, its stops)."""
    used = {problem.requests[r].pickup for r in requests}
    used |= {problem.requests[r].dropoff for r in requests}
    for v in vehicles:
        veh = problem.vehicles[v]
        used |= {x for x in (veh.start, veh.end) if x is not None}
    return sorted(used)


def _input(
    problem: Problem, vehicles: Sequence[int], requests: Sequence[int], compact: bool = False
) -> object:
    """VROOM's input; ``compact``: matrices cut to the locations used (a part of a large
    problem: handing VROOM the whole matrix for each part cost more than its solve)."""
    table: dict[str, int] = {}
    dims = max(len(problem.vehicles[v].capacity) for v in vehicles)
    vin = vroom.Input()
    keep = _locations(problem, vehicles, requests) if compact else None
    at: dict[int, int] = {x: i for i, x in enumerate(keep)} if keep is not None else {}

    def loc(x: int | None) -> int | None:
        return x if keep is None or x is None else at[x]

    def cut(m: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return m if keep is None else m[np.ix_(keep, keep)]

    for name in sorted({problem.vehicles[v].profile for v in vehicles}):
        prof = problem.profiles[name]
        vin.set_durations_matrix(name, cut(np.asarray(prof.durations)).astype(np.uint32))
        vin.set_costs_matrix(name, cut(np.asarray(prof.costs)).astype(np.uint32))
        vin.set_distances_matrix(name, cut(np.asarray(prof.distance_matrix())).astype(np.uint32))
    for m, v in enumerate(vehicles):
        veh = problem.vehicles[v]
        cap = list(veh.capacity) + [0] * (dims - len(veh.capacity))
        battery = None if veh.range_m is None else max(0, veh.range_m - veh.reserve_m)
        vin.add_vehicle(
            vroom.Vehicle(
                m,
                start=loc(veh.start),
                end=loc(veh.end),
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
                loc(req.pickup),
                default_service=req.pickup_service,
                time_windows=[_tw(a, b) for a, b in req.pickup_windows],
            ),
            vroom.ShipmentStep(
                r,
                loc(req.dropoff),
                default_service=req.dropoff_service,
                time_windows=[_tw(a, b) for a, b in req.dropoff_windows],
            ),
            amount=vroom.Amount(amount[:dims]),
            skills=_skills(labels, table),
            priority=int(req.priority),
        )
    return vin


Routes = list[list[tuple[int, StopKind]]]


def _run(vin: object, level: int, threads: int, seconds: float) -> dict[str, object]:
    solution = vin.solve(  # type: ignore[attr-defined]
        exploration_level=level, nb_threads=threads, timeout=timedelta(seconds=seconds)
    )
    data: dict[str, object] = solution.to_dict()
    return data


def _rank(data: dict[str, object]) -> tuple[int, int]:
    summary: dict[str, int] = data["summary"]  # type: ignore[assignment]
    return summary["unassigned"], summary["cost"]


def _run_searches(
    vin: object, searches: int, depth: int, threads: int, seconds: float
) -> dict[str, object]:
    """VROOM with ``searches`` searches of local-search ``depth`` (what an exploration
    level sets together: level L is depth L and :func:`_inits` (L) searches). Through
    pyvroom's own binding: its ``solve`` takes a ``depth`` but does not pass it on."""
    raw = vin._solve(  # type: ignore[attr-defined]
        nb_searches=searches,
        depth=depth,
        nb_threads=threads,
        timeout=timedelta(seconds=max(seconds, _PROBE_S)),
    )
    data: dict[str, object] = Solution(raw).to_dict()
    return data


def _timed_solve(vin: object, seconds: float, threads: int, level: int) -> dict[str, object]:
    """VROOM's best solution in about ``seconds``, at depth ``level`` and with as many of
    ``level``'s searches as can settle in the time (see :data:`_SETTLE_MARGIN`).

    One search per thread first, on the whole budget: its wall time is one search's on
    this instance at this moment (and bounds one construction, which VROOM's timeout does
    not). Then, when more fit, VROOM again with that many searches on the time left (its
    first searches repeat the first run's; the better of the two runs is kept). A quiet
    machine thus runs level 5's 32 searches where a loaded one runs a few, and a search
    that cannot settle in the limit is the only one run."""
    began = time.monotonic()
    first = _run_searches(vin, threads, level, threads, seconds)
    one = time.monotonic() - began
    left = seconds - one
    searches = settling_searches(one, left, threads, _inits(level))
    if searches <= threads:
        return first
    return min(first, _run_searches(vin, searches, level, threads, left), key=_rank)


def _parts_for(shipments: int, seconds: float, threads: int, fit: bool) -> int:
    """How many parts to cut the problem into so level 0's constructions fit (1: none)."""
    per_init = estimated_init_s(shipments) * _INIT_MARGIN
    if not fit or _per_thread(0, threads) * per_init <= _INIT_SHARE * seconds:
        return 1
    return parts_needed(shipments, per_init, _per_thread(0, threads), _PARTS_SHARE * seconds)


#: The share of the parts' time they are planned into (see :func:`_solve_parts`).
_PARTS_PLAN_SHARE = 0.92

#: A part is not cut further below this many shipments (VROOM then takes milliseconds).
_MIN_CUT = 12

#: A part is cut in two when its level-0 run would take more than this many times its
#: share of the time left (a little over is made up by the parts after it)...
_CUT_ABOVE = 1.5
#: ...at most this many times over, and not once the time is up: every run has a fixed
#: cost (several milliseconds on a loaded machine), so pieces cut ever smaller ended up
#: costing more than the parts they came from (60 runs for 17 parts, 2.9 s for 1 s).
_MAX_CUTS = 1

#: Per part, besides VROOM's constructions: a fixed cost and a cost per shipment for
#: building its input (pyvroom's Python objects; measured 12 ms for 74 shipments).
_PART_FIXED_S = 0.003
_INPUT_S_PER_SHIPMENT = 1.6e-4


class _PartClock:
    """What one part costs on this instance and machine, learnt as the parts run.

    A part's wall time is its input, then its constructions (which VROOM's timeout does
    not bound), then local search until the timeout. Constructions are modelled as
    ``rate * n ** 2.6`` each (:data:`_INIT_GROWTH`), ``rate`` starting at the offline
    estimate (:func:`estimated_init_s`, with its margin) and raised by every level-0 part
    that overran its timeout (that part was all constructions).
    """

    def __init__(self) -> None:
        self.rate = estimated_init_s(1) * _INIT_MARGIN

    def _fixed(self, n: int) -> float:
        return _PART_FIXED_S + _INPUT_S_PER_SHIPMENT * n

    def per_init(self, n: int) -> float:
        return float(self.rate * max(n, 1) ** _INIT_GROWTH)

    def need(self, n: int, level: int, threads: int) -> float:
        """Seconds a part of ``n`` shipments takes at ``level`` with no search."""
        return self._fixed(n) + _per_thread(level, threads) * self.per_init(n)

    def level(self, n: int, seconds: float, threads: int, wanted: int) -> int:
        """The highest level up to ``wanted`` whose constructions surely fit ``seconds``:
        twice the modelled time in half the share (constructions of small parts vary by
        several times on a loaded machine, and an overrun is paid by every later part)."""
        return fitting_level(2 * self.per_init(n), (seconds - self._fixed(n)) / 2, threads, wanted)

    def learn(self, n: int, level: int, threads: int, timeout: float, wall: float) -> None:
        """A part of ``n`` took ``wall`` at ``level`` under ``timeout``: a run past its
        timeout was constructions only, so it measures the rate (raised to it, never
        lowered: a quick run may have been quick by luck, and an overrun costs the limit).
        Only level-0 runs teach it: they are what a part falls back to.
        """
        if level == 0 and wall > 1.2 * timeout + self._fixed(n):
            inits = _per_thread(level, threads) * max(n, 1) ** _INIT_GROWTH
            seen = (wall - self._fixed(n)) / inits
            self.rate = max(self.rate, seen)


def _solve_parts(
    problem: Problem,
    vehicles: Sequence[int],
    requests: Sequence[int],
    seconds: float,
    threads: int,
    level: int,
    k: int,
) -> Routes:
    """VROOM on each of ``k`` parts in turn (:mod:`dispatcher.planner.vroom_parts`), then
    once more on what the parts left unassigned with the vehicles no part used, all within
    ``seconds``.

    Each part gets an even share of the time left (the leftover run counted as one more
    part) and the highest exploration level whose constructions fit that share, by a
    clock learnt from the parts already run (:class:`_PartClock`). A part whose level-0
    constructions would not fit its share is cut in two first (constructions grow faster
    than linearly, so two halves cost far less than the whole; once, and only while time
    is left): the plan keeps near the limit on a loaded machine at the price of smaller
    parts, and no request is dropped for want of time (a part with no time left still
    runs, at level 0 with the shortest timeout).
    """
    # Parts are planned to end a little early: the part running at the deadline (and the
    # leftover run) end after it, by about one part's time.
    deadline = time.monotonic() + _PARTS_PLAN_SHARE * seconds
    position = {v: m for m, v in enumerate(vehicles)}
    routes: Routes = [[] for _ in vehicles]
    queue = [(pv, pr, 0) for pv, pr in split(problem, vehicles, requests, k) if pr]
    leftover: list[int] = []
    clock = _PartClock()
    late = 0.0
    while queue:
        pv, pr, cuts = queue.pop(0)
        if not pv:
            leftover += pr
            continue
        # The worst overrun of a part so far is kept back: the last part will overrun
        # about as much, and it is paid after the deadline.
        left = deadline - time.monotonic() - late
        share = max(_PROBE_S, left / (len(queue) + 2))
        if (
            cuts < _MAX_CUTS
            and left > 0
            and clock.need(len(pr), 0, threads) > _CUT_ABOVE * share
            and len(pr) >= 2 * _MIN_CUT
            and len(pv) > 1
        ):
            queue[:0] = [(v, r, cuts + 1) for v, r in split(problem, pv, pr, 2) if r]
            continue
        began = time.monotonic()
        leftover += _run_part(problem, pv, pr, share, threads, level, routes, position, clock)
        late = max(late, time.monotonic() - began - share)
    unused = [v for v in vehicles if not routes[position[v]]]
    if leftover and unused:
        share = max(_PROBE_S, deadline - time.monotonic())
        _run_part(problem, unused, leftover, share, threads, level, routes, position, clock)
    return routes


def _run_part(
    problem: Problem,
    vehicles: Sequence[int],
    requests: Sequence[int],
    seconds: float,
    threads: int,
    level: int,
    routes: Routes,
    position: dict[int, int],
    clock: _PartClock,
) -> list[int]:
    """Solve one part into ``routes``; the requests it left unassigned."""
    began = time.monotonic()
    chosen = clock.level(len(requests), seconds, threads, level)
    data = _run(_input(problem, vehicles, requests, compact=True), chosen, threads, seconds)
    clock.learn(len(requests), chosen, threads, seconds, time.monotonic() - began)
    for route in data.get("routes", []):  # type: ignore[attr-defined]
        routes[position[vehicles[int(route["vehicle"])]]] = _visits(route)
    return sorted(
        {int(u["id"]) for u in data.get("unassigned", [])}  # type: ignore[attr-defined]
    )


def _visits(route: dict[str, object]) -> list[tuple[int, StopKind]]:
    return [
        (int(step["id"]), StopKind.PICKUP if step["type"] == "pickup" else StopKind.DROPOFF)
        for step in route["steps"]  # type: ignore[attr-defined]
        if step["type"] in ("pickup", "delivery")
    ]


def vroom_routes(
    problem: Problem,
    vehicles: Sequence[int],
    requests: Sequence[int],
    seconds: float,
    threads: int,
    level: int = 5,
    fit: bool = True,
) -> Routes | None:
    """VROOM's routes per model vehicle as (request index, kind), or ``None`` when the
    problem does not map or VROOM fails. ``level``: the local search's depth and the most
    searches (VROOM's exploration level), as many of them run as settle in ``seconds``
    (:func:`_timed_solve`). With ``fit``, a problem whose constructions would not fit in
    ``seconds`` is cut into parts (:func:`_solve_parts`)."""
    if any(problem.requests[r].onboard_vehicle is not None for r in requests):
        return None
    try:
        k = _parts_for(len(requests), seconds, threads, fit)
        if k > 1 and vehicles:
            return _solve_parts(problem, vehicles, requests, seconds, threads, level, k)
        began = time.monotonic()
        vin = _input(problem, vehicles, requests)
        # Building the input is part of VROOM's budget (its Python objects: 10-30 ms on
        # 100-200 shipments), else the plan ends that much past the limit.
        left = max(_PROBE_S, seconds - (time.monotonic() - began))
        data = _timed_solve(vin, left, threads, level)
    except (RuntimeError, ValueError, OverflowError):
        return None
    routes: Routes = [[] for _ in vehicles]
    for route in data.get("routes", []):  # type: ignore[attr-defined]
        routes[int(route["vehicle"])] = _visits(route)
    return routes

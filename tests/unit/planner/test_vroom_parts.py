"""A problem too large for VROOM's constructions within the limit is cut into parts."""

from __future__ import annotations

import numpy as np

from dispatcher.planner import Problem, Profile, Request, StopKind, Vehicle
from dispatcher.planner.vroom_parts import MIN_PART, parts_needed, split
from dispatcher.planner.vroom_seed import _PartClock, _solve_parts


def grid_problem(n_requests: int, n_vehicles: int, seed: int = 3) -> Problem:
    """Points on a 100 x 100 square (depot 0 in the middle), Euclidean travel."""
    rng = np.random.default_rng(seed)
    xy = np.vstack([[50.0, 50.0], rng.uniform(0, 100, size=(2 * n_requests, 2))])
    d = np.rint(np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))).astype(np.int64)
    profile = Profile(durations=d, costs=d.copy(), distances=d.copy())
    vehicles = tuple(Vehicle(id=f"v{i}", start=0, capacity=(4,)) for i in range(n_vehicles))
    requests = tuple(
        Request(id=f"r{i}", pickup=1 + 2 * i, dropoff=2 + 2 * i) for i in range(n_requests)
    )
    return Problem(vehicles=vehicles, requests=requests, profiles={"robot": profile})


class TestPartsNeeded:
    def test_one_part_when_it_fits(self) -> None:
        assert parts_needed(1000, 0.1, 2, 1.0) == 1

    def test_more_parts_the_tighter_the_budget(self) -> None:
        # 10 s per construction, 2 per thread: k * 20 * k**-2.6 <= budget.
        assert parts_needed(1000, 10.0, 2, 10.0) == 2  # 2**1.6 = 3.03 >= 2
        assert parts_needed(1000, 10.0, 2, 1.0) == 7  # 7**1.6 = 22.5 >= 20
        assert parts_needed(1000, 10.0, 2, 10.0) <= parts_needed(1000, 10.0, 2, 5.0)

    def test_never_parts_smaller_than_the_minimum(self) -> None:
        assert parts_needed(200, 1000.0, 2, 0.001) == 200 // MIN_PART


class TestSplit:
    def test_every_request_and_vehicle_once_and_balanced(self) -> None:
        problem = grid_problem(300, 30)
        vehicles, requests = list(range(30)), list(range(300))
        parts = split(problem, vehicles, requests, 4)
        assert len(parts) == 4
        assert sorted(v for pv, _ in parts for v in pv) == vehicles
        assert sorted(r for _, pr in parts for r in pr) == requests
        sizes = [len(pr) for _, pr in parts]
        assert max(sizes) <= int(np.ceil(300 / 4 * 1.1))
        # Vehicles follow requests: every part has some, in proportion.
        for pv, pr in parts:
            assert abs(len(pv) - 30 * len(pr) / 300) <= 1

    def test_parts_are_compact(self) -> None:
        """A part's requests lie closer to each other than to the whole set's."""
        problem = grid_problem(200, 20)
        d = np.asarray(problem.profiles["robot"].durations, dtype=float)
        pickups = np.asarray([r.pickup for r in problem.requests])
        whole = d[np.ix_(pickups, pickups)].mean()
        for _, pr in split(problem, list(range(20)), list(range(200)), 4):
            mine = np.asarray([problem.requests[r].pickup for r in pr])
            assert d[np.ix_(mine, mine)].mean() < whole

    def test_one_part_is_the_whole(self) -> None:
        problem = grid_problem(10, 2)
        assert split(problem, [0, 1], list(range(10)), 1) == [([0, 1], list(range(10)))]


def test_solved_in_parts_every_request_once_pickup_before_dropoff() -> None:
    problem = grid_problem(120, 12)
    routes = _solve_parts(problem, list(range(12)), list(range(120)), 2.0, 2, 5, 3)
    seen = [r for route in routes for r, kind in route if kind is StopKind.PICKUP]
    assert sorted(seen) == list(range(120))
    for route in routes:
        for r in {r for r, _ in route}:
            kinds = [k for q, k in route if q == r]
            assert kinds == [StopKind.PICKUP, StopKind.DROPOFF]


def test_no_request_is_dropped_for_want_of_time() -> None:
    """A budget far too small for the parts: they are cut smaller as the time runs out,
    and every request is still placed once (a seed short of requests would leave them
    for a search that has no time either)."""
    problem = grid_problem(200, 20)
    routes = _solve_parts(problem, list(range(20)), list(range(200)), 0.02, 2, 5, 2)
    seen = sorted(r for route in routes for r, kind in route if kind is StopKind.PICKUP)
    assert seen == list(range(200))


class TestPartClock:
    def test_only_a_level_0_overrun_raises_the_rate(self) -> None:
        clock = _PartClock()
        prior = clock.rate
        clock.learn(74, 3, 2, timeout=0.05, wall=0.5)  # a higher level: not what parts fall to
        clock.learn(74, 0, 2, timeout=0.05, wall=0.055)  # kept to its timeout: no news
        assert clock.rate == prior
        clock.learn(74, 0, 2, timeout=0.01, wall=1.0)
        seen = (1.0 - clock._fixed(74)) / (2 * 74**2.6)
        assert clock.rate == seen > prior

    def test_the_level_fits_twice_the_model_in_half_the_share(self) -> None:
        clock = _PartClock()
        assert clock.level(74, 0.001, 2, 5) == 0
        roomy = clock.level(74, 10.0, 2, 5)
        assert roomy == 5
        mid = clock.level(74, 0.5, 2, 5)
        assert 0 < mid < 5
        assert clock.need(74, mid, 2) <= 0.5

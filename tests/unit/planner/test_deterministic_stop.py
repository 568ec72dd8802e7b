"""The planner's deterministic stop (``PlannerOptions.solution_limit``): the same problem
gives the same plan, fresh or re-planned (what ``fleetd sim evaluate`` relies on)."""

from __future__ import annotations

import random
from dataclasses import replace

from dispatcher.planner import PlannerOptions, Problem, Request, Vehicle, solve
from tests.unit.planner.helpers import check_feasible, line_profile


def problem(seed: int, requests: int = 12, vehicles: int = 4) -> Problem:
    rng = random.Random(seed)
    reqs = tuple(
        Request(
            id=f"q{i}",
            pickup=rng.randrange(30),
            dropoff=rng.randrange(30),
            priority=rng.choice([0, 25, 50, 100]),
        )
        for i in range(requests)
    )
    fleet = tuple(Vehicle(id=f"v{i}", start=rng.randrange(30)) for i in range(vehicles))
    return Problem(vehicles=fleet, requests=reqs, profiles={"robot": line_profile(30)})


OPTIONS = PlannerOptions(solution_limit=15, time_limit_s=30.0)


def test_options_say_whether_the_stop_is_deterministic() -> None:
    assert OPTIONS.deterministic
    assert not PlannerOptions().deterministic


def test_the_same_problem_gives_the_same_plan() -> None:
    for seed in range(3):
        p = problem(seed)
        first, second = solve(p, "optimise", OPTIONS), solve(p, "optimise", OPTIONS)
        check_feasible(p, first)
        assert first.routes == second.routes and first.unserved == second.unserved


def test_a_re_plan_is_deterministic_too() -> None:
    p = problem(7)
    previous = solve(p, "optimise", OPTIONS)
    grown = replace(p, requests=(*p.requests, Request(id="new", pickup=3, dropoff=20)))
    first = solve(grown, "optimise", OPTIONS, previous)
    second = solve(grown, "optimise", OPTIONS, previous)
    check_feasible(grown, first)
    assert first.routes == second.routes
    assert "new" in first.assignment()

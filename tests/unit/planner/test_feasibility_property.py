"""Every plan either strategy returns is feasible, checked independently of the solver."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher.planner import (
    Objective,
    PlannerOptions,
    Priority,
    Problem,
    Request,
    Vehicle,
    VehicleKind,
    solve,
)
from tests.unit.planner.helpers import check_feasible, line_profile

SIZE = 12
loc = st.integers(0, SIZE - 1)


@st.composite
def vehicles(draw: st.DrawFn, i: int) -> Vehicle:
    kind = draw(st.sampled_from(list(VehicleKind)))
    battery = draw(st.none() | st.integers(50, 400))
    return Vehicle(
        f"v{i}",
        start=draw(loc),
        end=draw(st.none() | loc),
        profile=kind.value,
        kind=kind,
        capacity=(draw(st.integers(1, 3)),),
        capabilities=draw(st.frozensets(st.sampled_from(["wc", "stretcher"]))),
        ready_time=draw(st.integers(0, 50)),
        available_until=draw(st.integers(200, 2000)),
        range_m=battery,
        reserve_m=0 if battery is None else draw(st.integers(0, 40)),
    )


@st.composite
def requests(draw: st.DrawFn, i: int) -> Request:
    open_ = draw(st.integers(0, 300))
    width = draw(st.integers(0, 300))
    return Request(
        f"r{i}",
        pickup=draw(loc),
        dropoff=draw(loc),
        demand=(draw(st.integers(1, 2)),),
        pickup_service=draw(st.integers(0, 20)),
        dropoff_service=draw(st.integers(0, 20)),
        pickup_windows=((open_, open_ + width),),
        dropoff_windows=((0, open_ + width + draw(st.integers(0, 400))),),
        priority=draw(st.sampled_from(list(Priority))),
        required_kind=draw(st.none() | st.sampled_from(list(VehicleKind))),
        required_capabilities=draw(st.frozensets(st.sampled_from(["wc", "stretcher"]), max_size=1)),
    )


@st.composite
def problems(draw: st.DrawFn) -> Problem:
    n_v = draw(st.integers(1, 4))
    n_r = draw(st.integers(0, 7))
    return Problem(
        tuple(draw(vehicles(i)) for i in range(n_v)),
        tuple(draw(requests(i)) for i in range(n_r)),
        {"robot": line_profile(SIZE, 10), "driver": line_profile(SIZE, 6)},
        draw(st.sampled_from(list(Objective))),
    )


class TestEveryPlanIsFeasible:
    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(problem=problems(), use_vroom=st.booleans())
    def test_optimise(self, problem: Problem, use_vroom: bool) -> None:
        """Windows, capacity, capabilities, kind, battery reserve, precedence all hold,
        and every request is served or reported exactly once."""
        plan = solve(problem, "optimise", PlannerOptions(time_limit_s=0.1, use_vroom=use_vroom))
        check_feasible(problem, plan)
        assert "rejected_routes" not in plan.stats

    @settings(max_examples=30, deadline=None)
    @given(problem=problems())
    def test_greedy(self, problem: Problem) -> None:
        """The same holds for the greedy strategy."""
        check_feasible(problem, solve(problem, "greedy", PlannerOptions(time_limit_s=0.1)))

"""The ``optimise`` strategy on small problems whose best answer is known by hand."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dispatcher.planner import (
    Objective,
    PlannerOptions,
    Priority,
    Problem,
    Request,
    UnservedReason,
    Vehicle,
    VehicleKind,
    solve,
)
from tests.unit.planner.helpers import check_feasible, line_profile

FAST = PlannerOptions(time_limit_s=0.3)
NO_VROOM = replace(FAST, use_vroom=False)


def world(vehicles: list[Vehicle], requests: list[Request], objective: Objective) -> Problem:
    return Problem(tuple(vehicles), tuple(requests), {"robot": line_profile(20)}, objective)


def order(plan_route: object) -> list[tuple[str, str]]:
    return [(s.request_id, s.kind.value) for s in plan_route.stops]  # type: ignore[attr-defined]


@pytest.fixture(params=[FAST, NO_VROOM], ids=["vroom-seeded", "ortools-only"])
def options(request: pytest.FixtureRequest) -> PlannerOptions:
    return request.param  # type: ignore[no-any-return]


class TestHandCheckedOptima:
    def test_two_trips_along_a_line_are_chained_in_order(self, options: PlannerOptions) -> None:
        """From 0, trips 1->2 and 3->4 cost 4 steps (40) done in order; nothing else is cheaper."""
        problem = world(
            [Vehicle("v", start=0, capacity=(1,))],
            [Request("a", 1, 2), Request("b", 3, 4)],
            Objective.COST,
        )
        plan = solve(problem, options=options)
        check_feasible(problem, plan)
        assert [r.cost for r in plan.routes] == [40]
        assert order(plan.routes[0]) == [
            ("a", "pickup"),
            ("a", "dropoff"),
            ("b", "pickup"),
            ("b", "dropoff"),
        ]

    def test_the_nearer_vehicle_takes_the_trip(self, options: PlannerOptions) -> None:
        """A trip 9->10 goes to the vehicle waiting at 10 (cost 20), not the one at 0 (100)."""
        problem = world(
            [Vehicle("far", start=0), Vehicle("near", start=10)],
            [Request("a", 9, 10)],
            Objective.COST,
        )
        plan = solve(problem, options=options)
        assert plan.assignment() == {"a": "near"}
        assert plan.routes[0].cost == 20

    def test_capacity_two_pools_riders_capacity_one_does_not(self, options: PlannerOptions) -> None:
        """Two riders 1->5: a two-seat vehicle carries both at once (cost 50); a one-seat
        vehicle must go back for the second (10 + 40 + 40 + 40 = 130)."""
        for seats, cost in ((2, 50), (1, 130)):
            problem = world(
                [Vehicle("v", start=0, capacity=(seats,))],
                [Request("a", 1, 5), Request("b", 1, 5)],
                Objective.COST,
            )
            plan = solve(problem, options=options)
            check_feasible(problem, plan)
            assert plan.routes[0].cost == cost

    def test_fixed_cost_is_paid_once_per_vehicle_used(self, options: PlannerOptions) -> None:
        """With a fixed cost of 1000 per vehicle, one vehicle does both trips."""
        problem = world(
            [Vehicle("a", start=0, fixed_cost=1000), Vehicle("b", start=19, fixed_cost=1000)],
            [Request("x", 1, 2), Request("y", 17, 18)],
            Objective.COST,
        )
        plan = solve(problem, options=options)
        assert len(plan.routes) == 1


class TestConstraints:
    def test_time_window_sends_the_vehicle_that_can_be_on_time(
        self, options: PlannerOptions
    ) -> None:
        """Pickup at 10 must start by t=30: only the vehicle at 8 (20 s away) makes it."""
        problem = world(
            [Vehicle("v0", start=0), Vehicle("v8", start=8, fixed_cost=500)],
            [Request("a", 10, 11, pickup_windows=((0, 30),))],
            Objective.COST,
        )
        plan = solve(problem, options=options)
        check_feasible(problem, plan)
        assert plan.assignment() == {"a": "v8"}

    def test_capability_wins_over_distance(self, options: PlannerOptions) -> None:
        """A wheelchair request goes to the only wheelchair-capable vehicle, though farther."""
        problem = world(
            [Vehicle("plain", start=1), Vehicle("chair", start=15, capabilities=frozenset({"wc"}))],
            [Request("a", 2, 3, required_capabilities=frozenset({"wc"}))],
            Objective.COST,
        )
        plan = solve(problem, options=options)
        assert plan.assignment() == {"a": "chair"}

    def test_required_kind_is_respected(self, options: PlannerOptions) -> None:
        """A driver-only request is never given to a robot, however close."""
        problem = Problem(
            (
                Vehicle("robot", start=1),
                Vehicle("driver", start=15, profile="driver", kind=VehicleKind.DRIVER),
            ),
            (Request("a", 2, 3, required_kind=VehicleKind.DRIVER),),
            {"robot": line_profile(20), "driver": line_profile(20, 5)},
            Objective.COST,
        )
        assert solve(problem, options=options).assignment() == {"a": "driver"}

    def test_battery_reserve_is_never_crossed(self, options: PlannerOptions) -> None:
        """Two trips need 120 m of travel; the robot has 150 m with 50 m reserve, so it
        can do only one and the other goes to the driver (no battery limit)."""
        problem = Problem(
            (
                Vehicle("robot", start=0, range_m=150, reserve_m=50, capacity=(1,)),
                Vehicle("driver", start=19, kind=VehicleKind.DRIVER, capacity=(1,)),
            ),
            (Request("a", 1, 5), Request("b", 2, 6)),
            {"robot": line_profile(20)},
            Objective.COST,
        )
        plan = solve(problem, options=options)
        check_feasible(problem, plan)
        assert sorted(plan.assignment().values()) == ["driver", "robot"]

    def test_higher_priority_is_served_when_not_all_can_be(self, options: PlannerOptions) -> None:
        """One vehicle, two requests at the same instant far apart: the urgent one is served."""
        problem = world(
            [Vehicle("v", start=5)],
            [
                Request("low", 0, 1, pickup_windows=((50, 50),), priority=Priority.LOW),
                Request("urgent", 10, 11, pickup_windows=((50, 50),), priority=Priority.URGENT),
            ],
            Objective.COST,
        )
        plan = solve(problem, options=options)
        assert plan.assignment() == {"urgent": "v"}
        assert [(u.request_id, u.reason) for u in plan.unserved] == [
            ("low", UnservedReason.NOT_FOUND)
        ]

    def test_live_objective_picks_up_urgent_first(self, options: PlannerOptions) -> None:
        """Two one-seat trips requested at once from the same spot: the urgent rider waits
        less (is picked up first), the other is still served."""
        problem = world(
            [Vehicle("v", start=0, capacity=(1,))],
            [
                Request("normal", 1, 2, priority=Priority.NORMAL),
                Request("urgent", 1, 3, priority=Priority.URGENT),
            ],
            Objective.WAITING,
        )
        plan = solve(problem, options=options)
        check_feasible(problem, plan)
        assert order(plan.routes[0])[0] == ("urgent", "pickup")
        assert not plan.unserved

    def test_onboard_rider_is_dropped_by_the_vehicle_carrying_them(
        self, options: PlannerOptions
    ) -> None:
        """A rider already on board: only the drop-off remains, on that vehicle."""
        problem = world(
            [Vehicle("v", start=4, capacity=(1,)), Vehicle("w", start=9)],
            [Request("a", 0, 9, onboard_vehicle="v")],
            Objective.WAITING,
        )
        plan = solve(problem, options=options)
        check_feasible(problem, plan)
        assert plan.assignment() == {"a": "v"}
        assert order(plan.routes[0]) == [("a", "dropoff")]


class TestUnservedReasons:
    @pytest.mark.parametrize(
        ("request_", "reason"),
        [
            (
                Request("x", 1, 2, required_capabilities=frozenset({"bariatric"})),
                UnservedReason.NO_ELIGIBLE_VEHICLE,
            ),
            (Request("x", 1, 2, demand=(3,)), UnservedReason.CAPACITY),
            (Request("x", 19, 2, pickup_windows=((0, 50),)), UnservedReason.TIME_WINDOW),
            (Request("x", 19, 18), UnservedReason.BATTERY),
        ],
        ids=["capability", "capacity", "time-window", "battery"],
    )
    def test_an_impossible_request_is_reported_with_its_reason(
        self, request_: Request, reason: UnservedReason
    ) -> None:
        """Nothing is dropped silently: a request no vehicle can do is listed with why."""
        problem = world(
            [Vehicle("v", start=0, capacity=(2,), range_m=200, reserve_m=50)],
            [request_, Request("ok", 1, 2)],
            Objective.WAITING,
        )
        for strategy in ("optimise", "greedy"):
            plan = solve(problem, strategy, FAST)
            check_feasible(problem, plan)
            assert [(u.request_id, u.reason) for u in plan.unserved] == [("x", reason)]


class TestReplanning:
    def test_marginal_gain_does_not_flip_an_assignment(self) -> None:
        """A request planned on a vehicle stays there when moving it would gain < 5 %."""
        base = world(
            [Vehicle("a", start=5), Vehicle("b", start=7)],
            [Request("r", 6, 12)],
            Objective.COST,
        )
        # Vehicle a is 10 s from the pickup, b too: equal; previous plan says a.
        previous = solve(replace(base, vehicles=(base.vehicles[0],)), options=FAST)
        again = solve(base, options=replace(FAST, improvement_threshold=0.5), previous=previous)
        assert again.assignment() == {"r": "a"}

    def test_a_large_gain_does_flip_it(self) -> None:
        """When another vehicle is far better, the request moves."""
        base = world(
            [Vehicle("a", start=0), Vehicle("b", start=11)],
            [Request("r", 12, 13)],
            Objective.COST,
        )
        previous = solve(replace(base, vehicles=(base.vehicles[0],)), options=FAST)
        assert previous.assignment() == {"r": "a"}
        again = solve(base, options=replace(FAST, improvement_threshold=0.05), previous=previous)
        assert again.assignment() == {"r": "b"}

    def test_new_requests_are_placed_while_old_ones_stay(self) -> None:
        """Re-planning with a new request keeps the old assignment and serves the new one."""
        base = world(
            [Vehicle("a", start=0), Vehicle("b", start=19)], [Request("r", 1, 2)], Objective.WAITING
        )
        previous = solve(base, options=FAST)
        grown = replace(base, requests=(*base.requests, Request("s", 18, 17)))
        again = solve(grown, options=FAST, previous=previous)
        check_feasible(grown, again)
        assert again.assignment()["r"] == previous.assignment()["r"]
        assert "s" in again.assignment()

    @pytest.mark.parametrize("threshold", [0.05, 0.99])
    def test_a_vehicle_no_longer_allowed_loses_the_request_despite_the_previous_plan(
        self, threshold: float
    ) -> None:
        """The previous plan put r on a; a refused it since (candidates: only b). However
        stable the plan is meant to be, r is never planned on a again."""
        base = world(
            [Vehicle("a", start=5), Vehicle("b", start=15)],
            [Request("r", 6, 7), Request("s", 16, 17)],
            Objective.WAITING,
        )
        previous = solve(base, options=FAST)
        assert previous.assignment()["r"] == "a"
        options = replace(FAST, improvement_threshold=threshold)
        again = solve(base, options=options, previous=previous, candidates={"r": ["b"]})
        check_feasible(base, again)
        assert again.assignment()["r"] == "b"

    def test_a_request_nobody_may_take_is_unserved_not_kept_on_its_old_vehicle(self) -> None:
        """Every vehicle refused r (an empty candidate list): r is reported unserved."""
        base = world([Vehicle("a", start=5)], [Request("r", 6, 7)], Objective.WAITING)
        previous = solve(base, options=FAST)
        again = solve(base, options=FAST, previous=previous, candidates={"r": []})
        assert "r" not in again.assignment()
        assert [u.request_id for u in again.unserved] == ["r"]


class TestLargeFleets:
    def test_candidates_are_pruned_to_the_k_nearest(self) -> None:
        """With 60 vehicles and K=3, the solver's model holds at most 3 per request."""
        vehicles = [Vehicle(f"v{i}", start=i % 20) for i in range(60)]
        problem = world(vehicles, [Request("a", 3, 4), Request("b", 15, 16)], Objective.WAITING)
        plan = solve(problem, options=replace(FAST, max_candidates=3, prune_above=50))
        check_feasible(problem, plan)
        assert plan.stats["model_vehicles"] <= 6
        assert not plan.unserved

    def test_given_candidates_restrict_the_choice(self) -> None:
        """A candidate list from elsewhere (e.g. Redis GEO) limits who may take a request."""
        problem = world(
            [Vehicle("near", start=3), Vehicle("far", start=19)],
            [Request("a", 3, 4)],
            Objective.WAITING,
        )
        plan = solve(problem, options=FAST, candidates={"a": ["far"]})
        assert plan.assignment() == {"a": "far"}


class TestGreedy:
    def test_first_come_goes_to_the_nearest_vehicle(self) -> None:
        """Greedy serves in requested order, each to the vehicle soonest at its pickup."""
        problem = world(
            [Vehicle("left", start=0), Vehicle("right", start=19)],
            [Request("late", 1, 2, pickup_windows=((100, 10_000),)), Request("early", 18, 17)],
            Objective.WAITING,
        )
        plan = solve(problem, "greedy", FAST)
        check_feasible(problem, plan)
        assert plan.assignment() == {"late": "left", "early": "right"}

    def test_unknown_strategy_is_refused(self) -> None:
        """A strategy name that does not exist raises, naming the known ones."""
        problem = world([Vehicle("v", start=0)], [], Objective.WAITING)
        with pytest.raises(ValueError, match="optimise"):
            solve(problem, "clairvoyant")


class TestStickyCandidates:
    def test_pruning_keeps_the_vehicle_a_request_is_planned_on(self) -> None:
        """With K=2 of 60 vehicles, a request planned on a farther vehicle keeps it as a
        candidate, so a high improvement threshold leaves it there."""
        vehicles = [Vehicle(f"v{i}", start=3 if i < 59 else 12) for i in range(60)]
        problem = world(vehicles, [Request("a", 3, 4)], Objective.WAITING)
        only_far = replace(problem, vehicles=(vehicles[-1],))
        previous = solve(only_far, options=FAST)
        assert previous.assignment() == {"a": "v59"}
        options = replace(FAST, max_candidates=2, prune_above=50, improvement_threshold=0.99)
        again = solve(problem, options=options, previous=previous)
        assert again.assignment() == {"a": "v59"}

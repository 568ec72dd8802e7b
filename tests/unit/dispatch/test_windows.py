"""Scheduled missions (a pickup window) in the live planning problem and the release rule."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from dispatcher.dispatch.planning import (
    PlanInputs,
    Planner,
    most_urgent,
    ready_at,
    to_inputs,
    within_reach,
)
from dispatcher.dispatch.problem import (
    MissionInput,
    Point,
    Speeds,
    VehicleInput,
    build_problem,
    late_pickups,
    missions_by_vehicle,
    not_yet_due,
)
from dispatcher.missions.domain import MissionRecord
from dispatcher.missions.lifecycle import Priority
from dispatcher.planner import Plan, PlannerOptions, VehicleKind, solve
from dispatcher.planner.model import HORIZON, Route, Stop, StopKind
from tests.unit.api.fakes import make_vehicle
from tests.unit.dispatch.test_planning import FAC, mission

PICK, DROP = Point(52.5200, 13.4000), Point(52.5210, 13.4050)
NEAR = Point(52.5201, 13.4001)
NOW = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)

OPTIMISE = PlannerOptions(time_limit_s=5.0, solution_limit=30, use_vroom=False)


def booked(start_s: float, length_s: float = 900.0, **kw: Any) -> MissionRecord:
    """A mission whose pickup window opens ``start_s`` after :data:`NOW`."""
    m = mission()
    start = NOW + timedelta(seconds=start_s)
    return replace(
        m, window_start=start, window_end=start + timedelta(seconds=length_s), created_at=NOW,
        **kw,
    )  # fmt: skip


def _route(vehicle: str, *stops: tuple[uuid.UUID, StopKind, int], start: int = 0) -> Route:
    return Route(
        vehicle,
        tuple(Stop(str(m), kind, 0, at, at, (1,)) for m, kind, at in stops),
        start,
        stops[-1][2] if stops else start,
        0,
        0,
    )


class TestTheProblem:
    def test_a_window_opens_the_pickup_and_sets_the_requested_time(self) -> None:
        """Not before the window opens; no hard close; waiting counts from its start."""
        m = MissionInput(uuid.uuid4(), PICK, DROP, Priority.NORMAL, window_s=(600.2, 1500.0))
        asap = MissionInput(uuid.uuid4(), PICK, DROP, Priority.NORMAL)
        v = VehicleInput(uuid.uuid4(), VehicleKind.ROBOT, NEAR)
        problem = build_problem([v], [m, asap], Speeds())
        scheduled, now = problem.requests
        assert scheduled.pickup_windows == ((601, HORIZON),)
        assert scheduled.requested_time == 601
        assert scheduled.dropoff_windows == ((0, HORIZON),)
        assert now.pickup_windows == ((0, HORIZON),)

    def test_a_window_already_open_or_past_starts_now(self) -> None:
        m = MissionInput(uuid.uuid4(), PICK, DROP, Priority.NORMAL, window_s=(-300.0, -10.0))
        v = VehicleInput(uuid.uuid4(), VehicleKind.ROBOT, NEAR)
        (req,) = build_problem([v], [m], Speeds()).requests
        assert req.pickup_windows == ((0, HORIZON),)

    def test_a_window_that_cannot_be_met_is_still_served_as_soon_as_possible(self) -> None:
        """Closed a minute from now, the pickup ten minutes' drive away: planned (late),
        never left out, and the plan says how late."""
        far = Point(52.5300, 13.4200)  # ~2 km at 1 m/s with the detour factor
        m = MissionInput(uuid.uuid4(), PICK, DROP, Priority.NORMAL, window_s=(0.0, 60.0))
        v = VehicleInput(uuid.uuid4(), VehicleKind.ROBOT, far)
        problem = build_problem([v], [m], Speeds())
        for strategy in ("greedy", "optimise"):
            plan = solve(problem, strategy, OPTIMISE)
            assert plan.unserved == ()
            assert missions_by_vehicle(plan) == {v.id: (m.id,)}
            late = late_pickups(plan, {m.id: 60.0})
            pickup = plan.routes[0].stops[0]
            assert late == {m.id: pickup.start - 60}
            assert pickup.start == pickup.arrival  # as soon as it gets there

    def test_no_pickup_before_the_window_opens(self) -> None:
        m = MissionInput(uuid.uuid4(), PICK, DROP, Priority.NORMAL, window_s=(600.0, 1500.0))
        v = VehicleInput(uuid.uuid4(), VehicleKind.ROBOT, NEAR)
        problem = build_problem([v], [m], Speeds())
        for strategy in ("greedy", "optimise"):
            pickup = solve(problem, strategy, OPTIMISE).routes[0].stops[0]
            assert pickup.arrival < 600 <= pickup.start
            assert late_pickups(solve(problem, strategy, OPTIMISE), {m.id: 1500.0}) == {}

    def test_a_free_vehicle_serves_a_mission_now_before_a_booking(self) -> None:
        """One robot, a booking in 20 minutes and a mission now: the one now goes first
        (the booking's rider is not waiting yet)."""
        booking = MissionInput(uuid.uuid4(), PICK, DROP, Priority.HIGH, window_s=(1200.0, 2100.0))
        now = MissionInput(uuid.uuid4(), DROP, PICK, Priority.NORMAL)
        v = VehicleInput(uuid.uuid4(), VehicleKind.ROBOT, NEAR)
        plan = solve(build_problem([v], [booking, now], Speeds()), "optimise", OPTIMISE)
        assert missions_by_vehicle(plan) == {v.id: (now.id, booking.id)}


class TestReleaseRule:
    def test_a_booking_waits_until_travel_plus_margin(self) -> None:
        """Travel 100 s, margin 120 s: a window opening in 600 s is held back, one in
        220 s is released (due), one in 221 s is not."""
        m = uuid.uuid4()
        plan = Plan((_route("v", (m, StopKind.PICKUP, 100)),), (), "t")
        assert not_yet_due(plan, {m: 600.0}, 120.0) == {m}
        assert not_yet_due(plan, {m: 221.0}, 120.0) == {m}
        assert not_yet_due(plan, {m: 220.0}, 120.0) == frozenset()
        assert not_yet_due(plan, {}, 120.0) == frozenset()  # no window: as soon as possible

    def test_travel_is_counted_from_when_the_vehicle_is_free(self) -> None:
        m = uuid.uuid4()
        plan = Plan((_route("v", (m, StopKind.PICKUP, 400), start=300),), (), "t")  # 100 s
        assert not_yet_due(plan, {m: 100.0}, 0.0) == frozenset()
        assert not_yet_due(plan, {m: 101.0}, 0.0) == {m}
        assert not_yet_due(plan, {m: 200.0}, 100.0) == frozenset()
        assert not_yet_due(plan, {m: 201.0}, 100.0) == {m}

    def test_only_the_first_mission_of_a_route_matters(self) -> None:
        first, later = uuid.uuid4(), uuid.uuid4()
        plan = Plan(
            (
                _route(
                    "v",
                    (first, StopKind.PICKUP, 10),
                    (first, StopKind.DROPOFF, 50),
                    (later, StopKind.PICKUP, 3000),
                ),
            ),
            (),
            "t",
        )
        assert not_yet_due(plan, {later: 3000.0}, 120.0) == frozenset()


class TestPlannerWithWindows:
    def _planner(self, clock: list[datetime]) -> Planner:
        return Planner(
            strategy="optimise",
            options=OPTIMISE,
            quick_time_limit_s=0.1,
            speeds=Speeds(),
            service_s=30,
            release_margin_s=120.0,
            plan_ahead_s=3600.0,
            clock=lambda: clock[0],
        )

    def test_to_inputs_measures_the_window_from_now(self) -> None:
        m = booked(600.0, 900.0)
        inputs = PlanInputs(vehicles=(make_vehicle(FAC, "r"),), busy={}, missions=(m,))
        _, (mi,) = to_inputs(inputs, 30, now=NOW + timedelta(seconds=100))
        assert mi.window_s == (500.0, 1400.0)
        _, (no_now,) = to_inputs(inputs, 30)
        assert no_now.window_s is None

    async def test_a_booking_ten_minutes_out_is_planned_but_not_due_then_due(self) -> None:
        """The robot is a few metres from the pickup: the booking is planned on it at
        once but held back; once its window opens within the margin, it is due."""
        clock = [NOW]
        p = self._planner(clock)
        robot = make_vehicle(FAC, "r", lat=52.5218, lon=13.4061)  # at Ward A
        m = booked(600.0)
        inputs = PlanInputs(vehicles=(robot,), busy={}, missions=(m,))
        plan = await p.plan(inputs, quick=False)
        assert p.by_vehicle(plan) == {robot.id: (m.id,)}
        assert p.not_due(plan, {m.id: m}) == {m.id}
        clock[0] = NOW + timedelta(seconds=400)  # opens in 200 s: still more than the margin
        assert p.not_due(plan, {m.id: m}) == {m.id}
        clock[0] = NOW + timedelta(seconds=490)  # opens in 110 s: due
        assert p.not_due(plan, {m.id: m}) == frozenset()

    async def test_bookings_beyond_the_plan_ahead_are_not_planned_yet(self) -> None:
        clock = [NOW]
        p = self._planner(clock)
        robot = make_vehicle(FAC, "r", lat=52.5218, lon=13.4061)
        far_ahead, soon = booked(2 * 3600.0), booked(300.0)
        plan = await p.plan(
            PlanInputs(vehicles=(robot,), busy={}, missions=(far_ahead, soon)), quick=False
        )
        assert p.by_vehicle(plan) == {robot.id: (soon.id,)}
        assert plan.unserved == ()
        only_far = await p.plan(
            PlanInputs(vehicles=(robot,), busy={}, missions=(far_ahead,)), quick=True
        )
        assert only_far.routes == () and only_far.unserved == ()

    def test_within_reach_and_ranking_by_readiness(self) -> None:
        asap, soon, later = mission(), booked(600.0), booked(5000.0)
        assert within_reach((asap, soon, later), NOW, 3600.0) == (asap, soon)
        assert ready_at(soon) == NOW + timedelta(seconds=600)
        assert ready_at(asap) == asap.created_at
        # Same priority: the one ready first is planned first when the bound cuts.
        early = booked(60.0)
        assert most_urgent((soon, early), 1) == (early,)
        urgent = booked(3000.0, priority=Priority.URGENT)
        assert most_urgent((soon, urgent), 1) == (urgent,)

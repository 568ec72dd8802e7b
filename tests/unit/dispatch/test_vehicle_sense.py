"""The stuck-robot watchdog and the critical-battery rule (pure)."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest

from dispatcher.dispatch.vehicle_sense import (
    Cause,
    LegView,
    Reaction,
    SenseLimits,
    VehicleSense,
    Verdict,
    battery_reaction,
    watched,
)
from dispatcher.links.vehicle_events import ActionStateChanged, OrderStateSeen
from fleet.model import (
    GeoPosition,
    MapPose,
    OperatingMode,
    VehicleError,
    VehicleKind,
    VehicleView,
)
from protocols.vda5050.base import ActionStatus
from tests.unit.api.fakes import make_vehicle

FACILITY = uuid.uuid4()
#: Reports are taken as heard (heard_within_s has its own tests).
LIMITS = SenseLimits(
    stuck_after_s=60.0, retry_after_s=300.0, critical_battery_pct=10.0, heard_within_s=1e9
)
LEG = LegView("leg-1", mission=True, rider_on_board=False, dropoff=(52.5, 13.4))
T0 = 1_900_000_000.0


def robot(**changes: Any) -> VehicleView:
    base = make_vehicle(FACILITY, "r1", order_id="order-1", last_seen=T0)
    return dataclasses.replace(base, **changes)


def at(view: VehicleView, x: float, y: float = -2.0) -> VehicleView:
    return dataclasses.replace(view, map_pose=MapPose("campus", x, y, 0.0))


def run(
    sense: VehicleSense, view: VehicleView, leg: LegView | None, times: list[float]
) -> list[Verdict]:
    out: list[Verdict] = []
    for t in times:
        out += sense.check([view], {view.id: leg} if leg else {}, t)
    return out


class TestWatched:
    def test_a_robot_with_an_order_in_automatic_is_watched(self) -> None:
        assert watched(robot(), LEG, in_action=False)

    @pytest.mark.parametrize(
        "changes",
        [
            {"order_id": None},
            {"online": False},
            {"operating_mode": OperatingMode.MANUAL},
            {"operating_mode": OperatingMode.SEMIAUTOMATIC},
            {"paused": True},
            {"charging": True},
            {"maintenance": True},
            {"safety_stop": True},
            {"errors": (VehicleError("drive", "FATAL"),)},
            {"map_pose": None},
        ],
        ids=lambda c: next(iter(c)),
    )
    def test_not_watched_when_not_expected_to_move(self, changes: dict[str, Any]) -> None:
        assert not watched(robot(**changes), LEG, in_action=False)

    def test_not_watched_without_a_leg_or_while_in_an_action(self) -> None:
        assert not watched(robot(), None, in_action=False)
        assert not watched(robot(), LEG, in_action=True)

    def test_not_watched_when_not_heard_from_lately(self) -> None:
        """A broker outage: fleetd hears nothing, which is no evidence of no progress."""
        v = robot(last_seen=T0 - 40.0)
        assert not watched(v, LEG, in_action=False, now=T0, heard_within_s=35.0)
        assert watched(robot(last_seen=T0 - 30.0), LEG, False, now=T0, heard_within_s=35.0)

    def test_an_outage_does_not_make_robots_stuck(self) -> None:
        sense = VehicleSense(dataclasses.replace(LIMITS, heard_within_s=35.0))
        v = robot(last_seen=T0)
        assert run(sense, v, LEG, [T0, T0 + 30, T0 + 60, T0 + 120]) == []  # silent since T0
        for t in (T0 + 120, T0 + 150, T0 + 179):  # heard again: the clock starts again
            assert sense.check([robot(last_seen=t)], {v.id: LEG}, t) == []
        assert sense.check([robot(last_seen=T0 + 170)], {v.id: LEG}, T0 + 180) != []

    def test_a_driver_is_never_watched(self) -> None:
        driver = make_vehicle(FACILITY, "d1", kind=VehicleKind.DRIVER, order_id="x")
        assert not watched(driver, LEG, in_action=False)


class TestStuck:
    def test_no_progress_for_stuck_after_s_is_stuck_once(self) -> None:
        sense = VehicleSense(LIMITS)
        v = robot()
        assert run(sense, v, LEG, [T0, T0 + 30, T0 + 59]) == []
        (verdict,) = run(sense, v, LEG, [T0 + 60, T0 + 61, T0 + 120])
        assert verdict.cause is Cause.VEHICLE_STUCK
        assert verdict.reaction is Reaction.WITHDRAW
        assert sense.stuck() == {v.id}
        assert sense.kept_from_work(v.id, T0 + 61)

    def test_moving_resets_the_clock(self) -> None:
        sense = VehicleSense(LIMITS)
        v = robot()
        for i in range(10):
            assert sense.check([at(v, 1.5 + i)], {v.id: LEG}, T0 + 30 * i) == []

    def test_jitter_below_moved_m_is_no_progress(self) -> None:
        sense = VehicleSense(LIMITS)
        v = robot()
        sense.check([at(v, 1.5)], {v.id: LEG}, T0)
        sense.check([at(v, 1.6)], {v.id: LEG}, T0 + 30)
        assert len(sense.check([at(v, 1.55)], {v.id: LEG}, T0 + 60)) == 1

    def test_a_new_node_sequence_is_progress(self) -> None:
        """A robot that turns on the spot still passes nodes: not stuck."""
        sense = VehicleSense(LIMITS)
        v = robot()
        for i in range(5):
            sense.observe(OrderStateSeen(v.id, T0, "order-1", 0, "n", i, (), False, "NONE", "A"))
            assert sense.check([v], {v.id: LEG}, T0 + 30 * i) == []

    def test_the_clock_runs_only_while_watched(self) -> None:
        """Paused for 100 s: the 60 s start when it is expected to move again."""
        sense = VehicleSense(LIMITS)
        v = robot()
        run(sense, robot(paused=True), LEG, [T0, T0 + 50])
        assert run(sense, v, LEG, [T0 + 100, T0 + 159]) == []
        assert len(run(sense, v, LEG, [T0 + 160])) == 1

    def test_a_running_action_is_waiting_not_stuck(self) -> None:
        sense = VehicleSense(LIMITS)
        v = robot()
        sense.observe(ActionStateChanged(v.id, T0, "pick-1", "pick", ActionStatus.RUNNING))
        assert run(sense, v, LEG, [T0, T0 + 100, T0 + 200]) == []
        sense.observe(ActionStateChanged(v.id, T0, "pick-1", "pick", ActionStatus.FINISHED))
        assert len(run(sense, v, LEG, [T0 + 260, T0 + 320])) == 1

    def test_a_waiting_action_of_a_later_node_does_not_excuse(self) -> None:
        sense = VehicleSense(LIMITS)
        v = robot()
        sense.observe(ActionStateChanged(v.id, T0, "drop-1", "drop", ActionStatus.WAITING))
        assert len(run(sense, v, LEG, [T0, T0 + 60])) == 1

    def test_a_new_order_forgets_the_old_ones_actions(self) -> None:
        sense = VehicleSense(LIMITS)
        v = robot()
        sense.observe(OrderStateSeen(v.id, T0, "order-0", 0, "n", 1, (), False, "NONE", "A"))
        sense.observe(ActionStateChanged(v.id, T0, "pick-0", "pick", ActionStatus.RUNNING))
        sense.observe(OrderStateSeen(v.id, T0, "order-1", 0, "n", 1, (), False, "NONE", "A"))
        assert not sense.in_action(v.id)

    def test_rider_on_board_is_held(self) -> None:
        sense = VehicleSense(LIMITS)
        rider = dataclasses.replace(LEG, rider_on_board=True)
        (verdict,) = run(sense, robot(), rider, [T0, T0 + 60])
        assert verdict.reaction is Reaction.HOLD

    def test_a_stuck_charging_trip_is_withdrawn(self) -> None:
        sense = VehicleSense(LIMITS)
        charge = LegView("charge-1", mission=False, rider_on_board=False)
        (verdict,) = run(sense, robot(), charge, [T0, T0 + 60])
        assert verdict.reaction is Reaction.WITHDRAW

    def test_the_flag_clears_when_it_moves(self) -> None:
        sense = VehicleSense(LIMITS)
        v = robot()
        run(sense, v, LEG, [T0, T0 + 60])
        sense.check([v], {}, T0 + 70)  # withdrawn: no leg, still stuck, kept from work
        assert sense.stuck() == {v.id} and sense.kept_from_work(v.id, T0 + 70)
        sense.check([at(v, 5.0)], {}, T0 + 80)
        assert sense.stuck() == frozenset()
        assert not sense.kept_from_work(v.id, T0 + 80)

    def test_after_retry_after_s_it_is_tried_again_and_judged_afresh(self) -> None:
        sense = VehicleSense(LIMITS)
        v = robot()
        run(sense, v, LEG, [T0, T0 + 60])
        run(sense, v, None, [T0 + 100, T0 + 200])
        assert not sense.kept_from_work(v.id, T0 + 361)
        assert sense.stuck() == {v.id}  # the alert stays until it moves
        leg2 = dataclasses.replace(LEG, leg_id="leg-2")
        assert run(sense, v, leg2, [T0 + 400, T0 + 459]) == []
        (again,) = run(sense, v, leg2, [T0 + 460])
        assert again.leg_id == "leg-2"

    def test_a_new_leg_starts_the_clock_again(self) -> None:
        """Withdrawn and given another leg at once (a charging trip after a critical
        battery): the new leg has its own stuck_after_s to get going."""
        sense = VehicleSense(LIMITS)
        v = robot()
        run(sense, v, LEG, [T0, T0 + 50])
        charge = LegView("charge-1", mission=False, rider_on_board=False)
        assert run(sense, v, charge, [T0 + 55, T0 + 100, T0 + 114]) == []
        assert len(run(sense, v, charge, [T0 + 115])) == 1

    def test_a_verdict_not_carried_out_is_given_again(self) -> None:
        sense = VehicleSense(LIMITS)
        v = robot()
        (verdict,) = run(sense, v, LEG, [T0, T0 + 60])
        sense.retry(verdict)
        assert len(run(sense, v, LEG, [T0 + 61])) == 1

    def test_a_vanished_robot_is_forgotten(self) -> None:
        sense = VehicleSense(LIMITS)
        v = robot()
        run(sense, v, LEG, [T0, T0 + 60])
        sense.check([], {}, T0 + 61)
        assert sense.stuck() == frozenset()


class TestBatteryCritical:
    def test_no_rider_withdraws(self) -> None:
        assert battery_reaction(robot(battery_pct=4.0), LEG, LIMITS) is Reaction.WITHDRAW

    def test_above_critical_or_charging_is_nothing(self) -> None:
        assert battery_reaction(robot(battery_pct=10.5), LEG, LIMITS) is None
        assert battery_reaction(robot(battery_pct=4.0, charging=True), LEG, LIMITS) is None
        assert battery_reaction(robot(battery_pct=None), LEG, LIMITS) is None

    def test_the_limit_itself_is_critical(self) -> None:
        assert battery_reaction(robot(battery_pct=10.0), LEG, LIMITS) is Reaction.WITHDRAW

    def test_a_charging_trip_is_left_alone(self) -> None:
        charge = LegView("c", mission=False, rider_on_board=False)
        assert battery_reaction(robot(battery_pct=4.0), charge, LIMITS) is None

    def test_rider_on_board_near_the_dropoff_finishes(self) -> None:
        rider = LegView("l", mission=True, rider_on_board=True, dropoff=(52.5009, 13.4))
        assert battery_reaction(robot(battery_pct=4.0), rider, LIMITS) is Reaction.FINISH

    def test_rider_on_board_far_from_the_dropoff_is_held(self) -> None:
        rider = LegView("l", mission=True, rider_on_board=True, dropoff=(52.51, 13.4))
        assert battery_reaction(robot(battery_pct=4.0), rider, LIMITS) is Reaction.HOLD

    def test_rider_on_board_without_a_position_is_held(self) -> None:
        rider = LegView("l", mission=True, rider_on_board=True, dropoff=(52.5, 13.4))
        assert battery_reaction(robot(battery_pct=4.0, position=None), rider, LIMITS) is (
            Reaction.HOLD
        )

    def test_decided_once_per_leg(self) -> None:
        sense = VehicleSense(LIMITS)
        low = robot(battery_pct=4.0, position=GeoPosition(52.5, 13.4))
        out = [sense.check([at(low, float(i))], {low.id: LEG}, T0 + i) for i in range(5)]
        assert [len(o) for o in out] == [1, 0, 0, 0, 0]
        assert out[0][0].cause is Cause.BATTERY_CRITICAL
        leg2 = dataclasses.replace(LEG, leg_id="leg-2")
        assert len(sense.check([low], {low.id: leg2}, T0 + 10)) == 1

"""Live empty and loaded distance: odometer traces, and missions' stretches read from
fleetd's timeline."""

from __future__ import annotations

import pytest

from sim.odometry import (
    OdometerTrace,
    Step,
    holdings,
    mission_distances,
    odometer_at,
    travelled,
)
from sim.robot import RobotSpec, VirtualRobot
from sim.robot_orders import SimNode


def _drive(trace: OdometerTrace, steps: list[tuple[float, float]], dt: float = 1.0) -> None:
    """Feed ``trace`` steps of (duration, metres moved) starting at t = 0."""
    t, odo = 0.0, 0.0
    for duration, metres in steps:
        trace.observe(t, t + duration, odo, odo + metres)
        t, odo = t + duration, odo + metres


class TestTrace:
    def test_marks_fall_where_the_vehicle_sets_off_and_stops(self) -> None:
        trace = OdometerTrace(every_s=100.0)
        # Stands 2 s, drives 3 s at 2 m/s, stands 2 s.
        _drive(trace, [(1.0, 0.0)] * 2 + [(1.0, 2.0)] * 3 + [(1.0, 0.0)] * 2)
        trace.close(7.0, 6.0)
        marks = trace.take()
        assert marks == [(2.0, 0.0), (5.0, 6.0), (7.0, 6.0)]
        assert odometer_at(marks, 3.5) == pytest.approx(3.0)
        assert odometer_at(marks, 1.0) == 0.0
        assert odometer_at(marks, 6.0) == 6.0
        assert odometer_at(marks, 99.0) == 6.0

    def test_a_long_drive_is_marked_every_so_often(self) -> None:
        trace = OdometerTrace(every_s=2.0)
        _drive(trace, [(1.0, 1.0)] * 3 + [(1.0, 5.0)] * 3)
        marks = trace.take()
        # The speed change at t = 3 is caught within every_s.
        assert (0.0, 0.0) in marks
        assert len(marks) >= 3
        assert odometer_at(marks, 6.0) == pytest.approx(18.0)

    def test_a_halted_vehicle_is_not_interpolated_across_its_silence(self) -> None:
        trace = OdometerTrace(every_s=100.0)
        _drive(trace, [(1.0, 1.0)] * 2)
        trace.halt(2.0, 2.0)
        trace.observe(10.0, 11.0, 2.0, 3.0)
        trace.close(11.0, 3.0)
        marks = trace.take()
        assert travelled(marks, 2.0, 10.0) == 0.0
        assert travelled(marks, 0.0, 11.0) == pytest.approx(3.0)

    def test_take_returns_only_new_marks(self) -> None:
        trace = OdometerTrace(every_s=100.0)
        _drive(trace, [(1.0, 1.0)])
        assert trace.take() == [(0.0, 0.0)]
        assert trace.take() == []

    def test_the_robot_counts_the_metres_it_drives(self) -> None:
        robot = VirtualRobot(RobotSpec("acme", "r1", x=0.0, y=0.0, speed_mps=1.0))
        robot.nodes = [SimNode("n1", 2, True, 3.0, 4.0, None, None)]
        for _ in range(20):
            robot.step(0.5)
        assert (robot.x, robot.y) == (3.0, 4.0)
        assert robot.odometer_m == pytest.approx(5.0)


def _s(t: float, event: str, vehicle: str | None = None) -> Step:
    return Step(t, event, vehicle)


class TestHoldings:
    def test_assigned_to_pickup(self) -> None:
        steps = [_s(0, "created"), _s(5, "assigned", "v1"), _s(9, "started", "v1")]
        steps += [_s(30, "pickup_completed", "v1"), _s(60, "completed", "v1")]
        [h] = holdings(steps)
        assert (h.vehicle, h.start_s, h.end_s, h.picked_up) == ("v1", 5, 30, True)

    def test_a_withdrawn_vehicle_counts_until_it_lost_the_leg(self) -> None:
        steps = [_s(5, "assigned", "v1"), _s(20, "unassigned", "v1")]
        steps += [_s(25, "reassigned", "v2"), _s(50, "pickup_completed", "v2")]
        assert [(h.vehicle, h.start_s, h.end_s) for h in holdings(steps)] == [
            ("v1", 5, 20),
            ("v2", 25, 50),
        ]

    def test_a_change_of_hands_ends_the_first_holding(self) -> None:
        steps = [_s(5, "assigned", "v1"), _s(20, "reassigned", "v2")]
        steps += [_s(50, "pickup_completed", "v2")]
        assert [(h.vehicle, h.start_s, h.end_s) for h in holdings(steps)] == [
            ("v1", 5, 20),
            ("v2", 20, 50),
        ]

    def test_a_declined_offer_is_not_a_drive(self) -> None:
        steps = [_s(5, "assigned", "d1"), _s(5.2, "offered", "d1"), _s(5.5, "declined", "d1")]
        steps += [_s(6, "reassigned", "d2"), _s(40, "pickup_completed", "d2")]
        assert [h.vehicle for h in holdings(steps)] == ["d2"]


class TestMissionDistances:
    def test_empty_and_loaded_metres_from_the_odometer(self) -> None:
        # v1 stands until 10, drives 1 m/s to 40 (pickup), 40-45 service, drives to 75.
        marks = [(10.0, 0.0), (40.0, 30.0), (45.0, 30.0), (75.0, 60.0)]
        steps = {"m": [_s(5, "assigned", "v1"), _s(45, "pickup_completed", "v1")]}
        d = mission_distances(steps, {"m": ("v1", 45.0, 80.0)}, {"v1": marks})["m"]
        assert d.measured
        assert d.empty_m == pytest.approx(30.0)
        assert d.loaded_m == pytest.approx(30.0)

    def test_a_vehicle_given_a_job_while_busy_counts_from_its_last_one(self) -> None:
        # Drives 1 m/s throughout: "a" loaded 0-20, then to "b"'s pickup 20-35.
        marks = [(0.0, 0.0), (100.0, 100.0)]
        steps = {
            "a": [_s(0, "assigned", "v1"), _s(0, "pickup_completed", "v1")],
            "b": [_s(10, "assigned", "v1"), _s(35, "pickup_completed", "v1")],
        }
        done = {"a": ("v1", 0.0, 20.0), "b": ("v1", 35.0, 50.0)}
        d = mission_distances(steps, done, {"v1": marks})
        assert d["b"].empty_m == pytest.approx(15.0)
        assert d["a"].loaded_m == pytest.approx(20.0)

    def test_the_withdrawn_vehicles_drive_counts_too(self) -> None:
        marks1 = [(0.0, 0.0), (20.0, 20.0)]
        marks2 = [(25.0, 0.0), (50.0, 50.0)]
        steps = {
            "m": [
                _s(5, "assigned", "v1"),
                _s(15, "unassigned", "v1"),
                _s(25, "reassigned", "v2"),
                _s(50, "pickup_completed", "v2"),
            ]
        }
        d = mission_distances(steps, {}, {"v1": marks1, "v2": marks2})["m"]
        assert d.empty_m == pytest.approx(10.0 + 50.0)
        assert d.loaded_m is None  # not completed in the run

    def test_no_trace_is_not_a_zero(self) -> None:
        steps = {"m": [_s(5, "assigned", "v9"), _s(45, "pickup_completed", "v9")]}
        assert not mission_distances(steps, {}, {})["m"].measured

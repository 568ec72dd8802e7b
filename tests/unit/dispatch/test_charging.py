"""Charging: who goes, to which station (never two to one), and when back in service."""

from __future__ import annotations

import uuid

from dispatcher.dispatch.charging import (
    ChargePolicy,
    RobotNeed,
    Station,
    choose_stations,
    dispatchable,
    needs_charge,
)

FAC = uuid.uuid4()
OTHER = uuid.uuid4()
POLICY = ChargePolicy(charge_below_pct=25, resume_above_pct=80, reserve_pct=15)
NEAR = Station("charger-near", FAC, "n1", 52.5200, 13.4000)
FAR = Station("charger-far", FAC, "n2", 52.5300, 13.4100)


def robot(battery: float, *, busy: bool = False, charging: bool = False, forced: bool = False,
          lat: float = 52.5201, facility: uuid.UUID = FAC) -> RobotNeed:  # fmt: skip
    return RobotNeed(uuid.uuid4(), facility, lat, 13.4001, battery, busy, charging, forced)


class TestNeedsCharge:
    def test_low_and_idle_goes(self) -> None:
        assert needs_charge(robot(20), POLICY)

    def test_busy_or_charging_or_full_enough_stays(self) -> None:
        assert not needs_charge(robot(20, busy=True), POLICY)
        assert not needs_charge(robot(20, charging=True), POLICY)
        assert not needs_charge(robot(60), POLICY)

    def test_the_operator_may_send_any_idle_robot(self) -> None:
        assert needs_charge(robot(90, forced=True), POLICY)


class TestDispatchable:
    def test_never_at_or_below_the_reserve(self) -> None:
        assert not dispatchable(15, False, POLICY)
        assert dispatchable(16, False, POLICY)

    def test_a_charging_robot_returns_above_the_resume_threshold(self) -> None:
        assert not dispatchable(79, True, POLICY)
        assert dispatchable(80, True, POLICY)

    def test_no_battery_reading_is_dispatchable(self) -> None:
        assert dispatchable(None, False, POLICY)


class TestChooseStations:
    def test_the_nearest_free_station(self) -> None:
        r = robot(20)
        assert choose_stations([r], [FAR, NEAR], (), POLICY) == {r.vehicle_id: NEAR}

    def test_never_two_robots_to_one_station(self) -> None:
        """Two low robots get two stations; the lower battery chooses first."""
        low, lower = robot(20), robot(10)
        chosen = choose_stations([low, lower], [NEAR, FAR], (), POLICY)
        assert chosen[lower.vehicle_id] == NEAR and chosen[low.vehicle_id] == FAR

    def test_a_taken_station_is_not_chosen(self) -> None:
        """A station in use (or promised) is skipped; with none left the robot waits."""
        a, b = robot(20), robot(21)
        chosen = choose_stations([a, b], [NEAR, FAR], {"charger-near"}, POLICY)
        assert list(chosen.values()) == [FAR]

    def test_only_stations_of_the_robots_facility(self) -> None:
        assert choose_stations([robot(20, facility=OTHER)], [NEAR], (), POLICY) == {}

"""Which alerts hold: the pure rules over fleet views and open missions."""

from __future__ import annotations

import dataclasses
import uuid

from dispatcher.alerting.rules import (
    SEVERITY,
    AlertKey,
    AlertKind,
    OpenMission,
    Sensed,
    Severity,
    Thresholds,
    current_alerts,
)
from fleet.model import VehicleError, VehicleStatus, VehicleView
from tests.unit.api.fakes import make_vehicle

NOW = 1_900_000_000.0
FACILITY = uuid.uuid4()


def _v(**changes: object) -> VehicleView:
    return dataclasses.replace(make_vehicle(FACILITY, "r1"), **changes)  # type: ignore[arg-type]


def _kinds(vehicles: list[VehicleView], **kw: object) -> set[AlertKind]:
    return {k.kind for k in current_alerts(vehicles, [], {}, now=NOW, **kw)}  # type: ignore[arg-type]


class TestVehicleAlerts:
    def test_a_healthy_vehicle_raises_nothing(self) -> None:
        assert _kinds([_v(battery_pct=80.0)]) == set()

    def test_offline_after_being_seen_raises_vehicle_offline(self) -> None:
        assert _kinds([_v(online=False, status=VehicleStatus.OFFLINE)]) == {
            AlertKind.VEHICLE_OFFLINE
        }

    def test_never_seen_is_not_an_alert(self) -> None:
        assert _kinds([_v(online=False, last_seen=None)]) == set()

    def test_maintenance_silences_everything(self) -> None:
        assert _kinds([_v(online=False, maintenance=True, battery_pct=3.0)]) == set()

    def test_low_battery_unless_charging(self) -> None:
        assert _kinds([_v(battery_pct=12.0)]) == {AlertKind.LOW_BATTERY}
        assert _kinds([_v(battery_pct=12.0, charging=True)]) == set()
        assert _kinds([_v(battery_pct=25.0)], limits=Thresholds(low_battery_pct=30)) == {
            AlertKind.LOW_BATTERY
        }

    def test_fatal_error_and_safety_stop(self) -> None:
        fatal = (VehicleError("lidarFailure", "FATAL", "front lidar"),)
        warning = (VehicleError("dusty", "WARNING"),)
        assert _kinds([_v(errors=fatal)]) == {AlertKind.FATAL_ERROR}
        assert _kinds([_v(errors=warning)]) == set()
        assert _kinds([_v(safety_stop=True)]) == {AlertKind.SAFETY_STOP}
        (cond,) = current_alerts([_v(errors=fatal)], [], {}, now=NOW).values()
        assert "lidarFailure" in cond.message and cond.severity.value == "critical"


class TestMissionAlerts:
    def _m(self, status: str = "pending", age_s: float = 10.0) -> OpenMission:
        return OpenMission(uuid.uuid4(), FACILITY, status, NOW - age_s, None)

    def test_waiting_too_long(self) -> None:
        young, old = self._m(age_s=10), self._m(age_s=400)
        assigned = self._m(status="assigned", age_s=4000)
        found = current_alerts([], [young, old, assigned], {}, now=NOW)
        assert set(found) == {AlertKey(AlertKind.MISSION_WAITING, old.id)}

    def test_a_scheduled_mission_waits_from_its_window_start(self) -> None:
        """Booked ahead and not released before it is due: created an hour ago, its
        window opened a minute ago, it is not waiting too long; ten minutes past its
        window's start it is."""
        booked = OpenMission(uuid.uuid4(), FACILITY, "pending", NOW - 3600, None, NOW - 60)
        late = OpenMission(uuid.uuid4(), FACILITY, "pending", NOW - 3600, None, NOW - 600)
        ahead = OpenMission(uuid.uuid4(), FACILITY, "pending", NOW - 3600, None, NOW + 600)
        found = current_alerts([], [booked, late, ahead], {}, now=NOW)
        assert set(found) == {AlertKey(AlertKind.MISSION_WAITING, late.id)}

    def test_held_for_a_decision(self) -> None:
        m = self._m(status="in_progress")
        found = current_alerts([], [m], {m.id: "vehicle lost"}, now=NOW)
        (cond,) = found.values()
        assert cond.key == AlertKey(AlertKind.MISSION_DECISION, m.id)
        assert "vehicle lost" in cond.message and cond.mission_id == m.id


class TestSensedAlerts:
    """vehicle_stuck, battery_critical and position_unreliable (issue 15/17)."""

    def test_critical_battery_replaces_low_battery(self) -> None:
        limits = Thresholds(low_battery_pct=20.0, critical_battery_pct=10.0)
        assert _kinds([_v(battery_pct=4.0)], limits=limits) == {AlertKind.BATTERY_CRITICAL}
        assert _kinds([_v(battery_pct=10.0)], limits=limits) == {AlertKind.BATTERY_CRITICAL}
        assert _kinds([_v(battery_pct=15.0)], limits=limits) == {AlertKind.LOW_BATTERY}
        assert _kinds([_v(battery_pct=4.0, charging=True)], limits=limits) == set()
        (cond,) = current_alerts([_v(battery_pct=4.0)], [], {}, now=NOW).values()
        assert cond.severity.value == "critical" and "4%" in cond.message

    def test_stuck_and_unreliable_come_from_what_was_sensed(self) -> None:
        v = _v(battery_pct=80.0)
        assert _kinds([v], sensed=Sensed(stuck={v.id})) == {AlertKind.VEHICLE_STUCK}
        assert _kinds([v], sensed=Sensed(unreliable={v.id})) == {AlertKind.POSITION_UNRELIABLE}
        assert _kinds([v], sensed=Sensed(stuck={uuid.uuid4()})) == set()

    def test_an_offline_or_maintained_vehicle_raises_no_sensed_alert(self) -> None:
        v = _v(online=False, status=VehicleStatus.OFFLINE)
        assert _kinds([v], sensed=Sensed(stuck={v.id})) == {AlertKind.VEHICLE_OFFLINE}
        m = _v(maintenance=True)
        assert _kinds([m], sensed=Sensed(stuck={m.id}, unreliable={m.id})) == set()

    def test_severities(self) -> None:
        assert SEVERITY[AlertKind.VEHICLE_STUCK] is Severity.CRITICAL
        assert SEVERITY[AlertKind.BATTERY_CRITICAL] is Severity.CRITICAL
        assert SEVERITY[AlertKind.POSITION_UNRELIABLE] is Severity.WARNING

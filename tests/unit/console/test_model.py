"""The status view's model: state from snapshots and events, rows, filters and orders."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from dispatcher.console.model import (
    Action,
    Column,
    FleetState,
    SortKey,
    VehicleFilter,
    age_text,
    allowed_actions,
    battery_bar,
    fit_columns,
    in_geometry,
)

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
FAC = str(uuid.uuid4())


def _vehicle(name: str, **kw: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
        "facility_id": FAC,
        "name": name,
        "kind": "robot",
        "online": True,
        "status": "idle",
        "battery": 80.0,
        "charging": False,
        "lat": 52.52,
        "lon": 13.40,
        "last_seen": (NOW - timedelta(seconds=1)).isoformat(),
        "mission_id": None,
        "maintenance": False,
        **kw,
    }


def _mission(priority: str = "normal", age_s: float = 60, **kw: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "status": "pending",
        "priority": priority,
        "vehicle_id": None,
        "created_at": (NOW - timedelta(seconds=age_s)).isoformat(),
        **kw,
    }


def _state(**kw: Any) -> FleetState:
    s = FleetState()
    s.apply_snapshot(
        vehicles=kw.get("vehicles", []),
        missions=kw.get("missions", []),
        alerts=kw.get("alerts", []),
        zones=kw.get("zones", []),
        me={"role": "operator", "permissions": ["fleet_view", "vehicle_command"]},
        at=NOW,
    )
    return s


WARD = {
    "name": "ward-a",
    "geometry": {
        "type": "Polygon",
        "coordinates": [[[13.0, 52.0], [14.0, 52.0], [14.0, 53.0], [13.0, 53.0], [13.0, 52.0]]],
    },
}


class TestVehicles:
    def test_rows_filter_and_sort(self) -> None:
        s = _state(
            vehicles=[
                _vehicle("r2", battery=10.0),
                _vehicle("r1", battery=90.0),
                _vehicle("d1", kind="driver", lat=None, lon=None, battery=None),
            ],
            zones=[WARD],
        )
        assert [r.name for r in s.vehicle_rows(now=NOW)] == ["d1", "r1", "r2"]
        by_battery = s.vehicle_rows(now=NOW, sort=SortKey.BATTERY, reverse=True)
        assert [r.name for r in by_battery] == ["r1", "r2", "d1"]
        assert [
            r.name for r in s.vehicle_rows(now=NOW, flt=VehicleFilter.parse("kind:driver"))
        ] == ["d1"]
        ward = s.vehicle_rows(now=NOW, flt=VehicleFilter.parse("zone:ward"))
        assert [r.name for r in ward] == ["r1", "r2"]
        assert [r.name for r in s.vehicle_rows(now=NOW, flt=VehicleFilter.parse("R2"))] == ["r2"]
        assert s.vehicle_rows(now=NOW, flt=VehicleFilter.parse("status:offline")) == []

    def test_display_status_words(self) -> None:
        s = _state()
        assert s.display_status(_vehicle("a", online=False)) == "offline"
        assert s.display_status(_vehicle("a", maintenance=True)) == "maintenance"
        assert s.display_status(_vehicle("a", status="error")) == "error"
        assert s.display_status(_vehicle("a", charging=True)) == "charging"
        m = _mission(status="assigned")
        s.update_mission(m)
        v = _vehicle("a", status="driving", mission_id=m["id"])
        assert s.display_status(v) == "to pickup"
        s.apply_event(
            "mission.pickup_completed",
            {
                "type": "mission",
                "event": "pickup_completed",
                "mission_id": m["id"],
                "to_status": "in_progress",
                "at": NOW.isoformat(),
            },
        )
        assert s.display_status(v) == "to dropoff"
        assert s.display_status({**v, "status": "busy"}) == "carrying"

    def test_vehicle_events_change_the_row_at_once(self) -> None:
        v = _vehicle("r1")
        s = _state(vehicles=[v])
        s.apply_event(
            "vehicle.went_offline",
            {
                "type": "vehicle",
                "event": "went_offline",
                "vehicle_id": v["id"],
                "at": NOW.isoformat(),
            },
            "42",
        )
        (row,) = s.vehicle_rows(now=NOW)
        assert row.status == "offline"
        assert s.last_event_id == "42"
        assert s.recent_events(v["id"])[-1].text == "went offline"


class TestMissions:
    def test_decision_first_then_priority_then_age(self) -> None:
        old_low = _mission("low", age_s=900)
        new_urgent = _mission("urgent", age_s=5)
        old_normal = _mission("normal", age_s=300)
        young_normal = _mission("normal", age_s=30)
        held = _mission("low", age_s=1, status="in_progress")
        decision = {
            "id": str(uuid.uuid4()),
            "kind": "mission_decision",
            "severity": "critical",
            "subject_id": held["id"],
            "mission_id": held["id"],
            "message": "lost",
            "raised_at": NOW.isoformat(),
        }
        s = _state(
            missions=[old_low, new_urgent, old_normal, young_normal, held], alerts=[decision]
        )
        rows = s.mission_rows(now=NOW)
        assert [r.id for r in rows] == [
            held["id"],
            new_urgent["id"],
            old_normal["id"],
            young_normal["id"],
            old_low["id"],
        ]
        assert rows[0].decision and not rows[1].decision

    def test_late_against_the_window(self) -> None:
        window = {
            "start": (NOW - timedelta(minutes=20)).isoformat(),
            "end": (NOW - timedelta(minutes=5)).isoformat(),
        }
        future = {
            "start": (NOW + timedelta(minutes=5)).isoformat(),
            "end": (NOW + timedelta(minutes=20)).isoformat(),
        }
        s = _state(missions=[_mission(window=window), _mission(window=future), _mission()])
        assert sorted(r.late for r in s.mission_rows(now=NOW)) == [False, False, True]

    def test_final_missions_leave_the_panel(self) -> None:
        m = _mission()
        s = _state(missions=[m, _mission(status="completed")])
        assert len(s.missions) == 1
        s.apply_event(
            "mission.cancelled",
            {
                "type": "mission",
                "event": "cancelled",
                "mission_id": m["id"],
                "to_status": "cancelled",
                "actor": "tok",
                "at": NOW.isoformat(),
            },
        )
        assert s.mission_rows(now=NOW) == []
        assert s.recent_events(m["id"])[-1].text == "cancelled by tok"


class TestAlerts:
    def _raised(self, s: FleetState, subject: str, kind: str = "vehicle_offline") -> str:
        aid = str(uuid.uuid4())
        s.apply_event(
            "alert.raised",
            {
                "type": "alert",
                "event": "raised",
                "alert_id": aid,
                "facility_id": FAC,
                "at": NOW.isoformat(),
                "details": {
                    "kind": kind,
                    "severity": "critical",
                    "message": "gone",
                    "subject_id": subject,
                    "vehicle_id": subject,
                    "mission_id": None,
                    "raised_at": NOW.isoformat(),
                },
            },
        )
        return aid

    def test_raised_acknowledged_cleared(self) -> None:
        v = _vehicle("r1")
        s = _state(vehicles=[v])
        aid = self._raised(s, v["id"])
        (row,) = s.alert_rows(now=NOW)
        assert row.new and not row.acknowledged and row.subject == "r1"
        assert s.vehicle_rows(now=NOW)[0].alert
        s.apply_event(
            "alert.acknowledged",
            {
                "type": "alert",
                "event": "acknowledged",
                "alert_id": aid,
                "actor": "op",
                "details": {"kind": "vehicle_offline", "subject_id": v["id"]},
            },
        )
        (row,) = s.alert_rows(now=NOW)
        assert row.acknowledged and not row.new
        assert s.counts()["alerts"] == 0
        s.apply_event(
            "alert.cleared",
            {
                "type": "alert",
                "event": "cleared",
                "alert_id": aid,
                "details": {"kind": "vehicle_offline", "subject_id": v["id"]},
            },
        )
        assert s.alert_rows(now=NOW) == []

    def test_unacknowledged_critical_new_first(self) -> None:
        s = _state()
        s.alerts = {
            "a": {
                "id": "a",
                "kind": "low_battery",
                "severity": "warning",
                "raised_at": NOW.isoformat(),
            },
            "b": {
                "id": "b",
                "kind": "vehicle_offline",
                "severity": "critical",
                "raised_at": (NOW - timedelta(minutes=1)).isoformat(),
            },
            "c": {
                "id": "c",
                "kind": "fatal_error",
                "severity": "critical",
                "raised_at": NOW.isoformat(),
                "acknowledged_at": NOW.isoformat(),
            },
        }
        assert [r.id for r in s.alert_rows(now=NOW)] == ["b", "a", "c"]

    def test_a_decision_comes_before_a_newer_critical_alert(self) -> None:
        """A rider's robot dies: its offline alert is raised after the mission's decision
        alert or with it; the decision (someone must act) is on top all the same."""
        s = _state()
        s.alerts = {
            "off": {
                "id": "off",
                "kind": "vehicle_offline",
                "severity": "critical",
                "raised_at": NOW.isoformat(),
            },
            "dec": {
                "id": "dec",
                "kind": "mission_decision",
                "severity": "critical",
                "raised_at": (NOW - timedelta(seconds=5)).isoformat(),
            },
            "acked": {
                "id": "acked",
                "kind": "mission_decision",
                "severity": "critical",
                "raised_at": NOW.isoformat(),
                "acknowledged_at": NOW.isoformat(),
            },
        }
        assert [r.id for r in s.alert_rows(now=NOW)] == ["dec", "off", "acked"]


class TestBadInput:
    def test_events_not_understood_change_nothing(self) -> None:
        s = _state(vehicles=[_vehicle("r1")])
        before = (dict(s.vehicles), dict(s.missions), dict(s.alerts))
        assert s.apply_event("vehicle.went_offline", {"vehicle_id": "not-a-uuid"}) == ""
        assert s.apply_event("mission.created", {"type": "mission"}) == ""
        assert s.apply_event("alert.raised", {"type": "alert", "alert_id": str(uuid.uuid4())}) == ""
        assert (
            s.apply_event(
                "alert.bogus", {"type": "alert", "alert_id": str(uuid.uuid4()), "details": {}}
            )
            == ""
        )
        assert s.apply_event("zone.created", {"type": "zone"}) == ""
        assert (dict(s.vehicles), dict(s.missions), dict(s.alerts)) == before

    def test_snapshot_rows_without_ids_are_skipped(self) -> None:
        s = _state(vehicles=[{"name": "no id"}], missions=[{"status": "pending"}])
        assert s.vehicles == {} and s.missions == {}


class TestStaleness:
    def test_stale_until_a_snapshot_then_stale_on_loss(self) -> None:
        s = FleetState()
        seen = [(s.stale, s.stale_reason)]
        s.apply_snapshot(vehicles=[], missions=[], alerts=[], at=NOW)
        seen.append((s.stale, s.stale_reason))
        s.mark_stale("cannot connect to the daemon")
        seen.append((s.stale, s.stale_reason))
        assert seen == [
            (True, "connecting"),
            (False, ""),
            (True, "cannot connect to the daemon"),
        ]
        assert s.as_of == NOW  # what the stale data is as of


class TestHelpers:
    def test_narrow_tables_drop_the_lowest_priority_columns_first(self) -> None:
        columns = [
            Column("name", "VEHICLE"),
            Column("kind", "KIND", drop=1),
            Column("status", "STATUS"),
            Column("beat", "BEAT", drop=2),
            Column("zone", "ZONE", drop=3),
        ]
        widths = {"name": 10, "kind": 6, "status": 10, "beat": 4, "zone": 15}

        def keys(available: int) -> list[str]:
            return [c.key for c in fit_columns(columns, widths, available)]

        # Each column: its widest cell or header, plus one cell of padding on each side.
        assert keys(12 + 8 + 12 + 6 + 17) == ["name", "kind", "status", "beat", "zone"]
        assert keys(12 + 8 + 12 + 6 + 16) == ["name", "kind", "status", "beat"]
        assert keys(12 + 8 + 12 + 5) == ["name", "kind", "status"]
        assert keys(24) == ["name", "status"]
        assert keys(3) == ["name", "status"]  # the kept ones stay, fit or not

    def test_battery_bar_is_readable_without_colour(self) -> None:
        assert battery_bar(100.0) == ("█████ 100%", "ok")
        assert battery_bar(40.0)[1] == "mid"
        assert battery_bar(15.0) == ("█░░░░  15%", "low")
        assert battery_bar(None)[1] == "unknown"
        assert battery_bar(150.0)[0].endswith("100%")

    def test_ages(self) -> None:
        assert [age_text(x) for x in (None, 0.42, 12, 300, 9000)] == [
            "-",
            "0.4s",
            "12s",
            "5m",
            "2h",
        ]

    def test_actions_follow_permissions(self) -> None:
        offered = (Action.PAUSE, Action.CANCEL_MISSION, Action.ACKNOWLEDGE)
        assert allowed_actions(["fleet_summary"], offered) == []
        assert allowed_actions(["vehicle_command"], offered) == [Action.PAUSE, Action.ACKNOWLEDGE]
        assert allowed_actions(["mission_cancel_any"], offered) == [Action.CANCEL_MISSION]

    def test_point_in_polygon_with_a_hole(self) -> None:
        poly = {
            "type": "Polygon",
            "coordinates": [
                [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]],
                [[4, 4], [6, 4], [6, 6], [4, 6], [4, 4]],
            ],
        }
        assert in_geometry(1, 1, poly)
        assert not in_geometry(5, 5, poly)
        assert not in_geometry(11, 5, poly)
        assert in_geometry(1, 1, {"type": "MultiPolygon", "coordinates": [poly["coordinates"]]})


class TestVehicleMission:
    def test_the_mission_in_progress_else_the_oldest_assigned(self) -> None:
        v = _vehicle("r1")
        older = _mission(age_s=300, status="assigned", vehicle_id=v["id"])
        newer = _mission(age_s=30, status="assigned", vehicle_id=v["id"])
        s = _state(vehicles=[v], missions=[newer, older])
        assert s.mission_of(v["id"]) == older["id"]
        assert s.vehicle_rows(now=NOW)[0].mission == older["id"][:8]
        running = _mission(age_s=5, status="in_progress", vehicle_id=v["id"])
        s.update_mission(running)
        assert s.mission_of(v["id"]) == running["id"]

"""The alert watch judges only the vehicles that changed since its last round.

A round used to build a view of every vehicle and judge them all; now the registry's
``ALERTS`` dirty list says which to judge again. These tests hold the watch to the same
answers as judging every vehicle afresh (:func:`current_alerts`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import replace

from dispatcher.alerting.rules import AlertKey, AlertKind, Sensed, Thresholds, current_alerts
from dispatcher.alerting.watch import AlertWatch
from dispatcher.config import AlertSettings, Settings
from fleet.model import VehicleKey, VehicleKind
from fleet.record import VehicleRecord
from fleet.registry import FleetRegistry
from fleet.reports import Heard, RobotState
from geo.facility_maps import FacilityMaps
from tests.unit.fleet.test_registry import IDLE_ROBOT


def _registry() -> FleetRegistry:
    settings = Settings()
    return FleetRegistry(
        maps=FacilityMaps(settings.facility_specs),
        default_facility_id=settings.default_facility.id,
        heartbeat_timeout_s=5.0,
    )


def _state(battery: float, *, safety_stop: bool = False) -> RobotState:
    return replace(IDLE_ROBOT, battery_pct=battery, safety_stop=safety_stop)


def _robot(registry: FleetRegistry, serial: str, battery: float, at: float) -> VehicleRecord:
    rec = registry.register(VehicleKey(VehicleKind.ROBOT, "acme", serial))
    registry.apply_robot_state(rec, _state(battery), Heard(at, at))
    return rec


def _kinds(alerts: Mapping[AlertKey, object]) -> set[tuple[AlertKind, uuid.UUID]]:
    return {(k.kind, k.subject_id) for k in alerts}


def _afresh(registry: FleetRegistry, sensed: Sensed = Sensed()) -> set[tuple[AlertKind, uuid.UUID]]:
    return _kinds(current_alerts(registry.records(), (), {}, now=0.0, sensed=sensed))


def test_a_change_after_the_first_round_is_judged_at_the_next() -> None:
    registry = _registry()
    low = _robot(registry, "low", 15.0, 1000.0)
    fine = _robot(registry, "fine", 80.0, 1000.0)
    watch = AlertWatch(None, registry, AlertSettings())  # type: ignore[arg-type]

    assert _kinds(watch.judge_vehicles()) == {(AlertKind.LOW_BATTERY, low.id)}
    registry.apply_robot_state(fine, _state(5.0), Heard(1001.0, 1001.0))
    registry.apply_robot_state(low, _state(60.0), Heard(1001.0, 1001.0))
    assert _kinds(watch.judge_vehicles()) == {(AlertKind.BATTERY_CRITICAL, fine.id)}
    assert _kinds(watch.judge_vehicles()) == _afresh(registry)  # nothing changed: the same


def test_offline_and_safety_stop_reach_the_next_round() -> None:
    registry = _registry()
    gone = _robot(registry, "gone", 80.0, 1000.0)
    stop = _robot(registry, "stop", 80.0, 1000.0)
    watch = AlertWatch(None, registry, AlertSettings())  # type: ignore[arg-type]
    assert watch.judge_vehicles() == {}

    registry.apply_robot_state(stop, _state(80.0, safety_stop=True), Heard(1001.0, 1001.0))
    registry.expire(1005.5)  # "gone" silent past the 5 s timeout; "stop" spoke at 1001
    assert _kinds(watch.judge_vehicles()) == {
        (AlertKind.VEHICLE_OFFLINE, gone.id),
        (AlertKind.SAFETY_STOP, stop.id),
    }
    assert _kinds(watch.judge_vehicles()) == _afresh(registry)


def test_a_stuck_mark_coming_and_going_is_judged_without_a_change() -> None:
    registry = _registry()
    rec = _robot(registry, "stuck", 80.0, 1000.0)
    stuck: set[uuid.UUID] = set()
    watch = AlertWatch(None, registry, AlertSettings(), stuck=lambda: frozenset(stuck))  # type: ignore[arg-type]
    assert watch.judge_vehicles() == {}

    stuck.add(rec.id)
    assert _kinds(watch.judge_vehicles()) == {(AlertKind.VEHICLE_STUCK, rec.id)}
    stuck.clear()
    assert watch.judge_vehicles() == {}


def test_new_thresholds_judge_every_vehicle_again() -> None:
    registry = _registry()
    rec = _robot(registry, "thirty", 30.0, 1000.0)
    watch = AlertWatch(None, registry, AlertSettings())  # type: ignore[arg-type]
    assert watch.judge_vehicles() == {}

    watch.apply(AlertSettings(low_battery_pct=40.0))  # the robot did not change
    assert _kinds(watch.judge_vehicles()) == {(AlertKind.LOW_BATTERY, rec.id)}
    limits = Thresholds(low_battery_pct=40.0)
    assert _kinds(watch.judge_vehicles()) == _kinds(
        current_alerts(registry.records(), (), {}, now=0.0, limits=limits)
    )

"""Fleet metrics are counted at the edge, from the registry's change feed and records."""

from __future__ import annotations

from prometheus_client import REGISTRY

from dispatcher.config import Settings
from dispatcher.fleet_metrics import count_liveness_changes, publish_online
from fleet.model import ConnectionState, VehicleKey, VehicleKind
from fleet.registry import FleetRegistry
from fleet.reports import Heard
from geo.facility_maps import FacilityMaps


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _registry() -> FleetRegistry:
    settings = Settings()
    return FleetRegistry(
        maps=FacilityMaps(settings.facility_specs),
        default_facility_id=settings.default_facility.id,
        heartbeat_timeout_s=5.0,
    )


def test_liveness_changes_are_counted_once_each() -> None:
    """Online and offline transitions each add one; other changes add nothing."""
    registry = _registry()
    count_liveness_changes(registry)
    before_on = _value("fleetd_liveness_changes_total", change="went_online")
    before_off = _value("fleetd_liveness_changes_total", change="went_offline")
    rec = registry.register(VehicleKey(VehicleKind.ROBOT, "acme", "metrics-1"))
    registry.apply_connection(rec, ConnectionState.ONLINE, Heard(1000.0, 1000.0))
    registry.apply_connection(rec, ConnectionState.ONLINE, Heard(1001.0, 1001.0))
    registry.apply_connection(rec, ConnectionState.OFFLINE, Heard(1002.0, 1002.0))
    assert _value("fleetd_liveness_changes_total", change="went_online") == before_on + 1
    assert _value("fleetd_liveness_changes_total", change="went_offline") == before_off + 1


def test_online_gauge_counts_per_kind() -> None:
    """The gauge is set from the records: online vehicles of each kind."""
    registry = _registry()
    robot = registry.register(VehicleKey(VehicleKind.ROBOT, "acme", "metrics-2"))
    registry.register(VehicleKey(VehicleKind.DRIVER, "", "metrics-3"))
    registry.apply_sign_of_life(robot, Heard(1000.0, 1000.0))
    publish_online(registry)
    assert _value("fleetd_vehicles_online", kind="robot") == 1
    assert _value("fleetd_vehicles_online", kind="driver") == 0

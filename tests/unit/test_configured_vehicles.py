"""Vehicles from ``[[fleet.vehicles]]``: known, pinned to a facility (issue 13 items 7, 8)."""

from __future__ import annotations

import uuid
from typing import Any

from dispatcher.config import Settings
from dispatcher.fleet_sync import add_configured_vehicles
from fleet.model import VehicleKey, VehicleKind
from fleet.record import VehicleRecord
from fleet.registry import FleetRegistry
from geo.facility_maps import FacilityMaps


def _facility(key: str, map_id: str) -> dict[str, Any]:
    return {
        "key": key,
        "name": key.upper(),
        "maps": [{"map_id": map_id, "origin_lat": 52.5, "origin_lon": 13.4}],
    }


SETTINGS = Settings(
    facilities=[_facility("north", "north-1"), _facility("south", "south-1")],
    fleet={
        "vehicles": [
            {"kind": "driver", "serial": "d-7", "facility": "south", "name": "Dana"},
            {"kind": "robot", "manufacturer": "acme", "serial": "r1", "facility": "south"},
        ]
    },
)
NORTH, SOUTH = (f.id for f in SETTINGS.effective_facilities)
DRIVER = VehicleKey(VehicleKind.DRIVER, "", "d-7")
ROBOT = VehicleKey(VehicleKind.ROBOT, "acme", "r1")


def registry() -> FleetRegistry:
    return FleetRegistry(
        maps=FacilityMaps(SETTINGS.facility_specs),
        default_facility_id=SETTINGS.default_facility.id,
        heartbeat_timeout_s=5.0,
    )


def test_a_configured_driver_belongs_to_its_facility() -> None:
    """Drivers are no longer all in the default facility: the configured one holds."""
    reg = registry()
    add_configured_vehicles(reg, SETTINGS)
    driver = reg.find(DRIVER)
    assert driver is not None
    assert driver.facility_id == SOUTH != SETTINGS.default_facility.id
    assert driver.name == "Dana"


def test_configuration_moves_a_stored_vehicle_and_pins_it() -> None:
    """A robot stored in north but configured in south is moved, and north's map is foreign."""
    reg = registry()
    stored = VehicleRecord(id=uuid.uuid4(), facility_id=NORTH, key=ROBOT, name="r1")
    reg.add(stored, announce=False)
    add_configured_vehicles(reg, SETTINGS)
    rec = reg.record_by_key(ROBOT)
    assert rec is stored and rec.facility_id == SOUTH and rec.facility_pinned
    assert reg.foreign_map(rec, "north-1")
    assert not reg.foreign_map(rec, "south-1")

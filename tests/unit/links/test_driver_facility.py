"""Drivers' facility from their login (issue 13, item 8): ``<facility key>.<name>``.

The real driver link and registry; only the telemetry sink and the event bus are
recorders (no broker: messages are handed to ``DriverLink.handle`` as the transport would).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import REGISTRY

from dispatcher.config import FacilitySettings, Settings
from dispatcher.fleet_sync import add_configured_vehicles
from dispatcher.links.driver_link import DriverLink, login_facility
from dispatcher.links.vehicle_events import VehicleEvent
from dispatcher.storage.telemetry import TelemetryRow
from fleet.model import VehicleKey, VehicleKind
from fleet.registry import FleetRegistry
from geo.facility_maps import FacilityMaps
from protocols.driver.codec import make_header
from protocols.errors import RejectReason

NORTH = FacilitySettings(key="north", name="North")
SOUTH = FacilitySettings(key="south", name="South")
PREFIX = "fleetd/driver/v1"


@dataclass
class Sink:
    rows: list[TelemetryRow] = field(default_factory=list)
    events: list[VehicleEvent] = field(default_factory=list)

    def add(self, row: TelemetryRow) -> None:
        self.rows.append(row)

    def publish(self, event: VehicleEvent) -> None:
        self.events.append(event)


def world(**fleet: Any) -> tuple[DriverLink, FleetRegistry]:
    settings = Settings(facilities=[NORTH, SOUTH], fleet={"default_facility": "north", **fleet})
    registry = FleetRegistry(
        maps=FacilityMaps(settings.facility_specs),
        default_facility_id=settings.default_facility.id,
        heartbeat_timeout_s=10,
    )
    sink = Sink()
    return DriverLink(settings, registry, sink, sink), registry


def connect(link: DriverLink, driver_id: str) -> None:
    body = {**make_header(1, driver_id), "connectionState": "ONLINE"}
    link.handle(f"{PREFIX}/{driver_id}/connection", json.dumps(body).encode(), False)


def refused() -> float:
    labels = {"link": "driver", "reason": RejectReason.UNKNOWN_VEHICLE.value}
    return REGISTRY.get_sample_value("fleetd_messages_rejected_total", labels) or 0.0


def driver(registry: FleetRegistry, driver_id: str) -> Any:
    return registry.record_by_key(VehicleKey(VehicleKind.DRIVER, "", driver_id))


def test_login_names_the_facility() -> None:
    ids = {"north": NORTH.id, "south": SOUTH.id}
    assert login_facility("south.anna", ids) == SOUTH.id
    assert login_facility("anna", ids) is None
    assert login_facility("west.anna", ids) is None  # no such facility
    assert login_facility("south.", ids) is None  # no name
    assert login_facility(".anna", ids) is None
    # ':' is no separator: a Mosquitto login cannot hold one (the password file's).
    assert login_facility("south:anna", ids) is None


def test_driver_of_another_facility_registers_there_pinned_even_when_unknown_are_refused() -> None:
    link, registry = world(unknown_vehicles="reject", driver_facility_from_login=True)
    connect(link, "south.anna")
    rec = driver(registry, "south.anna")
    assert rec is not None and rec.facility_id == SOUTH.id and rec.facility_pinned
    # A login naming no facility is still an unknown vehicle, refused and counted.
    before = refused()
    connect(link, "bob")
    assert driver(registry, "bob") is None
    assert refused() == before + 1


def test_off_by_default_drivers_wait_in_the_default_facility() -> None:
    link, registry = world(unknown_vehicles="register")
    connect(link, "south.anna")
    rec = driver(registry, "south.anna")
    assert rec is not None and rec.facility_id == NORTH.id and not rec.facility_pinned


def test_a_stored_unpinned_driver_moves_to_its_login_facility_once() -> None:
    link, registry = world(unknown_vehicles="register", driver_facility_from_login=True)
    key = VehicleKey(VehicleKind.DRIVER, "", "south.carla")
    stored = registry.register(key)  # as loaded from before logins named facilities
    assert stored.facility_id == NORTH.id and not stored.facility_pinned
    connect(link, "south.carla")
    assert stored.facility_id == SOUTH.id and stored.facility_pinned


def test_configuration_wins_over_the_login() -> None:
    vehicles = [{"kind": "driver", "serial": "south.dora", "facility": "north"}]
    link, registry = world(driver_facility_from_login=True, vehicles=vehicles)
    settings = Settings(
        facilities=[NORTH, SOUTH], fleet={"default_facility": "north", "vehicles": vehicles}
    )
    add_configured_vehicles(registry, settings)
    connect(link, "south.dora")
    rec = driver(registry, "south.dora")
    assert rec is not None and rec.facility_id == NORTH.id and rec.facility_pinned

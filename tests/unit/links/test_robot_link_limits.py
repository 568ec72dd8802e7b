"""The robot link's identity, facility and size limits (issue 13 items 4, 7, 9, 10).

RobotLink.handle is synchronous and does no I/O: it is driven here with real encoded
VDA 5050 messages, a real registry, and list-backed sinks for telemetry and events.
"""

from __future__ import annotations

from typing import Any

import pytest

from dispatcher.config import Settings
from dispatcher.links.robot_link import RobotLink
from dispatcher.links.vehicle_events import VehicleEvent
from dispatcher.storage.telemetry import TelemetryRow
from fleet.model import VehicleKey, VehicleKind
from fleet.registry import FleetRegistry
from geo.facility import FacilitySpec
from geo.facility_maps import FacilityMaps
from protocols.errors import RejectReason
from tests.unit.protocols.vda_examples import encode, state_small

KEY = VehicleKey(VehicleKind.ROBOT, "WheelCo", "WC-0001")
TOPIC = "uagv/v2/WheelCo/WC-0001/state"


class Rows:
    def __init__(self) -> None:
        self.rows: list[TelemetryRow] = []
        self.events: list[VehicleEvent] = []

    def add(self, row: TelemetryRow) -> None:
        self.rows.append(row)

    def publish(self, event: VehicleEvent) -> None:
        self.events.append(event)


def build(**fleet: Any) -> tuple[RobotLink, FleetRegistry, Settings]:
    settings = Settings(
        fleet={"unknown_vehicles": "register", **fleet},
        facilities=[
            {"key": "site-a", "name": "A", "maps": [_map("campus")]},
            {"key": "site-b", "name": "B", "maps": [_map("other")]},
        ],
    )
    registry = FleetRegistry(
        maps=FacilityMaps(settings.facility_specs),
        default_facility_id=settings.default_facility.id,
        heartbeat_timeout_s=5.0,
    )
    sink = Rows()
    return RobotLink(settings, registry, sink, sink), registry, settings


def _map(map_id: str) -> dict[str, Any]:
    return {"map_id": map_id, "origin_lat": 52.5, "origin_lon": 13.4}


def _facility(settings: Settings, key: str) -> FacilitySpec:
    return next(f for f in settings.facility_specs if f.key == key)


def state_on(map_id: str, **changes: Any) -> bytes:
    msg = state_small()
    msg["agvPosition"]["mapId"] = map_id
    msg.update(changes)
    return encode(msg)


class TestFacility:
    def test_report_on_a_foreign_map_is_refused_and_counted(self) -> None:
        """A robot of site A reporting site B's map stays in A; the message is refused."""
        link, registry, settings = build()
        link.handle(TOPIC, state_on("campus"), False)
        rec = registry.record_by_key(KEY)
        assert rec is not None and rec.facility_id == _facility(settings, "site-a").id
        battery = rec.battery_pct
        link.handle(
            TOPIC, state_on("other", batteryState={"batteryCharge": 5.0, "charging": False}), False
        )
        assert rec.facility_id == _facility(settings, "site-a").id
        assert rec.battery_pct == battery  # nothing of the refused report was applied
        assert link.rejections.counts[RejectReason.FOREIGN_MAP] == 1


class TestUnknownAndIdentity:
    def test_unknown_robot_is_refused_by_default(self) -> None:
        settings = Settings()
        registry = FleetRegistry(
            maps=FacilityMaps(settings.facility_specs),
            default_facility_id=settings.default_facility.id,
            heartbeat_timeout_s=5.0,
        )
        sink = Rows()
        link = RobotLink(settings, registry, sink, sink)
        link.handle(TOPIC, state_on("campus"), False)
        assert len(registry) == 0
        assert link.rejections.counts[RejectReason.UNKNOWN_VEHICLE] == 1

    def test_serial_outside_the_vda_alphabet_is_refused(self) -> None:
        link, registry, _ = build()
        msg = state_small()
        msg["serialNumber"] = "WC\x1b[2J"
        link.handle("uagv/v2/WheelCo/WC\x1b[2J/state", encode(msg), False)
        assert len(registry) == 0
        assert link.rejections.counts[RejectReason.BAD_TOPIC] == 1


class TestErrorBounds:
    def _errors(self, n: int, text: str = "laserBlocked") -> list[dict[str, Any]]:
        return [
            {"errorType": f"{text}{i}", "errorLevel": "WARNING", "errorDescription": text * 3}
            for i in range(n)
        ]

    def test_errors_per_state_are_capped(self) -> None:
        link, registry, _ = build(max_errors_per_state=5)
        link.handle(TOPIC, state_on("campus", errors=self._errors(1000)), False)
        rec = registry.record_by_key(KEY)
        assert rec is not None and len(rec.errors) == 5

    @pytest.mark.parametrize("length", [10_000])
    def test_error_text_is_cut(self, length: int) -> None:
        link, registry, _ = build(max_error_text=64)
        link.handle(TOPIC, state_on("campus", errors=self._errors(1, "x" * length)), False)
        rec = registry.record_by_key(KEY)
        assert rec is not None
        assert all(len(e.type) <= 64 and len(e.description) <= 64 for e in rec.errors)
        changes = registry.drain_changes()
        raised = [c for c in changes if c.kind.value == "error_raised"]
        assert raised and all(len(c.details["type"]) <= 64 for c in raised)

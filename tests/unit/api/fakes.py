"""Test doubles of our own pure classes: a fixed fleet view and vehicle snapshots.

Used by the API unit and integration tests (``from tests.unit.api.fakes import ...``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from fleet.model import (
    GeoPosition,
    MapPose,
    OperatingMode,
    VehicleError,
    VehicleFacts,
    VehicleKey,
    VehicleKind,
    VehicleStatus,
    VehicleView,
    vehicle_id,
)
from fleet.record import Consumer


class StaticFleet:
    """A ``FleetView`` over a fixed set of vehicles (replace ``vehicles`` to change it)."""

    def __init__(self, vehicles: Iterable[VehicleView] = ()) -> None:
        self.vehicles = {v.id: v for v in vehicles}

    def snapshot(self) -> tuple[VehicleView, ...]:
        return tuple(self.vehicles.values())

    def get(self, vehicle_id: uuid.UUID) -> VehicleView | None:
        return self.vehicles.get(vehicle_id)

    def select(self, keep: Callable[[VehicleFacts], bool]) -> tuple[VehicleView, ...]:
        return tuple(v for v in self.vehicles.values() if keep(v))

    # What the alert watch reads: every vehicle counts as changed on every round.
    def take_dirty(self, consumer: Consumer) -> list[VehicleView]:
        return list(self.vehicles.values())

    def records(self) -> list[VehicleView]:
        return list(self.vehicles.values())

    def record(self, vehicle_id: uuid.UUID) -> VehicleView | None:
        return self.vehicles.get(vehicle_id)


def make_vehicle(
    facility_id: uuid.UUID,
    serial: str,
    *,
    kind: VehicleKind = VehicleKind.ROBOT,
    manufacturer: str = "acme",
    online: bool = True,
    status: VehicleStatus = VehicleStatus.IDLE,
    battery: float | None = 80.0,
    lat: float | None = 52.5,
    lon: float | None = 13.4,
    **changes: Any,
) -> VehicleView:
    """A plausible vehicle snapshot; ``changes`` override any other field."""
    manufacturer = manufacturer if kind is VehicleKind.ROBOT else ""
    key = VehicleKey(kind=kind, manufacturer=manufacturer, serial=serial)
    view = VehicleView(
        id=vehicle_id(kind, manufacturer, serial),
        facility_id=facility_id,
        key=key,
        name=serial,
        online=online,
        status=status,
        battery_pct=battery,
        charging=False,
        last_seen=time.time() - 0.5,
        position=GeoPosition(lat=lat, lon=lon, heading_deg=90.0)
        if lat is not None and lon is not None
        else None,
        map_pose=MapPose(map_id="campus", x=1.5, y=-2.0, theta=0.0)
        if kind is VehicleKind.ROBOT
        else None,
        unknown_map=False,
        operating_mode=OperatingMode.AUTOMATIC if kind is VehicleKind.ROBOT else None,
        driving=False,
        paused=False,
        errors=(),
        order_id=None,
        order_update_id=None,
        mission_id=None,
        maintenance=False,
    )
    return replace(view, **changes) if changes else view


__all__ = ["StaticFleet", "VehicleError", "make_vehicle"]

"""Derive a vehicle's one-word operational status from what it reports. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from fleet.model import (
    DriverAvailability,
    OperatingMode,
    VehicleError,
    VehicleKind,
    VehicleStatus,
)

#: VDA 5050 operating modes in which fleetd may not command the robot.
_MANUAL_MODES = frozenset({OperatingMode.MANUAL, OperatingMode.TEACHIN})


@dataclass(frozen=True, slots=True)
class StatusInputs:
    kind: VehicleKind
    online: bool
    maintenance: bool
    errors: tuple[VehicleError, ...]
    operating_mode: OperatingMode | None
    charging: bool
    paused: bool
    driving: bool
    working: bool  # robot: order nodes left or actions running; driver: on a job
    availability: DriverAvailability | None  # drivers only


def derive_status(i: StatusInputs) -> VehicleStatus:
    """The status shown to people and used by the planner, most important first.

    Offline beats everything (nothing it says is current); an operator's maintenance
    flag beats what the vehicle says; a FATAL error beats motion.
    """
    if not i.online:
        return VehicleStatus.OFFLINE
    if i.maintenance:
        return VehicleStatus.MAINTENANCE
    if i.errors and any(e.level == "FATAL" for e in i.errors):
        return VehicleStatus.ERROR
    if i.kind is VehicleKind.ROBOT:
        if i.operating_mode is OperatingMode.SERVICE:
            return VehicleStatus.MAINTENANCE
        if i.operating_mode in _MANUAL_MODES:
            return VehicleStatus.BUSY
    if i.charging:
        return VehicleStatus.CHARGING
    if i.paused:
        return VehicleStatus.PAUSED
    if i.kind is VehicleKind.DRIVER:
        if i.availability is DriverAvailability.BREAK:
            return VehicleStatus.BREAK
        if i.availability is DriverAvailability.OFFLINE:
            # Connected, but the driver has signed off work.
            return VehicleStatus.OFFLINE
        if i.availability is DriverAvailability.BUSY or i.working:
            return VehicleStatus.DRIVING if i.driving else VehicleStatus.BUSY
        return VehicleStatus.IDLE
    if i.driving:
        return VehicleStatus.DRIVING
    if i.working:
        return VehicleStatus.BUSY
    return VehicleStatus.IDLE

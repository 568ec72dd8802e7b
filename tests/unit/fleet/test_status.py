"""derive_status: one word per vehicle, most important condition first."""

from __future__ import annotations

import pytest

from fleet.model import (
    DriverAvailability,
    OperatingMode,
    VehicleError,
    VehicleKind,
    VehicleStatus,
)
from fleet.status import StatusInputs, derive_status

FATAL = (VehicleError("laserBlocked", "FATAL"),)
WARN = (VehicleError("batteryLow", "WARNING"),)


def inputs(**kw: object) -> StatusInputs:
    base: dict[str, object] = {
        "kind": VehicleKind.ROBOT,
        "online": True,
        "maintenance": False,
        "errors": (),
        "operating_mode": OperatingMode.AUTOMATIC,
        "charging": False,
        "paused": False,
        "driving": False,
        "working": False,
        "availability": None,
    }
    base.update(kw)
    return StatusInputs(**base)  # type: ignore[arg-type]


class TestDeriveStatus:
    @pytest.mark.parametrize(
        ("overrides", "expected"),
        [
            ({}, VehicleStatus.IDLE),
            ({"online": False, "maintenance": True, "errors": FATAL}, VehicleStatus.OFFLINE),
            ({"maintenance": True, "errors": FATAL}, VehicleStatus.MAINTENANCE),
            ({"errors": FATAL, "driving": True}, VehicleStatus.ERROR),
            ({"errors": WARN, "driving": True}, VehicleStatus.DRIVING),
            ({"operating_mode": OperatingMode.SERVICE}, VehicleStatus.MAINTENANCE),
            ({"operating_mode": OperatingMode.MANUAL, "driving": True}, VehicleStatus.BUSY),
            ({"charging": True, "paused": True}, VehicleStatus.CHARGING),
            ({"paused": True, "driving": True}, VehicleStatus.PAUSED),
            ({"working": True}, VehicleStatus.BUSY),
            ({"working": True, "driving": True}, VehicleStatus.DRIVING),
        ],
    )
    def test_robot(self, overrides: dict[str, object], expected: VehicleStatus) -> None:
        """Offline > maintenance > fatal error > manual modes > charging > paused > motion."""
        assert derive_status(inputs(**overrides)) is expected

    @pytest.mark.parametrize(
        ("overrides", "expected"),
        [
            ({"availability": DriverAvailability.ONLINE}, VehicleStatus.IDLE),
            ({"availability": DriverAvailability.BUSY}, VehicleStatus.BUSY),
            ({"availability": DriverAvailability.BUSY, "driving": True}, VehicleStatus.DRIVING),
            ({"availability": DriverAvailability.BREAK}, VehicleStatus.BREAK),
            ({"availability": DriverAvailability.OFFLINE}, VehicleStatus.OFFLINE),
            ({"availability": DriverAvailability.ONLINE, "online": False}, VehicleStatus.OFFLINE),
            (
                {"availability": DriverAvailability.ONLINE, "maintenance": True},
                VehicleStatus.MAINTENANCE,
            ),
        ],
    )
    def test_driver(self, overrides: dict[str, object], expected: VehicleStatus) -> None:
        """A driver's own availability decides, unless offline or in maintenance."""
        assert (
            derive_status(inputs(kind=VehicleKind.DRIVER, operating_mode=None, **overrides))
            is expected
        )

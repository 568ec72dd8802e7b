"""Cursors are opaque and round-trip; the public vehicle shape is complete and honest."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from dispatcher.api.problems import ProblemError
from dispatcher.api.schemas import VehiclePublic, decode_cursor, encode_cursor
from fleet.model import VehicleError, VehicleKind, VehicleStatus
from tests.unit.api.fakes import make_vehicle

FACILITY = uuid.uuid4()

PUBLIC_FIELDS = {
    "id",
    "facility_id",
    "kind",
    "name",
    "manufacturer",
    "serial",
    "online",
    "status",
    "battery",
    "charging",
    "lat",
    "lon",
    "heading_deg",
    "map_id",
    "x",
    "y",
    "unknown_map",
    "last_seen",
    "mission_id",
    "operating_mode",
    "errors",
    "maintenance",
}


class TestCursor:
    def test_round_trip(self) -> None:
        cursor = encode_cursor({"n": "robot 7", "i": "abc"})
        assert "=" not in cursor
        assert "robot" not in cursor
        assert decode_cursor(cursor, keys=("n", "i")) == {"n": "robot 7", "i": "abc"}

    @pytest.mark.parametrize("bad", ["", "!!!", "bm90IGpzb24", encode_cursor({"n": "x"})])
    def test_bad_cursor_is_a_400_naming_the_field(self, bad: str) -> None:
        with pytest.raises(ProblemError) as info:
            decode_cursor(bad, keys=("n", "i"))
        assert info.value.status == 400
        assert info.value.errors == [("query.cursor", "invalid cursor")]


class TestVehiclePublic:
    def test_robot_shape(self) -> None:
        view = make_vehicle(
            FACILITY,
            "r1",
            errors=(VehicleError("navigationError", "FATAL", "lost"),),
            last_seen=1_700_000_000.25,
        )
        out = VehiclePublic.from_view(view).model_dump(mode="json")
        assert set(out) == PUBLIC_FIELDS
        assert out["kind"] == "robot"
        assert out["manufacturer"] == "acme"
        assert out["battery"] == 80.0
        assert (out["lat"], out["lon"], out["heading_deg"]) == (52.5, 13.4, 90.0)
        assert (out["map_id"], out["x"], out["y"]) == ("campus", 1.5, -2.0)
        assert out["errors"] == [
            {"type": "navigationError", "level": "FATAL", "description": "lost"}
        ]
        assert datetime.fromisoformat(out["last_seen"]) == datetime.fromtimestamp(
            1_700_000_000.25, UTC
        )

    def test_unknown_position_and_battery_are_null(self) -> None:
        view = make_vehicle(FACILITY, "r2", lat=None, lon=None, battery=None, last_seen=None)
        out = VehiclePublic.from_view(view).model_dump(mode="json")
        assert out["lat"] is None
        assert out["lon"] is None
        assert out["heading_deg"] is None
        assert out["battery"] is None
        assert out["last_seen"] is None

    def test_driver_has_no_manufacturer_or_map(self) -> None:
        view = make_vehicle(FACILITY, "d1", kind=VehicleKind.DRIVER, status=VehicleStatus.BREAK)
        out = VehiclePublic.from_view(view).model_dump(mode="json")
        assert out["manufacturer"] is None
        assert out["serial"] == "d1"
        assert out["map_id"] is None
        assert out["x"] is None
        assert out["status"] == "break"

"""The pure parts of ``fleetd mission``: parsing --pickup/--at and printing a mission."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from dispatcher.cli.mission import (
    UsageError,
    build_create_body,
    format_mission,
    parse_at,
    parse_location,
)
from dispatcher.config import Settings

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2030, 5, 1, 10, 0, tzinfo=UTC)  # 12:00 in Berlin


def _args(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = {
        "pickup": "Ward A",
        "dropoff": "Radiology",
        "priority": "normal",
        "at": None,
        "window": 15,
        "kind": None,
        "notes": None,
        "facility": None,
        "idempotency_key": None,
    }
    base.update(kw)
    return argparse.Namespace(**base)


class TestParse:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("Ward A", {"place": "Ward A"}),
            ("  Radiology ", {"place": "Radiology"}),
            ("52.52,13.405", {"lat": 52.52, "lon": 13.405}),
            ("-33.9, 18.4", {"lat": -33.9, "lon": 18.4}),
        ],
    )
    def test_location_is_a_place_or_a_point(self, text: str, expected: dict[str, object]) -> None:
        """LAT,LON pairs become points; anything else is a place name."""
        assert parse_location(text) == expected

    def test_hh_mm_is_today_in_the_facility_zone(self) -> None:
        """14:30 means today 14:30 local time at the facility."""
        at = parse_at("14:30", BERLIN, now=NOW)
        assert at == datetime(2030, 5, 1, 14, 30, tzinfo=BERLIN)

    def test_iso_without_zone_is_facility_time(self) -> None:
        """An ISO time without an offset is read in the facility's zone; with one, as given."""
        assert parse_at("2030-05-02T09:00", BERLIN).utcoffset() == BERLIN.utcoffset(
            datetime(2030, 5, 2, 9)
        )
        assert parse_at("2030-05-02T09:00Z", BERLIN) == datetime(2030, 5, 2, 9, tzinfo=UTC)

    @pytest.mark.parametrize("text", ["tomorrow", "25:00", "9"])
    def test_garbage_time_is_a_usage_error(self, text: str) -> None:
        """Unreadable times are refused with the accepted forms in the message."""
        with pytest.raises(UsageError, match="HH:MM"):
            parse_at(text, BERLIN, now=NOW)


class TestCreateBody:
    def test_minimal(self) -> None:
        """Only the places and the priority are sent by default."""
        body = build_create_body(_args(), Settings(), now=NOW)
        assert body == {
            "pickup": {"place": "Ward A"},
            "dropoff": {"place": "Radiology"},
            "priority": "normal",
        }

    def test_at_becomes_a_window(self) -> None:
        """--at and --window make the requested pickup window."""
        body = build_create_body(_args(at="2030-05-01T13:00+00:00", window=20), Settings(), now=NOW)
        assert body["window"] == {
            "start": "2030-05-01T13:00:00+00:00",
            "end": "2030-05-01T13:20:00+00:00",
        }

    def test_at_in_the_past_is_refused(self) -> None:
        """A pickup time whose window has passed is a usage error, not a server round trip."""
        with pytest.raises(UsageError, match="in the past"):
            build_create_body(_args(at="2030-05-01T08:00+00:00"), Settings(), now=NOW)

    def test_kind_and_notes(self) -> None:
        """--kind and --notes go into requirements and notes."""
        body = build_create_body(_args(kind="robot", notes="oxygen"), Settings(), now=NOW)
        assert body["requirements"] == {"vehicle_kind": "robot"}
        assert body["notes"] == "oxygen"


class TestFormat:
    def test_mission_and_timeline_are_readable(self) -> None:
        """show prints the places, the status and one line per event."""
        doc = {
            "id": "m-1",
            "status": "cancelled",
            "priority": "high",
            "facility_id": "f-1",
            "pickup": {"place": "Ward A", "lat": 52.5218, "lon": 13.4061},
            "dropoff": {"place": None, "lat": 52.52, "lon": 13.4},
            "window": None,
            "requirements": {"vehicle_kind": "robot", "wheelchair_type": None, "payload_kg": 80},
            "passenger": {"ref": "P-1", "display_name": None},
            "notes": None,
            "created_by": "nurse-7",
            "vehicle_id": None,
            "version": 2,
            "created_at": "2030-05-01T10:00:00+00:00",
            "updated_at": "2030-05-01T10:05:00+00:00",
            "timeline": [
                {"seq": 1, "event": "created", "from_status": None, "to_status": "pending",
                 "vehicle_id": None, "actor": "nurse-7", "details": {},
                 "at": "2030-05-01T10:00:00+00:00"},
                {"seq": 2, "event": "cancelled", "from_status": "pending",
                 "to_status": "cancelled", "vehicle_id": None, "actor": "nurse-7",
                 "details": {"reason": "not needed"}, "at": "2030-05-01T10:05:00+00:00"},
            ],
        }  # fmt: skip
        text = format_mission(doc, BERLIN)
        assert text.splitlines()[0] == "mission m-1  cancelled  priority high"
        assert "Ward A (52.52180, 13.40610)" in text
        assert "vehicle robot, payload 80 kg" in text
        assert "2030-05-01 12:00:00 CEST  created" in text
        assert "pending -> cancelled" in text
        assert "reason=not needed" in text

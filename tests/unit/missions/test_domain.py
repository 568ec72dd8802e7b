"""Resolving requests against the facility map (pure), and list cursors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from dispatcher.config import FacilitySettings
from dispatcher.missions.domain import (
    Cursor,
    Location,
    check_route,
    resolve_facility,
    resolve_place,
)
from dispatcher.missions.errors import InvalidCursor, InvalidMission

FAC = FacilitySettings(
    key="north",
    name="North Hospital",
    places=[
        {"name": "Ward A", "lat": 52.5218, "lon": 13.4061},
        {"name": "Radiology", "lat": 52.5209, "lon": 13.4095},
        {"name": "lobby", "lat": 52.5201, "lon": 13.4052},
        {"name": "Lobby", "lat": 52.5202, "lon": 13.4053},
    ],
).spec
OTHER = FacilitySettings(key="south", name="South Clinic").spec


class TestResolveFacility:
    def test_by_key_or_id(self) -> None:
        """A facility is named by its key or its UUID."""
        assert resolve_facility([FAC, OTHER], "south", None) is OTHER
        assert resolve_facility([FAC, OTHER], str(FAC.id).upper(), None) is FAC

    def test_default_when_not_given(self) -> None:
        """No facility in the body means the caller's own."""
        assert resolve_facility([FAC, OTHER], None, OTHER) is OTHER

    def test_unknown_names_the_field(self) -> None:
        """An unknown facility is an error on the facility field."""
        with pytest.raises(InvalidMission) as exc:
            resolve_facility([FAC], "west", None)
        assert exc.value.field == "facility"

    def test_required_for_unscoped_callers_without_a_default(self) -> None:
        """A caller with no facility and no default must name one."""
        with pytest.raises(InvalidMission) as exc:
            resolve_facility([FAC], None, None)
        assert exc.value.field == "facility"


class TestResolvePlace:
    def test_case_insensitive_when_unambiguous(self) -> None:
        """A place is found by its name in any case, and keeps its canonical name."""
        assert resolve_place(FAC, "RADIOLOGY", "pickup") == Location(52.5209, 13.4095, "Radiology")

    def test_exact_name_wins_over_folded_ones(self) -> None:
        """Two places differing in case only: the exact spelling decides."""
        assert resolve_place(FAC, "Lobby", "pickup").lat == 52.5202
        with pytest.raises(InvalidMission):
            resolve_place(FAC, "LOBBY", "pickup")

    def test_unknown_place_names_the_field(self) -> None:
        """An unknown place is refused on ``{field}.place``, listing the known ones."""
        with pytest.raises(InvalidMission) as exc:
            resolve_place(FAC, "Mars", "dropoff")
        assert exc.value.field == "dropoff.place"
        assert "Radiology" in exc.value.message


class TestCheckRoute:
    def test_dropoff_at_the_pickup_is_refused(self) -> None:
        """Within a centimetre is the same point: refused on dropoff."""
        with pytest.raises(InvalidMission) as exc:
            check_route(Location(52.5, 13.4, "A"), Location(52.50000001, 13.4))
        assert exc.value.field == "dropoff"

    def test_distinct_points_pass(self) -> None:
        """A dropoff a few metres away is a transport."""
        check_route(Location(52.5, 13.4), Location(52.5001, 13.4))


class TestCursor:
    def test_round_trip(self) -> None:
        """A cursor decodes to what was encoded."""
        cur = Cursor(datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), uuid.uuid4())
        assert Cursor.decode(cur.encode()) == cur

    @pytest.mark.parametrize("text", ["", "abc", "bm90IGpzb24", "WzEsMl0", "WyIyMDMwIiwieCJd"])
    def test_garbage_is_refused(self, text: str) -> None:
        """Anything we did not make is an InvalidCursor."""
        with pytest.raises(InvalidCursor):
            Cursor.decode(text)

"""Resolving create requests against the facility map, hashing them, and list cursors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from dispatcher.config import FacilitySettings
from dispatcher.missions.domain import Cursor, build_draft, request_hash, resolve_facility
from dispatcher.missions.errors import InvalidCursor, InvalidMission
from dispatcher.missions.models import MissionCreate

FAC = FacilitySettings(
    key="north",
    name="North Hospital",
    places=[
        {"name": "Ward A", "lat": 52.5218, "lon": 13.4061},
        {"name": "Radiology", "lat": 52.5209, "lon": 13.4095},
    ],
)
OTHER = FacilitySettings(key="south", name="South Clinic")


def _body(**kw: object) -> MissionCreate:
    data: dict[str, object] = {"pickup": {"place": "Ward A"}, "dropoff": {"place": "Radiology"}}
    data.update(kw)
    return MissionCreate.model_validate(data)


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


class TestBuildDraft:
    def test_places_become_points(self) -> None:
        """Place names resolve to their coordinates and keep the canonical name."""
        draft = build_draft(
            _body(pickup={"place": "ward a"}), FAC, created_by="u", idempotency_key=None
        )
        assert draft.pickup.place == "Ward A"
        assert (draft.pickup.lat, draft.pickup.lon) == (52.5218, 13.4061)
        assert draft.facility_id == FAC.id

    def test_unknown_place_names_the_field(self) -> None:
        """An unknown place is refused on pickup.place (or dropoff.place), listing known ones."""
        with pytest.raises(InvalidMission) as exc:
            build_draft(_body(dropoff={"place": "Mars"}), FAC, created_by="u", idempotency_key=None)
        assert exc.value.field == "dropoff.place"
        assert "Radiology" in exc.value.message

    def test_place_and_its_own_point_are_the_same_location(self) -> None:
        """A place as pickup and its coordinates as dropoff is refused on dropoff."""
        with pytest.raises(InvalidMission) as exc:
            build_draft(
                _body(dropoff={"lat": 52.5218, "lon": 13.4061}),
                FAC,
                created_by="u",
                idempotency_key=None,
            )
        assert exc.value.field == "dropoff"


class TestRequestHash:
    def test_equal_requests_hash_equal(self) -> None:
        """Defaults written out or left away make the same request."""
        assert request_hash(_body(), FAC.id) == request_hash(_body(priority="normal"), FAC.id)

    def test_different_requests_hash_differently(self) -> None:
        """Any difference in the body or the facility changes the hash."""
        base = request_hash(_body(), FAC.id)
        assert request_hash(_body(priority="high"), FAC.id) != base
        assert request_hash(_body(), OTHER.id) != base


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

"""Validation of mission request bodies: bad input is refused, naming the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from dispatcher.api.mission_schemas import CancelRequest, MissionCreate, PriorityChange
from dispatcher.missions.lifecycle import Priority

NOW = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)


def _create(**overrides: Any) -> MissionCreate:
    body: dict[str, Any] = {"pickup": {"place": "Ward A"}, "dropoff": {"place": "Radiology"}}
    body.update(overrides)
    return MissionCreate.model_validate(body, context={"now": NOW})


def _locs(exc: pytest.ExceptionInfo[ValidationError]) -> list[str]:
    return [".".join(str(p) for p in err["loc"]) for err in exc.value.errors()]


def _iso(delta: timedelta) -> str:
    return (NOW + delta).isoformat()


class TestMissionCreate:
    def test_minimal_body_gets_defaults(self) -> None:
        """Pickup and dropoff alone make a normal-priority mission for any vehicle."""
        body = _create()
        assert body.priority is Priority.NORMAL
        assert body.requirements.vehicle_kind == "any"
        assert body.window is None
        assert body.facility is None

    def test_full_body_is_accepted(self) -> None:
        """Every documented field can be given at once."""
        body = _create(
            facility="demo-campus",
            pickup={"lat": 52.5, "lon": 13.4},
            priority="urgent",
            window={"start": _iso(timedelta(minutes=5)), "end": _iso(timedelta(minutes=35))},
            requirements={
                "vehicle_kind": "robot",
                "wheelchair_type": "electric",
                "payload_kg": 120,
            },
            passenger={"ref": "P-0042", "display_name": "Ms. K."},
            notes="oxygen bottle",
        )
        assert body.window is not None
        assert body.requirements.payload_kg == 120

    def test_pickup_equal_to_dropoff_is_refused_naming_dropoff(self) -> None:
        """The same place twice (in any letter case) is refused on the dropoff field."""
        with pytest.raises(ValidationError) as exc:
            _create(dropoff={"place": "ward a"})
        assert _locs(exc) == ["dropoff"]
        assert "must differ from pickup" in str(exc.value)

    def test_same_point_twice_is_refused(self) -> None:
        """Identical coordinates for pickup and dropoff are refused."""
        with pytest.raises(ValidationError) as exc:
            _create(pickup={"lat": 1.0, "lon": 2.0}, dropoff={"lat": 1.0, "lon": 2.0})
        assert _locs(exc) == ["dropoff"]

    @pytest.mark.parametrize(
        ("location", "field"),
        [
            ({"lat": 90.5, "lon": 0}, "pickup.lat"),
            ({"lat": -91, "lon": 0}, "pickup.lat"),
            ({"lat": 0, "lon": 180.01}, "pickup.lon"),
            ({"lat": 0, "lon": -181}, "pickup.lon"),
            ({"lat": "north", "lon": 0}, "pickup.lat"),
        ],
    )
    def test_coordinates_out_of_range_are_refused(
        self, location: dict[str, Any], field: str
    ) -> None:
        """Latitude is -90..90, longitude -180..180; errors name the coordinate."""
        with pytest.raises(ValidationError) as exc:
            _create(pickup=location)
        assert _locs(exc) == [field]

    @pytest.mark.parametrize(
        "location",
        [{}, {"lat": 1.0}, {"place": "Ward B", "lat": 1.0, "lon": 2.0}, {"place": ""}],
    )
    def test_location_must_be_a_place_or_a_point(self, location: dict[str, Any]) -> None:
        """A location is exactly one of: a place name, or both lat and lon."""
        with pytest.raises(ValidationError) as exc:
            _create(pickup=location)
        assert all(loc.startswith("pickup") for loc in _locs(exc))

    def test_window_in_the_past_is_refused(self) -> None:
        """A window that has already ended is refused on window.end."""
        with pytest.raises(ValidationError) as exc:
            _create(window={"start": _iso(-timedelta(hours=2)), "end": _iso(-timedelta(hours=1))})
        assert _locs(exc) == ["window.end"]
        assert "past" in str(exc.value)

    def test_window_already_open_is_accepted(self) -> None:
        """A window that started but has not ended yet is fine (pick up as soon as possible)."""
        body = _create(
            window={"start": _iso(-timedelta(minutes=5)), "end": _iso(timedelta(hours=1))}
        )
        assert body.window is not None

    def test_window_end_must_follow_start(self) -> None:
        """end == start or end before start is refused on window.end."""
        with pytest.raises(ValidationError) as exc:
            _create(window={"start": _iso(timedelta(hours=2)), "end": _iso(timedelta(hours=1))})
        assert _locs(exc) == ["window.end"]

    def test_window_too_far_ahead_is_refused(self) -> None:
        """A window must start within seven days."""
        with pytest.raises(ValidationError) as exc:
            _create(
                window={"start": _iso(timedelta(days=8)), "end": _iso(timedelta(days=8, hours=1))}
            )
        assert _locs(exc) == ["window.start"]

    def test_window_needs_a_timezone(self) -> None:
        """Naive timestamps are ambiguous and refused."""
        with pytest.raises(ValidationError) as exc:
            _create(window={"start": "2030-05-01T13:00:00", "end": "2030-05-01T14:00:00"})
        assert set(_locs(exc)) == {"window.start", "window.end"}

    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"colour": "red"}, "colour"),
            ({"pickup": {"place": "Ward A", "floor": 2}}, "pickup.floor"),
            ({"passenger": {"ref": "P1", "birth_date": "1950-01-01"}}, "passenger.birth_date"),
            ({"requirements": {"wheels": 4}}, "requirements.wheels"),
        ],
    )
    def test_unknown_fields_are_refused(self, overrides: dict[str, Any], field: str) -> None:
        """Unknown fields anywhere are refused, so no personal data slips in unnoticed."""
        with pytest.raises(ValidationError) as exc:
            _create(**overrides)
        assert _locs(exc) == [field]

    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"priority": "asap"}, "priority"),
            ({"requirements": {"payload_kg": 501}}, "requirements.payload_kg"),
            ({"requirements": {"payload_kg": -1}}, "requirements.payload_kg"),
            ({"requirements": {"vehicle_kind": "bike"}}, "requirements.vehicle_kind"),
            ({"notes": "x" * 2001}, "notes"),
            ({"notes": "nul\x00byte"}, "notes"),
            ({"passenger": {"display_name": "no ref"}}, "passenger.ref"),
        ],
    )
    def test_out_of_range_values_are_refused(self, overrides: dict[str, Any], field: str) -> None:
        """Each field's range is enforced and the error names the field."""
        with pytest.raises(ValidationError) as exc:
            _create(**overrides)
        assert _locs(exc) == [field]


class TestSmallBodies:
    def test_priority_change_needs_a_priority(self) -> None:
        """A priority change names the new priority; unknown fields are refused."""
        assert PriorityChange.model_validate({"priority": "high"}).priority is Priority.HIGH
        with pytest.raises(ValidationError):
            PriorityChange.model_validate({})
        with pytest.raises(ValidationError):
            PriorityChange.model_validate({"priority": "high", "extra": 1})

    def test_cancel_reason_is_optional_and_bounded(self) -> None:
        """A cancellation may say why, in at most 500 characters."""
        assert CancelRequest.model_validate({}).reason is None
        assert CancelRequest.model_validate({"reason": " no longer needed "}).reason == (
            "no longer needed"
        )
        with pytest.raises(ValidationError):
            CancelRequest.model_validate({"reason": "x" * 501})

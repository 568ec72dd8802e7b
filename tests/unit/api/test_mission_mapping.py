"""Mission API shapes into the domain: create requests resolved and hashed; records out."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from dispatcher.api.mission_mapping import build_draft, request_hash, to_public, with_timeline
from dispatcher.api.mission_schemas import MissionCreate
from dispatcher.config import FacilitySettings
from dispatcher.missions.domain import EventRecord, Location, MissionRecord
from dispatcher.missions.errors import InvalidMission
from dispatcher.missions.lifecycle import MissionEvent, MissionStatus, Priority

FAC = FacilitySettings(
    key="north",
    name="North Hospital",
    places=[
        {"name": "Ward A", "lat": 52.5218, "lon": 13.4061},
        {"name": "Radiology", "lat": 52.5209, "lon": 13.4095},
    ],
).spec
OTHER = FacilitySettings(key="south", name="South Clinic").spec
T0 = datetime(2030, 1, 1, tzinfo=UTC)


def _body(**kw: object) -> MissionCreate:
    data: dict[str, object] = {"pickup": {"place": "Ward A"}, "dropoff": {"place": "Radiology"}}
    data.update(kw)
    return MissionCreate.model_validate(data)


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


class TestOut:
    RECORD = MissionRecord(
        id=uuid.uuid4(),
        facility_id=FAC.id,
        status=MissionStatus.PENDING,
        priority=Priority.HIGH,
        pickup=Location(52.5218, 13.4061, "Ward A"),
        dropoff=Location(52.5209, 13.4095),
        window_start=None,
        window_end=None,
        requirements={"vehicle_kind": "robot"},
        passenger_ref="p-1",
        passenger_name=None,
        notes=None,
        created_by="u",
        vehicle_id=None,
        version=1,
        created_at=T0,
        updated_at=T0,
        completed_at=None,
    )

    def test_record_becomes_its_public_shape(self) -> None:
        """Every field the API shows comes from the record; absent parts are null."""
        public = to_public(self.RECORD)
        assert public.id == self.RECORD.id and public.priority is Priority.HIGH
        assert public.pickup.place == "Ward A" and public.dropoff.place is None
        assert public.requirements.vehicle_kind == "robot"
        assert public.passenger is not None and public.passenger.ref == "p-1"
        assert public.window is None

    def test_timeline_keeps_the_events_in_order(self) -> None:
        """A mission with its timeline lists the events as given (oldest first)."""
        created = EventRecord(
            seq=7,
            mission_id=self.RECORD.id,
            facility_id=FAC.id,
            event=MissionEvent.CREATED,
            from_status=None,
            to_status=MissionStatus.PENDING,
            vehicle_id=None,
            actor="u",
            at=T0,
        )
        full = with_timeline(self.RECORD, [created])
        assert [e.seq for e in full.timeline] == [7]
        assert full.timeline[0].event is MissionEvent.CREATED

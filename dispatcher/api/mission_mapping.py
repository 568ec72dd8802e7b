"""Between the mission API's shapes and the missions domain, both ways.

In: :func:`build_draft` turns a validated :class:`MissionCreate` into a
:class:`~dispatcher.missions.domain.MissionDraft` (places looked up in the facility map,
request hashed for idempotency). Out: :func:`to_public`, :func:`event_to_public` and
:func:`with_timeline` make the response shapes from the store's records. Pure.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from dispatcher.api.mission_schemas import (
    LocationIn,
    LocationPublic,
    MissionCreate,
    MissionEventPublic,
    MissionPublic,
    MissionWithTimeline,
    PassengerPublic,
    RequirementsPublic,
    WindowPublic,
)
from dispatcher.missions.domain import (
    EventRecord,
    Location,
    MissionDraft,
    MissionRecord,
    VehicleKindRequirement,
    check_route,
    resolve_place,
)
from geo.facility import FacilitySpec

# In ------------------------------------------------------------------------------------


def request_hash(body: MissionCreate, facility_id: uuid.UUID) -> bytes:
    """SHA-256 of the validated request (defaults filled in) and the facility it lands in.

    Two requests with one idempotency key are "the same" when these hashes are equal.
    """
    doc = body.model_dump(mode="json")
    doc["facility"] = str(facility_id)
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).digest()


def _location(facility: FacilitySpec, loc: LocationIn, field_name: str) -> Location:
    if loc.place is not None:
        return resolve_place(facility, loc.place, field_name)
    assert loc.lat is not None
    assert loc.lon is not None
    return Location(lat=loc.lat, lon=loc.lon)


def build_draft(
    body: MissionCreate,
    facility: FacilitySpec,
    *,
    created_by: str,
    idempotency_key: str | None,
) -> MissionDraft:
    """Resolve ``body`` against ``facility`` into a :class:`MissionDraft`.

    Raises :class:`~dispatcher.missions.errors.InvalidMission` for an unknown place
    (``pickup.place`` / ``dropoff.place``) and for a dropoff at the pickup's point
    (``dropoff``).
    """
    pickup = _location(facility, body.pickup, "pickup")
    dropoff = _location(facility, body.dropoff, "dropoff")
    check_route(pickup, dropoff)
    passenger = body.passenger
    return MissionDraft(
        facility_id=facility.id,
        pickup=pickup,
        dropoff=dropoff,
        priority=body.priority,
        window_start=body.window.start if body.window else None,
        window_end=body.window.end if body.window else None,
        requirements=body.requirements.model_dump(mode="json"),
        passenger_ref=passenger.ref if passenger else None,
        passenger_name=passenger.display_name if passenger else None,
        notes=body.notes,
        created_by=created_by,
        idempotency_key=idempotency_key,
        request_hash=request_hash(body, facility.id),
    )


# Out -----------------------------------------------------------------------------------


def to_public(rec: MissionRecord) -> MissionPublic:
    """The API shape of a mission row."""
    return MissionPublic(**_public_fields(rec))


def _public_fields(rec: MissionRecord) -> dict[str, Any]:
    """The fields of :class:`MissionPublic` for ``rec``, shared by :func:`with_timeline`
    (building the sub-models once rather than dumping and re-validating a MissionPublic)."""
    window = (
        WindowPublic(start=rec.window_start, end=rec.window_end)
        if rec.window_start is not None and rec.window_end is not None
        else None
    )
    req = rec.requirements
    return dict(
        id=rec.id,
        facility_id=rec.facility_id,
        status=rec.status,
        priority=rec.priority,
        pickup=LocationPublic(**rec.pickup.as_json()),
        dropoff=LocationPublic(**rec.dropoff.as_json()),
        window=window,
        requirements=RequirementsPublic(
            vehicle_kind=VehicleKindRequirement(req.get("vehicle_kind", "any")),
            wheelchair_type=req.get("wheelchair_type"),
            payload_kg=req.get("payload_kg"),
        ),
        passenger=(
            PassengerPublic(ref=rec.passenger_ref, display_name=rec.passenger_name)
            if rec.passenger_ref is not None
            else None
        ),
        notes=rec.notes,
        created_by=rec.created_by,
        vehicle_id=rec.vehicle_id,
        version=rec.version,
        created_at=rec.created_at,
        updated_at=rec.updated_at,
        completed_at=rec.completed_at,
    )


def event_to_public(ev: EventRecord) -> MissionEventPublic:
    """The API shape of a timeline entry."""
    return MissionEventPublic(
        seq=ev.seq,
        event=ev.event,
        from_status=ev.from_status,
        to_status=ev.to_status,
        vehicle_id=ev.vehicle_id,
        actor=ev.actor,
        details=ev.details,
        at=ev.at,
    )


def with_timeline(rec: MissionRecord, events: list[EventRecord]) -> MissionWithTimeline:
    """A mission and its timeline in one API shape."""
    return MissionWithTimeline(**_public_fields(rec), timeline=[event_to_public(e) for e in events])

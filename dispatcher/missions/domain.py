"""Missions inside fleetd: plain dataclasses and the pure steps between API and store.

- :func:`resolve_facility` and :func:`build_draft` turn a validated :class:`MissionCreate`
  into a :class:`MissionDraft` (facility chosen, places looked up in the facility map,
  request hashed for idempotency).
- :class:`MissionRecord` and :class:`EventRecord` are rows as the store returns them;
  :func:`to_public` and :func:`event_to_public` make the API shapes.
- :class:`Cursor` is the opaque keyset cursor of mission lists.

No I/O here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dispatcher.config import FacilitySettings, PlaceSettings
from dispatcher.missions.errors import InvalidCursor, InvalidMission
from dispatcher.missions.lifecycle import MissionEvent, MissionStatus, Priority
from dispatcher.missions.models import (
    LocationIn,
    LocationPublic,
    MissionCreate,
    MissionEventPublic,
    MissionPublic,
    MissionWithTimeline,
    PassengerPublic,
    RequirementsPublic,
    VehicleKindRequirement,
    WindowPublic,
    same_point,
)

# Values --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Location:
    """A resolved pickup or dropoff (WGS84), with the place name when one was given."""

    lat: float
    lon: float
    place: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"place": self.place, "lat": self.lat, "lon": self.lon}


@dataclass(frozen=True, slots=True)
class Scope:
    """What a caller may see: one facility or all (None), everyone's missions or their own."""

    facility_id: uuid.UUID | None = None
    created_by: str | None = None

    @classmethod
    def everything(cls) -> Scope:
        """No restriction (the daemon's own tasks, admin tokens without a facility)."""
        return cls()


@dataclass(frozen=True, slots=True)
class Actor:
    """Who causes a change: recorded as ``mission_events.actor`` and, if ``audited``, in the
    audit log with the token, role and client address.

    API callers are audited (:meth:`api`); the daemon's own tasks (:meth:`system`) are not:
    their changes are recorded in ``mission_events``, which is append-only too.
    """

    subject: str
    token_id: uuid.UUID | None = None
    role: str | None = None
    source: str | None = None
    audited: bool = False

    @classmethod
    def api(cls, subject: str, token_id: uuid.UUID, role: str, source: str | None) -> Actor:
        """An API caller (a token), audited."""
        return cls(subject=subject, token_id=token_id, role=role, source=source, audited=True)

    @classmethod
    def system(cls, name: str = "dispatcher") -> Actor:
        """One of the daemon's own tasks (the dispatch engine, a vehicle link)."""
        return cls(subject=f"system:{name}")


@dataclass(frozen=True, slots=True)
class MissionDraft:
    """A create request resolved against the facility map, ready to insert."""

    facility_id: uuid.UUID
    pickup: Location
    dropoff: Location
    priority: Priority
    window_start: datetime | None
    window_end: datetime | None
    requirements: dict[str, Any]
    passenger_ref: str | None
    passenger_name: str | None
    notes: str | None
    created_by: str
    idempotency_key: str | None
    request_hash: bytes


@dataclass(frozen=True, slots=True)
class MissionRecord:
    """One ``missions`` row."""

    id: uuid.UUID
    facility_id: uuid.UUID
    status: MissionStatus
    priority: Priority
    pickup: Location
    dropoff: Location
    window_start: datetime | None
    window_end: datetime | None
    requirements: dict[str, Any]
    passenger_ref: str | None
    passenger_name: str | None
    notes: str | None
    created_by: str
    vehicle_id: uuid.UUID | None
    version: int
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None

    @property
    def vehicle_kind(self) -> VehicleKindRequirement:
        """The kind of vehicle the mission asks for (``any`` when it does not say)."""
        return VehicleKindRequirement(self.requirements.get("vehicle_kind", "any"))


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One ``mission_events`` row."""

    seq: int
    mission_id: uuid.UUID
    facility_id: uuid.UUID
    event: MissionEvent
    from_status: MissionStatus | None
    to_status: MissionStatus
    vehicle_id: uuid.UUID | None
    actor: str | None
    at: datetime
    details: dict[str, Any] = field(default_factory=dict)


# Resolution ----------------------------------------------------------------------------


def resolve_facility(
    facilities: list[FacilitySettings], ref: str | None, default: FacilitySettings | None
) -> FacilitySettings:
    """The facility ``ref`` names (its key, or its id as text); ``default`` when None.

    Raises :class:`InvalidMission` on field ``facility`` when nothing matches.
    """
    if ref is None:
        if default is None:
            raise InvalidMission("facility", "required: no default facility for this token")
        return default
    for fac in facilities:
        if ref == fac.key or ref.lower() == str(fac.id):
            return fac
    raise InvalidMission("facility", f"unknown facility {ref!r}")


def find_place(facility: FacilitySettings, name: str) -> PlaceSettings | None:
    """The place called ``name`` (exact match first, then case-insensitive if unambiguous)."""
    for place in facility.places:
        if place.name == name:
            return place
    folded = [p for p in facility.places if p.name.casefold() == name.casefold()]
    return folded[0] if len(folded) == 1 else None


def resolve_location(facility: FacilitySettings, loc: LocationIn, field_name: str) -> Location:
    """A :class:`Location` for ``loc``: a place looked up in the facility, or the point as is.

    Raises :class:`InvalidMission` on ``{field_name}.place`` for an unknown place.
    """
    if loc.place is not None:
        place = find_place(facility, loc.place)
        if place is None:
            known = ", ".join(repr(p.name) for p in facility.places) or "none"
            raise InvalidMission(
                f"{field_name}.place",
                f"unknown place {loc.place!r} in facility {facility.key!r} (known: {known})",
            )
        return Location(lat=place.lat, lon=place.lon, place=place.name)
    assert loc.lat is not None
    assert loc.lon is not None
    return Location(lat=loc.lat, lon=loc.lon)


def request_hash(body: MissionCreate, facility_id: uuid.UUID) -> bytes:
    """SHA-256 of the validated request (defaults filled in) and the facility it lands in.

    Two requests with one idempotency key are "the same" when these hashes are equal.
    """
    doc = body.model_dump(mode="json")
    doc["facility"] = str(facility_id)
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).digest()


def build_draft(
    body: MissionCreate,
    facility: FacilitySettings,
    *,
    created_by: str,
    idempotency_key: str | None,
) -> MissionDraft:
    """Resolve ``body`` against ``facility`` into a :class:`MissionDraft`.

    Raises :class:`InvalidMission` for an unknown place (``pickup.place`` /
    ``dropoff.place``) and for a dropoff at the pickup's point (``dropoff``).
    """
    pickup = resolve_location(facility, body.pickup, "pickup")
    dropoff = resolve_location(facility, body.dropoff, "dropoff")
    if same_point(pickup.lat, pickup.lon, dropoff.lat, dropoff.lon):
        raise InvalidMission("dropoff", "must differ from pickup (both are the same point)")
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


# Public shapes -------------------------------------------------------------------------


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


# Cursor --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cursor:
    """Position after the last mission of a page (lists run newest first, then by id)."""

    created_at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        raw = json.dumps([self.created_at.isoformat(), str(self.id)], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """Parse a cursor made by :meth:`encode`; :class:`InvalidCursor` otherwise."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            when, ident = json.loads(raw)
            at = datetime.fromisoformat(when)
            if at.tzinfo is None:
                raise ValueError("naive timestamp")
            return cls(created_at=at, id=uuid.UUID(ident))
        except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
            raise InvalidCursor("not a cursor returned by this API") from exc

"""Missions inside fleetd: plain dataclasses and the pure steps of resolving a request.

- :func:`resolve_facility`, :func:`resolve_place` and :func:`check_route` resolve what a
  caller asked for against the facility map (:class:`geo.facility.FacilitySpec`); a
  :class:`MissionDraft` is the result, ready to insert. (The HTTP API's shapes and their
  translation live with the API: :mod:`dispatcher.api.mission_mapping`.)
- :class:`MissionRecord` and :class:`EventRecord` are rows as the store returns them.
- :class:`Cursor` is the opaque keyset cursor of mission lists.

No I/O here, and nothing from the edges (configuration, HTTP, storage).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from dispatcher.missions.errors import InvalidCursor, InvalidMission
from dispatcher.missions.lifecycle import MissionEvent, MissionStatus, Priority
from geo.facility import FacilitySpec, same_point

# Values --------------------------------------------------------------------------------


class VehicleKindRequirement(StrEnum):
    """Which kind of vehicle may carry out a mission."""

    ROBOT = "robot"
    DRIVER = "driver"
    ANY = "any"


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
    #: Set while the mission waits for an operator (its vehicle was lost with the rider on
    #: board): the reason, e.g. ``vehicle_offline``. See docs/dispatch.md.
    held_reason: str | None = None

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
    facilities: Iterable[FacilitySpec], ref: str | None, default: FacilitySpec | None
) -> FacilitySpec:
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


def resolve_place(facility: FacilitySpec, name: str, field_name: str) -> Location:
    """The :class:`Location` of the place called ``name`` in ``facility``.

    Raises :class:`InvalidMission` on ``{field_name}.place`` for an unknown place.
    """
    place = facility.find_place(name)
    if place is None:
        known = ", ".join(repr(p.name) for p in facility.places) or "none"
        raise InvalidMission(
            f"{field_name}.place",
            f"unknown place {name!r} in facility {facility.key!r} (known: {known})",
        )
    return Location(lat=place.lat, lon=place.lon, place=place.name)


def check_route(pickup: Location, dropoff: Location) -> None:
    """A transport goes somewhere: :class:`InvalidMission` on ``dropoff`` if it is the pickup."""
    if same_point(pickup.lat, pickup.lon, dropoff.lat, dropoff.lon):
        raise InvalidMission("dropoff", "must differ from pickup (both are the same point)")


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

"""Mission shapes at the HTTP boundary: what clients send (``*In``) and what they get back.

Every model refuses unknown fields. Errors name the field the way the client wrote it
(``pickup.lat``, ``window.end``, ``dropoff``), so the API's problem documents can point
at it. Validation that depends on the clock (``window``) reads ``now`` from the
validation context when one is given (tests), else the wall clock.

Places are checked against the facility map later (:mod:`dispatcher.api.mission_mapping`
with :mod:`dispatcher.missions.domain`): the shape alone cannot know the facility's place
names. These shapes belong to the HTTP API; the missions domain never sees them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dispatcher.api.schemas import FACILITY_REF_PATTERN
from dispatcher.missions.domain import VehicleKindRequirement
from dispatcher.missions.lifecycle import MissionEvent, MissionStatus, Priority
from geo.facility import same_point

#: How far ahead a requested pickup window may start.
MAX_WINDOW_AHEAD = timedelta(days=7)


def _no_nul(value: str) -> str:
    # PostgreSQL text and jsonb cannot hold U+0000; refuse it here rather than fail later.
    if "\x00" in value:
        raise ValueError("must not contain the NUL character")
    return value


#: A string that can be stored (no NUL); whitespace at either end is stripped by the models.
Text = Annotated[str, AfterValidator(_no_nul)]
PlaceName = Annotated[Text, Field(min_length=1, max_length=128)]
Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]


class _In(BaseModel):
    """Base of request bodies: unknown fields refused, strings stripped, no NaN."""

    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, allow_inf_nan=False, frozen=True
    )


class _Out(BaseModel):
    """Base of response bodies."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _now(info: ValidationInfo) -> datetime:
    ctx = info.context
    if isinstance(ctx, dict):
        now = ctx.get("now")
        if isinstance(now, datetime):
            return now
    return datetime.now(UTC)


# Requests ------------------------------------------------------------------------------


class LocationIn(_In):
    """A pickup or dropoff: EITHER a named place of the facility OR a lat/lon (WGS84)."""

    model_config = ConfigDict(
        json_schema_extra={
            # What _one_form enforces: a place and no point, or a point and no place.
            "oneOf": [
                {
                    "required": ["place"],
                    "properties": {
                        "place": {"type": "string"},
                        "lat": {"type": "null"},
                        "lon": {"type": "null"},
                    },
                },
                {
                    "required": ["lat", "lon"],
                    "properties": {
                        "lat": {"type": "number"},
                        "lon": {"type": "number"},
                        "place": {"type": "null"},
                    },
                },
            ],
            "examples": [{"place": "Ward A"}, {"lat": 52.5218, "lon": 13.4061}],
        }
    )

    place: PlaceName | None = None
    lat: Latitude | None = None
    lon: Longitude | None = None

    @model_validator(mode="after")
    def _one_form(self) -> LocationIn:
        has_point = self.lat is not None or self.lon is not None
        if self.place is not None and has_point:
            raise ValueError("give either place or lat and lon, not both")
        if self.place is None:
            if not has_point:
                raise ValueError("give either place or lat and lon")
            if self.lat is None or self.lon is None:
                raise ValueError("lat and lon go together: give both")
        return self

    def same_as(self, other: LocationIn) -> bool:
        """True when both name the same place (case-insensitively) or the same point."""
        if self.place is not None or other.place is not None:
            return (
                self.place is not None
                and other.place is not None
                and self.place.casefold() == other.place.casefold()
            )
        assert self.lat is not None
        assert self.lon is not None
        assert other.lat is not None
        assert other.lon is not None
        return same_point(self.lat, self.lon, other.lat, other.lon)


class WindowIn(_In):
    """Requested pickup time: no earlier than ``start``, no later than ``end``."""

    start: AwareDatetime
    end: AwareDatetime

    @field_validator("start")
    @classmethod
    def _start_soon_enough(cls, value: datetime, info: ValidationInfo) -> datetime:
        limit = _now(info) + MAX_WINDOW_AHEAD
        if value > limit:
            days = MAX_WINDOW_AHEAD.days
            raise ValueError(f"must be within {days} days from now")
        return value

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, value: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("start")
        if isinstance(start, datetime) and value <= start:
            raise ValueError("must be after window.start")
        if value <= _now(info):
            raise ValueError("must not be in the past")
        return value


class Requirements(_In):
    """What the vehicle must offer. Every field is optional."""

    vehicle_kind: VehicleKindRequirement = VehicleKindRequirement.ANY
    # A plain str: a validator before the pattern would drop the pattern from the
    # document (the pattern admits no NUL by itself).
    wheelchair_type: (
        Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _-]*$")]
        | None
    ) = None
    payload_kg: Annotated[float, Field(ge=0, le=500, allow_inf_nan=False)] | None = None


class PassengerIn(_In):
    """Who travels: an opaque reference and a display name, and no other personal data."""

    ref: Annotated[Text, Field(min_length=1, max_length=128)]
    display_name: Annotated[Text, Field(min_length=1, max_length=200)] | None = None


class MissionCreate(_In):
    """Body of ``POST /v1/missions``."""

    #: Facility key or id; defaults to the caller's own facility.
    facility: (
        Annotated[str, Field(min_length=1, max_length=64, pattern=FACILITY_REF_PATTERN)] | None
    ) = None
    pickup: LocationIn
    dropoff: LocationIn
    priority: Priority = Priority.NORMAL
    window: WindowIn | None = None
    requirements: Requirements = Field(default_factory=Requirements)
    passenger: PassengerIn | None = None
    notes: Annotated[Text, Field(max_length=2000)] | None = None

    @field_validator("dropoff")
    @classmethod
    def _dropoff_differs(cls, value: LocationIn, info: ValidationInfo) -> LocationIn:
        pickup = info.data.get("pickup")
        if isinstance(pickup, LocationIn) and value.same_as(pickup):
            raise ValueError("must differ from pickup")
        return value


class PriorityChange(_In):
    """Body of ``POST /v1/missions/{id}/priority``."""

    priority: Priority
    reason: Annotated[Text, Field(min_length=1, max_length=500)] | None = None


class CancelRequest(_In):
    """Body of ``POST /v1/missions/{id}/cancel`` (optional)."""

    reason: Annotated[Text, Field(min_length=1, max_length=500)] | None = None


# Responses -----------------------------------------------------------------------------


class LocationPublic(_Out):
    """A resolved pickup or dropoff: the place name (if one was given) and its point."""

    place: str | None
    lat: float
    lon: float


class WindowPublic(_Out):
    start: datetime
    end: datetime


class RequirementsPublic(_Out):
    vehicle_kind: VehicleKindRequirement
    wheelchair_type: str | None
    payload_kg: float | None


class PassengerPublic(_Out):
    ref: str
    display_name: str | None


class MissionPublic(_Out):
    """A mission as clients see it."""

    id: uuid.UUID
    facility_id: uuid.UUID
    status: MissionStatus
    priority: Priority
    pickup: LocationPublic
    dropoff: LocationPublic
    window: WindowPublic | None
    requirements: RequirementsPublic
    passenger: PassengerPublic | None
    notes: str | None
    created_by: str
    vehicle_id: uuid.UUID | None
    #: Bumped on every change; a client may send it back to detect concurrent edits.
    version: int
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


class MissionEventPublic(_Out):
    """One entry of a mission's timeline."""

    seq: int
    event: MissionEvent
    from_status: MissionStatus | None
    to_status: MissionStatus
    vehicle_id: uuid.UUID | None
    actor: str | None
    details: dict[str, Any]
    at: datetime


class MissionWithTimeline(MissionPublic):
    """A mission and every event that happened to it, oldest first."""

    timeline: list[MissionEventPublic]


class MissionPage(_Out):
    """One page of ``GET /v1/missions``; pass ``next_cursor`` back as ``cursor`` for more."""

    items: list[MissionPublic]
    next_cursor: str | None

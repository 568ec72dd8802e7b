"""The driver-device protocol v1: messages between the driver phone app and fleetd.

Documented for app developers in docs/protocols/driver.md; keep the two in step.

Inbound (phone -> fleetd): :class:`DriverConnection`, :class:`DriverStatus`,
:class:`OfferResponse`, :class:`TripProgress`, :class:`CommandAck`.
Outbound (fleetd -> phone): :class:`JobOffer`, :class:`DriverCommand`.

Same conventions as the VDA 5050 models: camelCase on the wire, unknown fields ignored
(so a newer app can talk to an older fleetd within major version 1), and every value
bounded, because the phone is not a trusted device.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer, model_validator
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

__all__ = [
    "DRIVER_PROTOCOL_VERSION",
    "AckResult",
    "Availability",
    "CommandAck",
    "CommandType",
    "ConnectionState",
    "Decision",
    "DriverCommand",
    "DriverConnection",
    "DriverModel",
    "DriverStatus",
    "JobOffer",
    "OfferResponse",
    "Place",
    "Priority",
    "TripEventKind",
    "TripProgress",
    "format_timestamp",
]

#: Written in every message fleetd sends; fleetd accepts any ``1.x``.
DRIVER_PROTOCOL_VERSION = "1.0"

#: driverId and the other ids: the VDA 5050 id alphabet (A-Z a-z 0-9 _ - . :), 1-64 chars.
#: It keeps a driver id usable as an MQTT topic level without escaping.
Ident = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]


def format_timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z`` (``2024-05-01T12:00:00.123Z``)."""
    value = value.astimezone(UTC)
    return f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond // 1000:03d}Z"


#: ISO 8601 with an offset (``Z`` recommended); written as ``2024-05-01T12:00:00.123Z``.
Timestamp = Annotated[
    AwareDatetime, PlainSerializer(format_timestamp, return_type=str, when_used="json")
]


class DriverModel(BaseModel):
    """Base of every driver-protocol object (and of their headers)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
        allow_inf_nan=False,
        frozen=True,
    )


class _Header(DriverModel):
    #: Per driver and per topic, +1 for every message the sender publishes.
    header_id: Annotated[int, Field(ge=0, le=2**32 - 1)]
    timestamp: Timestamp
    version: Annotated[str, Field(pattern=r"^1\.[0-9]{1,3}$")]
    driver_id: Ident


# Both-or-neither position rule, as JSON Schema (so the generated schema states it too):
# when one of lat/lon is a number, the other must be a number as well.
def _number_requires(a: str, b: str) -> JsonDict:
    return {
        "if": {"properties": {a: {"type": "number"}}, "required": [a]},
        "then": {"properties": {b: {"type": "number"}}, "required": [b]},
    }


_POSITION_PAIR: JsonDict = {
    "allOf": [_number_requires("lat", "lon"), _number_requires("lon", "lat")]
}


def _check_position_pair(lat: float | None, lon: float | None) -> None:
    if (lat is None) != (lon is None):
        raise ValueError("lat and lon come together: send both or neither")


# --------------------------------------------------------------------------------------
# Enumerations


class ConnectionState(StrEnum):
    ONLINE = "ONLINE"
    OFFLINE = "OFFLINE"  # the app signs off in an orderly way
    CONNECTIONBROKEN = "CONNECTIONBROKEN"  # the Last Will, published by the broker


class Availability(StrEnum):
    ONLINE = "online"  # working and free for offers
    BUSY = "busy"  # working, not free (on a trip, or busy otherwise)
    BREAK = "break"
    OFFLINE = "offline"  # signed off work (the app may stay connected)


class Decision(StrEnum):
    ACCEPT = "accept"
    DECLINE = "decline"


class TripEventKind(StrEnum):
    TO_PICKUP = "to_pickup"  # on the way to the pickup (optional: implied by arrived_pickup)
    ARRIVED_PICKUP = "arrived_pickup"
    PICKED_UP = "picked_up"
    TO_DROPOFF = "to_dropoff"  # on the way to the dropoff (optional: implied by arrived_dropoff)
    ARRIVED_DROPOFF = "arrived_dropoff"
    DROPPED_OFF = "dropped_off"
    PROBLEM = "problem"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class CommandType(StrEnum):
    PAUSE = "pause"  # stop where safe and wait
    RESUME = "resume"
    CANCEL_JOB = "cancel_job"
    GO_TO_CHARGE = "go_to_charge"  # charge the vehicle (or the phone) before more work
    MAINTENANCE = "maintenance"  # vehicle out of service; ``enabled`` false ends it


class AckResult(StrEnum):
    ACCEPTED = "accepted"  # the driver saw it and complies
    REJECTED = "rejected"  # cannot comply (``reason`` says why)


# --------------------------------------------------------------------------------------
# Phone -> fleetd


class DriverConnection(_Header):
    """``connection``: retained; the Last Will carries CONNECTIONBROKEN."""

    connection_state: ConnectionState


class DriverStatus(_Header):
    """``status``: the heartbeat, at least every 5 s while the app runs."""

    model_config = ConfigDict(json_schema_extra=_POSITION_PAIR)

    availability: Availability
    lat: Latitude | None = None
    lon: Longitude | None = None
    accuracy_m: Annotated[float, Field(ge=0, le=100_000)] | None = None
    heading_deg: Annotated[float, Field(ge=0, le=360)] | None = None
    speed_mps: Annotated[float, Field(ge=0, le=100)] | None = None
    phone_battery_pct: Annotated[float, Field(ge=0, le=100)] | None = None
    mission_id: Ident | None = None

    @model_validator(mode="after")
    def _position_pair(self) -> DriverStatus:
        # A phone without a fix still sends its heartbeat, without a position; half a
        # position is a bug in the app.
        _check_position_pair(self.lat, self.lon)
        return self


class OfferResponse(_Header):
    """``offerResponse``: the driver's answer to one offer."""

    offer_id: Ident
    decision: Decision
    reason: Annotated[str, Field(max_length=200)] | None = None


class TripProgress(_Header):
    """``trip``: progress on an accepted mission."""

    model_config = ConfigDict(json_schema_extra=_POSITION_PAIR)

    mission_id: Ident
    event: TripEventKind
    lat: Latitude | None = None
    lon: Longitude | None = None
    note: Annotated[str, Field(max_length=1000)] | None = None

    @model_validator(mode="after")
    def _position_pair(self) -> TripProgress:
        _check_position_pair(self.lat, self.lon)
        return self


class CommandAck(_Header):
    """``commandAck``: the app's answer to one :class:`DriverCommand`."""

    correlation_id: Ident
    result: AckResult
    reason: Annotated[str, Field(max_length=200)] | None = None


# --------------------------------------------------------------------------------------
# fleetd -> phone


class Place(DriverModel):
    name: Annotated[str, Field(min_length=1, max_length=128)]
    lat: Latitude
    lon: Longitude


class JobOffer(_Header):
    """``offer``: a mission proposed to one driver, valid until ``expires_at``."""

    offer_id: Ident
    mission_id: Ident
    pickup: Place
    dropoff: Place
    expires_at: Timestamp
    priority: Priority = Priority.NORMAL
    requested_pickup_at: Timestamp | None = None
    notes: Annotated[str, Field(max_length=1000)] | None = None


class DriverCommand(_Header):
    """``command``: an operator's instruction; answered with a :class:`CommandAck`."""

    correlation_id: Ident
    command: CommandType
    mission_id: Ident | None = None  # the job a cancel_job is about
    offer_id: Ident | None = None  # cancel_job: the offer withdrawn (or the job it became)
    enabled: bool = True  # maintenance only: false ends maintenance
    message: Annotated[str, Field(max_length=500)] | None = None  # shown to the driver

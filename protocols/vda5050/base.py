"""Building blocks of the VDA 5050 v2.0 models: the base model, timestamps and enumerations.

Field names follow Python; the wire uses the spec's camelCase through aliases. Models
accept both spellings when built in Python (``orderId=`` or ``order_id=``) and always
serialise camelCase.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, PlainSerializer
from pydantic.alias_generators import to_camel

#: The protocol version fleetd speaks, written in every header it sends.
VDA_VERSION = "2.0.0"
#: headerId, orderUpdateId and sequenceId are uint32 in the spec (section 6.4).
UINT32_MAX = 2**32 - 1


class VdaModel(BaseModel):
    """Base of every VDA 5050 object.

    ``extra="ignore"``: robots of other makers add vendor fields; the spec does not forbid
    them and dropping a whole state for one unknown key would make fleetd unusable with
    them. Unknown keys are skipped, never stored.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
        # JSON has no NaN/Infinity; a robot sending them sends something that is not JSON.
        allow_inf_nan=False,
        frozen=True,
    )


def _assume_utc(value: datetime) -> datetime:
    # Section 6.4 says timestamps are UTC; a robot that leaves out the offset means UTC.
    # Making every timestamp aware keeps comparisons in the registry from raising.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def format_timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z``, the spec's example form.

    A naive ``value`` is taken as UTC.
    """
    value = _assume_utc(value).astimezone(UTC)
    return f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond // 1000:03d}Z"


#: A header timestamp: parsed leniently (any ISO 8601, offset optional), written as
#: ``2024-05-01T12:00:00.123Z``.
Timestamp = Annotated[
    datetime,
    AfterValidator(_assume_utc),
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
]


class BlockingType(StrEnum):
    NONE = "NONE"  # may run in parallel with driving and other actions
    SOFT = "SOFT"  # parallel to other actions, but the vehicle must not drive
    HARD = "HARD"  # alone, and the vehicle must not drive


class OrientationType(StrEnum):
    """Edge orientation reference (spec text 6.7; absent from the 2.0.0 order schema)."""

    GLOBAL = "GLOBAL"
    TANGENTIAL = "TANGENTIAL"


class OperatingMode(StrEnum):
    AUTOMATIC = "AUTOMATIC"
    SEMIAUTOMATIC = "SEMIAUTOMATIC"
    MANUAL = "MANUAL"
    SERVICE = "SERVICE"
    TEACHIN = "TEACHIN"


class ActionStatus(StrEnum):
    WAITING = "WAITING"
    INITIALIZING = "INITIALIZING"
    RUNNING = "RUNNING"
    # PAUSED is in the spec text (6.11) but missing from the 2.0.0 state schema's enum;
    # robots built from the text send it, so fleetd accepts it.
    PAUSED = "PAUSED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"


class ErrorLevel(StrEnum):
    WARNING = "WARNING"  # self-resolving, vehicle can continue
    FATAL = "FATAL"  # needs a human


class InfoLevel(StrEnum):
    INFO = "INFO"
    DEBUG = "DEBUG"


class EStop(StrEnum):
    AUTOACK = "AUTOACK"
    MANUAL = "MANUAL"
    REMOTE = "REMOTE"
    NONE = "NONE"


class ConnectionState(StrEnum):
    ONLINE = "ONLINE"
    OFFLINE = "OFFLINE"  # orderly goodbye
    CONNECTIONBROKEN = "CONNECTIONBROKEN"  # the Last Will, published by the broker

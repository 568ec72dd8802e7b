"""API models shared by several routes: pagination and the public vehicle shape.

In and out shapes are separate models: request bodies forbid unknown fields
(``model_config = IN_MODEL_CONFIG``), responses are built from core dataclasses with
``from_view``-style constructors and never accept input.

Pagination: list endpoints take ``limit`` (:data:`LimitQuery`) and ``cursor`` and answer
``{"items": [...], "next_cursor": "..." | null}``. Cursors are opaque to clients; build
them with :func:`encode_cursor` from the sort key of the last item and read them back with
:func:`decode_cursor` (which answers 400 for a cursor that is not one of ours).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field

from dispatcher.api.problems import VALIDATION, ProblemError
from fleet.model import VehicleKind, VehicleStatus, VehicleView

#: ``model_config`` for request bodies: unknown fields are an error, strings are stripped.
IN_MODEL_CONFIG = ConfigDict(extra="forbid", str_strip_whitespace=True)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

LimitQuery = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"Page size (default {DEFAULT_LIMIT}).")
]
#: What every ``next_cursor`` looks like (unpadded base64url): stated in the document, so
#: a client (or a fuzzer) generated from it does not send what cannot be a cursor.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"
CursorQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=512,
        pattern=CURSOR_PATTERN,
        description="`next_cursor` of the previous page; omit for the first.",
    ),
]

#: A facility reference: its key (lower-case letters, digits, '_' and '-', as in the
#: configuration) or its id (a UUID). The document states it; the server refuses the rest.
FACILITY_REF_PATTERN = (
    r"^(?:[a-z0-9][a-z0-9_-]{0,63}"
    r"|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
)

T = TypeVar("T")

_CURSOR_VERSION = 1


class Page(BaseModel, Generic[T]):
    """One page of a list; ``next_cursor`` is null on the last page."""

    items: list[T]
    next_cursor: str | None = None


def encode_cursor(position: Mapping[str, Any]) -> str:
    """An opaque cursor for ``position`` (JSON-serialisable values only)."""
    raw = json.dumps({"v": _CURSOR_VERSION, **position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str, *, keys: tuple[str, ...]) -> dict[str, Any]:
    """The position inside ``cursor``; 400 problem (field ``query.cursor``) if it is not valid.

    ``keys`` are the members the position must have.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        if not isinstance(data, dict) or data.get("v") != _CURSOR_VERSION:
            raise ValueError("unknown cursor version")
        if any(k not in data for k in keys):
            raise ValueError("incomplete cursor")
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise ProblemError(
            400,
            "Invalid cursor",
            "The cursor is not one this server issued; start again without it.",
            type=VALIDATION,
            errors=[("query.cursor", "invalid cursor")],
        ) from exc
    data.pop("v")
    return data


class VehicleErrorOut(BaseModel):
    """An error the vehicle reports (VDA 5050 ``errors[]`` or a driver's problem report)."""

    type: str
    level: str
    description: str


class VehiclePublic(BaseModel):
    """A vehicle as the API shows it (read from the live registry)."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    facility_id: uuid.UUID
    kind: VehicleKind
    name: str
    manufacturer: str | None = Field(description="VDA 5050 manufacturer; null for drivers")
    serial: str = Field(description="VDA 5050 serialNumber, or the driver id")
    online: bool
    status: VehicleStatus
    battery: float | None = Field(description="Percent, null when unknown")
    charging: bool
    lat: float | None = Field(description="WGS84; null when the position is unknown")
    lon: float | None
    heading_deg: float | None
    map_id: str | None
    x: float | None = Field(description="Position in the facility map frame, metres")
    y: float | None
    unknown_map: bool = Field(description="The vehicle reports a map fleetd does not know")
    last_seen: datetime | None = Field(description="Time of the last message received")
    mission_id: uuid.UUID | None
    operating_mode: str | None
    errors: list[VehicleErrorOut]
    maintenance: bool

    @classmethod
    def from_view(cls, v: VehicleView) -> VehiclePublic:
        """The public shape of a registry snapshot entry."""
        pos = v.position
        pose = v.map_pose
        return cls(
            id=v.id,
            facility_id=v.facility_id,
            kind=v.kind,
            name=v.name,
            manufacturer=v.key.manufacturer or None,
            serial=v.key.serial,
            online=v.online,
            status=v.status,
            battery=v.battery_pct,
            charging=v.charging,
            lat=pos.lat if pos else None,
            lon=pos.lon if pos else None,
            heading_deg=pos.heading_deg if pos else None,
            map_id=pose.map_id if pose else None,
            x=pose.x if pose else None,
            y=pose.y if pose else None,
            unknown_map=v.unknown_map,
            last_seen=datetime.fromtimestamp(v.last_seen, UTC) if v.last_seen is not None else None,
            mission_id=v.mission_id,
            operating_mode=v.operating_mode,
            errors=[
                VehicleErrorOut(type=e.type, level=e.level, description=e.description)
                for e in v.errors
            ],
            maintenance=v.maintenance,
        )


class KindCounts(BaseModel):
    total: int
    online: int


class FleetSummary(BaseModel):
    """Counts over the vehicles the caller may see."""

    facility_id: uuid.UUID | None = Field(description="The facility counted; null for all")
    total: int
    online: int
    offline: int
    charging: int
    maintenance: int
    with_errors: int = Field(description="Vehicles reporting at least one FATAL error")
    by_kind: dict[VehicleKind, KindCounts]
    by_status: dict[VehicleStatus, int]
    as_of: datetime

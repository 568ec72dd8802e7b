"""Zone endpoints under ``/v1``: list, get, create (GeoJSON), delete (soft).

Seeing zones needs ``zone_view``; creating and deleting need ``zone_manage``. Zones belong
to a facility: a facility-scoped token sees and changes only its own facility's zones (a
zone of another facility answers 404, as if it did not exist); an admin token (all
facilities) names the facility of a new zone with ``facility`` in the body or the query
(key or id), and may filter lists with ``?facility=``.

Geometry is GeoJSON (RFC 7946: ``[longitude, latitude]``), a ``Polygon`` or
``MultiPolygon``; it is checked by :func:`geo.zones.validate_geometry`
(closed rings of at least 4 positions, coordinates in range, at most 10,000 positions,
valid for GEOS/shapely) and stored as PostGIS geography. Creation and deletion are
operations of :mod:`dispatcher.ops.zones`, which audits them (refusals too).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator

from dispatcher.api.deps import Principal, caller, get_services, require, zone_ops
from dispatcher.api.problems import (
    CONFLICT,
    FORBIDDEN,
    NOT_FOUND,
    VALIDATION,
    ProblemError,
    problem_responses,
)
from dispatcher.api.schemas import (
    DEFAULT_LIMIT,
    FACILITY_REF_PATTERN,
    IN_MODEL_CONFIG,
    CursorQuery,
    LimitQuery,
    Page,
    decode_cursor,
    encode_cursor,
)
from dispatcher.auth.roles import Permission
from dispatcher.ops.zones import FacilityInput, ZoneRefusal, ZoneRefused, ZoneRequest
from dispatcher.storage.zones_store import ZoneRecord, ZoneStore
from geo.zones import ZoneKind

log = structlog.get_logger(__name__)

router = APIRouter(tags=["zones"])

#: Highest speed limit a slow zone may set (m/s); wheelchair transport stays far below.
MAX_SPEED_LIMIT_MPS = 15.0


# Models --------------------------------------------------------------------------------


def _json_number(value: object) -> object:
    """Coordinates are JSON numbers: refuse strings and booleans pydantic would coerce."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    return value


Coordinate = Annotated[float, BeforeValidator(_json_number), Field(allow_inf_nan=False)]
GeoPosition = Annotated[
    list[Coordinate],
    Field(
        min_length=2,
        max_length=3,
        description="[longitude, latitude] or with an altitude",
        # The ranges validate_geometry enforces, per position member (JSON Schema 2020-12).
        json_schema_extra={
            "prefixItems": [
                {"type": "number", "minimum": -180, "maximum": 180},
                {"type": "number", "minimum": -90, "maximum": 90},
                {"type": "number"},
            ]
        },
    ),
]
LinearRing = Annotated[
    list[GeoPosition],
    Field(
        description="Closed ring: at least 4 positions, the last repeating the first",
        # Stated here, enforced by validate_geometry (whose message names the ring).
        json_schema_extra={"minItems": 4},
    ),
]


class _Geometry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bbox: list[Coordinate] | None = Field(default=None, description="Ignored if given")


class PolygonGeometry(_Geometry):
    """A GeoJSON Polygon: an outer ring, then optional holes."""

    type: Literal["Polygon"]
    coordinates: Annotated[list[LinearRing], Field(min_length=1)]


class MultiPolygonGeometry(_Geometry):
    """A GeoJSON MultiPolygon: polygons that do not overlap."""

    type: Literal["MultiPolygon"]
    coordinates: Annotated[
        list[Annotated[list[LinearRing], Field(min_length=1)]], Field(min_length=1)
    ]


Geometry = Annotated[PolygonGeometry | MultiPolygonGeometry, Field(discriminator="type")]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain the NUL character")
    return value


class ZoneCreate(BaseModel):
    """Body of ``POST /v1/zones``."""

    model_config = ConfigDict(
        **IN_MODEL_CONFIG,
        allow_inf_nan=False,
        # What _speed_for_slow_only enforces, stated in the document (a client generated
        # from it, or a fuzzer, sends only bodies the handler accepts): JSON Schema
        # if/then/else, valid in OpenAPI 3.1.
        json_schema_extra={
            "if": {"properties": {"kind": {"const": ZoneKind.SLOW.value}}, "required": ["kind"]},
            "then": {
                "required": ["speed_limit_mps"],
                "properties": {"speed_limit_mps": {"type": "number"}},
            },
            "else": {"properties": {"speed_limit_mps": {"type": "null"}}},
        },
    )

    facility: (
        Annotated[str, Field(min_length=1, max_length=64, pattern=FACILITY_REF_PATTERN)] | None
    ) = Field(
        default=None,
        description="Facility key or id; defaults to the token's own (required for admin "
        "tokens of every facility, here or as ?facility=)",
    )
    name: Annotated[str, Field(min_length=1, max_length=200)]
    kind: ZoneKind
    geometry: Geometry
    speed_limit_mps: float | None = Field(
        default=None,
        gt=0,
        le=MAX_SPEED_LIMIT_MPS,
        validate_default=True,
        description="Required for kind 'slow', refused for the other kinds",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _no_nul(value)

    @field_validator("speed_limit_mps")
    @classmethod
    def _speed_for_slow_only(cls, value: float | None, info: ValidationInfo) -> float | None:
        kind = info.data.get("kind")
        if kind is ZoneKind.SLOW and value is None:
            raise ValueError("required for a slow zone")
        if kind is not None and kind is not ZoneKind.SLOW and value is not None:
            raise ValueError("only a slow zone has a speed limit")
        return value


class ZonePublic(BaseModel):
    """A zone as the API shows it."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    facility_id: uuid.UUID
    name: str
    kind: ZoneKind
    geometry: dict[str, Any] = Field(description="GeoJSON Polygon or MultiPolygon (WGS84)")
    speed_limit_mps: float | None
    created_by: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_record(cls, zone: ZoneRecord) -> ZonePublic:
        return cls(
            id=zone.id,
            facility_id=zone.facility_id,
            name=zone.name,
            kind=zone.kind,
            geometry=zone.geometry,
            speed_limit_mps=zone.speed_limit_mps,
            created_by=zone.created_by,
            created_at=zone.created_at,
            updated_at=zone.updated_at,
        )


FacilityQuery = Annotated[
    str | None,
    Query(
        min_length=1, max_length=64, pattern=FACILITY_REF_PATTERN, description="Facility key or id"
    ),
]


# Helpers -------------------------------------------------------------------------------


def zone_store(request: Request) -> ZoneStore:
    """The zone store over the daemon's pool (also used by the zone e-stop)."""
    return ZoneStore(get_services(request).pool)


def not_found(zone_id: uuid.UUID) -> ProblemError:
    return ProblemError(404, "Not Found", f"No zone {zone_id}.", type=NOT_FOUND)


def _invalid(field: str, message: str) -> ProblemError:
    return ProblemError(
        422,
        "Invalid request",
        f"1 invalid value(s): {field}.",
        type=VALIDATION,
        errors=[(field, message)],
    )


async def _facility_id(store: ZoneStore, ref: str, field: str) -> uuid.UUID:
    fac = await store.facility(ref)
    if fac is None:
        raise _invalid(field, f"unknown facility {ref!r}")
    return fac.id


def _facility_inputs(body_ref: str | None, query_ref: str | None) -> list[FacilityInput]:
    inputs = []
    if body_ref is not None:
        inputs.append(FacilityInput("body.facility", body_ref, "body.facility"))
    if query_ref is not None:
        inputs.append(FacilityInput("query.facility", query_ref, "?facility="))
    return inputs


def _zone_refused(refused: ZoneRefused, zone_id: uuid.UUID | None = None) -> ProblemError:
    reason = refused.reason
    if reason is ZoneRefusal.NOT_FOUND and zone_id is not None:
        return not_found(zone_id)
    if reason is ZoneRefusal.NAME_TAKEN:
        return ProblemError(409, "Zone name taken", refused.message or "", type=CONFLICT)
    if reason in (ZoneRefusal.INVALID, ZoneRefusal.INVALID_GEOMETRY):
        return _invalid(refused.field or "body", refused.message or "invalid")
    if reason is ZoneRefusal.OTHER_FACILITY:
        detail = "This token may not create zones in that facility."
    else:
        detail = "This token may not change zones."
    return ProblemError(403, "Forbidden", detail, type=FORBIDDEN)


# Routes --------------------------------------------------------------------------------


@router.get(
    "/zones",
    response_model=Page[ZonePublic],
    summary="List zones, by name",
    responses=problem_responses(400, 401, 403, 422),
)
async def list_zones(
    request: Request,
    principal: Principal = Depends(require(Permission.ZONE_VIEW)),
    kind: ZoneKind | None = None,
    facility: FacilityQuery = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[ZonePublic]:
    """Live zones the caller sees, ordered by name then id, ``limit`` per page.

    A facility-scoped token asking for another facility gets an empty list.
    """
    store = zone_store(request)
    scope = principal.facility_id
    if facility and scope is not None:
        # Unknown and foreign facilities look alike to a scoped token (issue 13, item 18).
        fac = await store.facility(facility)
        if fac is None or fac.id != scope:
            return Page[ZonePublic](items=[], next_cursor=None)
    wanted = await _facility_id(store, facility, "query.facility") if facility else None
    after = None
    if cursor:
        pos = decode_cursor(cursor, keys=("n", "i"))
        try:
            after = (str(pos["n"]), uuid.UUID(str(pos["i"])))
        except ValueError as exc:
            raise _invalid("query.cursor", "invalid cursor") from exc
    zones = await store.list_zones(
        facility_id=wanted if wanted is not None else scope, kind=kind, after=after, limit=limit + 1
    )
    page = zones[:limit]
    next_cursor = (
        encode_cursor({"n": page[-1].name, "i": str(page[-1].id)}) if len(zones) > limit else None
    )
    return Page[ZonePublic](
        items=[ZonePublic.from_record(z) for z in page], next_cursor=next_cursor
    )


@router.get(
    "/zones/{zone_id}",
    response_model=ZonePublic,
    summary="One zone",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_zone(
    request: Request,
    zone_id: Annotated[uuid.UUID, Path(description="Zone id")],
    principal: Principal = Depends(require(Permission.ZONE_VIEW)),
) -> ZonePublic:
    """One live zone; 404 when unknown, deleted, or in a facility the caller does not see."""
    zone = await zone_store(request).get(zone_id, principal.facility_id)
    if zone is None:
        raise not_found(zone_id)
    return ZonePublic.from_record(zone)


@router.post(
    "/zones",
    status_code=201,
    response_model=ZonePublic,
    summary="Create a zone from GeoJSON",
    responses=problem_responses(400, 401, 403, 409, 413, 422),
)
async def create_zone(
    body: ZoneCreate,
    request: Request,
    response: Response,
    principal: Principal = Depends(require(Permission.ZONE_MANAGE)),
    facility: FacilityQuery = None,
) -> ZonePublic:
    """Create a zone (201, ``Location`` names it); 409 when the facility has one of that name.

    An invalid geometry answers 422 naming ``body.geometry`` (or the exact ring or
    position) and GEOS's reason, e.g. ``invalid Polygon: Self-intersection[0.5 0.5]``.
    """
    zone_request = ZoneRequest(
        name=body.name,
        kind=body.kind,
        geometry=body.geometry.model_dump(exclude={"bbox"}),
        speed_limit_mps=body.speed_limit_mps,
        facilities=_facility_inputs(body.facility, facility),
    )
    outcome = await zone_ops(request).create(caller(principal, request), zone_request)
    if isinstance(outcome, ZoneRefused):
        raise _zone_refused(outcome)
    response.headers["Location"] = request.app.url_path_for("get_zone", zone_id=str(outcome.id))
    return ZonePublic.from_record(outcome)


@router.delete(
    "/zones/{zone_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a zone (soft delete)",
    responses=problem_responses(401, 403, 404, 422),
)
async def delete_zone(
    request: Request,
    zone_id: Annotated[uuid.UUID, Path(description="Zone id")],
    principal: Principal = Depends(require(Permission.ZONE_MANAGE)),
) -> Response:
    """Mark a zone deleted (204); the audit row keeps the zone as it was. 404 if not live."""
    outcome = await zone_ops(request).delete(caller(principal, request), zone_id)
    if isinstance(outcome, ZoneRefused):
        raise _zone_refused(outcome, zone_id)
    return Response(status_code=204)


__all__ = [
    "Geometry",
    "MultiPolygonGeometry",
    "PolygonGeometry",
    "ZoneCreate",
    "ZonePublic",
    "not_found",
    "router",
    "zone_store",
]

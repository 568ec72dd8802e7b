"""Zone endpoints under ``/v1``: list, get, create (GeoJSON), delete (soft).

Seeing zones needs ``zone_view``; creating and deleting need ``zone_manage``. Zones belong
to a facility: a facility-scoped token sees and changes only its own facility's zones (a
zone of another facility answers 404, as if it did not exist); an admin token (all
facilities) names the facility of a new zone with ``facility`` in the body or the query
(key or id), and may filter lists with ``?facility=``.

Geometry is GeoJSON (RFC 7946: ``[longitude, latitude]``), a ``Polygon`` or
``MultiPolygon``; it is checked by :func:`geo.zones.validate_geometry`
(closed rings of at least 4 positions, coordinates in range, at most 10,000 positions,
valid for GEOS/shapely) and stored as PostGIS geography. Creation and deletion write an
audit row in the same transaction (deletion records the zone as it was); refusals are
audited too.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator

from dispatcher.api.deps import Principal, audit_fields, get_services, record_audit, require
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
    IN_MODEL_CONFIG,
    CursorQuery,
    LimitQuery,
    Page,
    decode_cursor,
    encode_cursor,
)
from dispatcher.audit.log import AuditEntry
from dispatcher.auth.roles import Permission
from dispatcher.storage.zones_store import ZoneDraft, ZoneNameTaken, ZoneRecord, ZoneStore
from geo.zones import GeometryError, ZoneKind, validate_geometry

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
    Field(min_length=2, max_length=3, description="[longitude, latitude] or with an altitude"),
]
LinearRing = Annotated[
    list[GeoPosition],
    Field(description="Closed ring: at least 4 positions, the last repeating the first"),
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

    model_config = ConfigDict(**IN_MODEL_CONFIG, allow_inf_nan=False)

    facility: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
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
    Query(max_length=64, description="Facility key or id"),
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


async def _target_facility(
    request: Request,
    store: ZoneStore,
    principal: Principal,
    body_ref: str | None,
    query_ref: str | None,
) -> uuid.UUID:
    """The facility a new zone goes to; 422 when unnamed or unknown, 403 for another's."""
    if body_ref is not None and query_ref is not None:
        body_id = await _facility_id(store, body_ref, "body.facility")
        if body_id != await _facility_id(store, query_ref, "query.facility"):
            raise _invalid("body.facility", "names another facility than ?facility=")
        target = body_id
    elif body_ref is not None or query_ref is not None:
        field = "body.facility" if body_ref is not None else "query.facility"
        ref = body_ref if body_ref is not None else query_ref
        assert ref is not None
        target = await _facility_id(store, ref, field)
    elif principal.facility_id is not None:
        return principal.facility_id
    else:
        raise _invalid("body.facility", "required: this token covers every facility; name one")
    if not principal.sees_facility(target):
        await record_audit(
            request,
            principal,
            action="zone.create",
            resource_type="zone",
            resource_id=None,
            success=False,
            reason="other_facility",
            details={"facility_id": str(target)},
        )
        raise ProblemError(
            403, "Forbidden", "This token may not create zones in that facility.", type=FORBIDDEN
        )
    return target


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
    wanted = await _facility_id(store, facility, "query.facility") if facility else None
    scope = principal.facility_id
    if wanted is not None and scope is not None and wanted != scope:
        return Page[ZonePublic](items=[], next_cursor=None)
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
    store = zone_store(request)
    target = await _target_facility(request, store, principal, body.facility, facility)
    try:
        geometry = validate_geometry(body.geometry.model_dump(exclude={"bbox"}))
    except GeometryError as exc:
        await record_audit(
            request,
            principal,
            action="zone.create",
            resource_type="zone",
            resource_id=None,
            success=False,
            reason="invalid_geometry",
            details={"name": body.name, "field": exc.field, "message": exc.message},
            facility_id=target,
        )
        raise _invalid(exc.field, exc.message) from exc
    draft = ZoneDraft(
        facility_id=target,
        name=body.name,
        kind=body.kind,
        geometry=geometry,
        speed_limit_mps=body.speed_limit_mps,
        created_by=principal.subject,
    )

    def audit(zone: ZoneRecord) -> AuditEntry:
        return AuditEntry(
            action="zone.create",
            resource_type="zone",
            resource_id=str(zone.id),
            success=True,
            details={"new": zone.summary()},
            **audit_fields(principal, request, facility_id=zone.facility_id),
        )

    try:
        zone = await store.create(draft, audit)
    except ZoneNameTaken as exc:
        await record_audit(
            request,
            principal,
            action="zone.create",
            resource_type="zone",
            resource_id=None,
            success=False,
            reason="name_taken",
            details={"name": body.name},
            facility_id=target,
        )
        raise ProblemError(409, "Zone name taken", str(exc), type=CONFLICT) from exc
    log.info(
        "zone.created",
        zone_id=str(zone.id),
        facility_id=str(zone.facility_id),
        kind=zone.kind.value,
        vertices=_vertices(zone.geometry),
    )
    response.headers["Location"] = request.app.url_path_for("get_zone", zone_id=str(zone.id))
    return ZonePublic.from_record(zone)


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

    def audit(before: ZoneRecord) -> AuditEntry:
        return AuditEntry(
            action="zone.delete",
            resource_type="zone",
            resource_id=str(zone_id),
            success=True,
            details={"old": before.summary()},
            **audit_fields(principal, request, facility_id=before.facility_id),
        )

    before = await zone_store(request).soft_delete(zone_id, principal.facility_id, audit)
    if before is None:
        await record_audit(
            request,
            principal,
            action="zone.delete",
            resource_type="zone",
            resource_id=str(zone_id),
            success=False,
            reason="not_found",
        )
        raise not_found(zone_id)
    log.info("zone.deleted", zone_id=str(zone_id), facility_id=str(before.facility_id))
    return Response(status_code=204)


def _vertices(geometry: dict[str, Any]) -> int:
    coords = geometry.get("coordinates") or []
    polygons = [coords] if geometry.get("type") == "Polygon" else coords
    return sum(len(ring) for poly in polygons for ring in poly)


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

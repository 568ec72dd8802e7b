"""Read-only fleet endpoints: summary, vehicles list and vehicle detail.

Everything here reads the live registry (``services.fleet.snapshot()``), never Postgres.
A facility-scoped principal sees only its facility's vehicles; another facility's vehicle
is answered with 404, as if it did not exist.
"""

from __future__ import annotations

import bisect
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from dispatcher.api.deps import Principal, get_services, require
from dispatcher.api.problems import NOT_FOUND, VALIDATION, ProblemError, problem_responses
from dispatcher.api.schemas import (
    DEFAULT_LIMIT,
    FACILITY_REF_PATTERN,
    CursorQuery,
    FleetSummary,
    KindCounts,
    LimitQuery,
    Page,
    VehiclePublic,
    decode_cursor,
    encode_cursor,
)
from dispatcher.auth.roles import Permission
from dispatcher.config import facility_id as facility_id_for_key
from fleet.model import VehicleKind, VehicleStatus, VehicleView

router = APIRouter(tags=["fleet"])

FacilityQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=64,
        pattern=FACILITY_REF_PATTERN,
        description="Facility id (UUID) or key; defaults to every facility the token sees.",
    ),
]


def _parse_facility(value: str | None) -> uuid.UUID | None:
    """A facility filter given as UUID or configuration key (ids derive from keys)."""
    if value is None or value == "":
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        pass
    if not value.replace("-", "").replace("_", "").isalnum():
        raise ProblemError(
            422,
            "Invalid request",
            "facility must be a facility id or key.",
            type=VALIDATION,
            errors=[("query.facility", "not a facility id or key")],
        )
    return facility_id_for_key(value)


def _visible(
    request: Request, principal: Principal, facility: uuid.UUID | None
) -> list[VehicleView]:
    vehicles = get_services(request).fleet.snapshot()
    return [
        v
        for v in vehicles
        if principal.sees_facility(v.facility_id)
        and (facility is None or v.facility_id == facility)
    ]


@router.get(
    "/fleet/summary",
    response_model=FleetSummary,
    summary="Vehicle counts by kind, status and liveness",
    responses=problem_responses(401, 403, 422),
)
async def fleet_summary(
    request: Request,
    principal: Principal = Depends(require(Permission.FLEET_SUMMARY)),
    facility: FacilityQuery = None,
) -> FleetSummary:
    """Counts over the vehicles the caller sees (optionally one facility)."""
    fid = _parse_facility(facility)
    vehicles = _visible(request, principal, fid)
    statuses = Counter(v.status for v in vehicles)
    by_kind = {
        kind: KindCounts(
            total=sum(1 for v in vehicles if v.kind is kind),
            online=sum(1 for v in vehicles if v.kind is kind and v.online),
        )
        for kind in VehicleKind
    }
    online = sum(1 for v in vehicles if v.online)
    return FleetSummary(
        facility_id=fid if fid is not None else principal.facility_id,
        total=len(vehicles),
        online=online,
        offline=len(vehicles) - online,
        charging=sum(1 for v in vehicles if v.charging),
        maintenance=sum(1 for v in vehicles if v.maintenance),
        with_errors=sum(1 for v in vehicles if any(e.level == "FATAL" for e in v.errors)),
        by_kind=by_kind,
        by_status={s: statuses.get(s, 0) for s in VehicleStatus},
        as_of=datetime.now(UTC),
    )


def _sort_key(v: VehicleView) -> tuple[str, str]:
    return (v.name, str(v.id))


@router.get(
    "/vehicles",
    response_model=Page[VehiclePublic],
    summary="List vehicles (live state), by name",
    responses=problem_responses(400, 401, 403, 422),
)
async def list_vehicles(
    request: Request,
    principal: Principal = Depends(require(Permission.FLEET_VIEW)),
    kind: VehicleKind | None = None,
    online: bool | None = None,
    status: Annotated[list[VehicleStatus] | None, Query(description="Repeat for several")] = None,
    facility: FacilityQuery = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[VehiclePublic]:
    """Vehicles the caller sees, ordered by name then id, ``limit`` per page."""
    fid = _parse_facility(facility)
    wanted = set(status) if status else None
    selected = sorted(
        (
            v
            for v in _visible(request, principal, fid)
            if (kind is None or v.kind is kind)
            and (online is None or v.online is online)
            and (wanted is None or v.status in wanted)
        ),
        key=_sort_key,
    )
    start = 0
    if cursor:
        pos = decode_cursor(cursor, keys=("n", "i"))
        after = (str(pos["n"]), str(pos["i"]))
        start = bisect.bisect_right(selected, after, key=_sort_key)
    page = selected[start : start + limit]
    more = start + limit < len(selected)
    next_cursor = (
        encode_cursor({"n": page[-1].name, "i": str(page[-1].id)}) if more and page else None
    )
    return Page[VehiclePublic](
        items=[VehiclePublic.from_view(v) for v in page], next_cursor=next_cursor
    )


@router.get(
    "/vehicles/{vehicle_id}",
    response_model=VehiclePublic,
    summary="One vehicle's live state",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_vehicle(
    request: Request,
    vehicle_id: Annotated[uuid.UUID, Path(description="Vehicle id")],
    principal: Principal = Depends(require(Permission.FLEET_VIEW)),
) -> VehiclePublic:
    """One vehicle; 404 when unknown or in a facility the caller does not see."""
    view = get_services(request).fleet.get(vehicle_id)
    if view is None or not principal.sees_facility(view.facility_id):
        raise ProblemError(404, "Not Found", f"No vehicle {vehicle_id}.", type=NOT_FOUND)
    return VehiclePublic.from_view(view)

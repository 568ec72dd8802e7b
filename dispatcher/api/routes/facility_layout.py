"""``GET /v1/facilities/{facility}/layout``: a facility's route graph in a compact form
for small maps (the terminal status view): nodes as ``[id, lat, lon]``, undirected edges
as index pairs, the named places, and the bounds. Needs ``fleet_view``; a facility the
token does not see is 404, as if it did not exist. Built once per facility and kept.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict

from dispatcher.api.deps import Principal, get_services, require
from dispatcher.api.problems import NOT_FOUND, ProblemError, problem_responses
from dispatcher.auth.roles import Permission
from dispatcher.config import FacilitySettings
from geo.frames import MapFrame
from geo.layout.outline import outline

router = APIRouter(tags=["fleet"])


class PlacePoint(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    lat: float
    lon: float


class LayoutOutline(BaseModel):
    """A facility's route graph for drawing (not for routing)."""

    model_config = ConfigDict(frozen=True)

    facility_id: uuid.UUID
    key: str
    name: str
    #: ``[node id, lat, lon]``
    nodes: list[tuple[str, float, float]]
    #: Index pairs into ``nodes``, each undirected edge once.
    edges: list[tuple[int, int]]
    places: list[PlacePoint]
    #: ``[min_lat, min_lon, max_lat, max_lon]`` over nodes and places; null when empty.
    bounds: tuple[float, float, float, float] | None


def _facility(request: Request, ref: str) -> FacilitySettings | None:
    for f in get_services(request).settings.effective_facilities:
        if ref in (f.key, str(f.id)):
            return f
    return None


def _build(request: Request, facility: FacilitySettings) -> LayoutOutline:
    frames = {m.map_id: MapFrame(m.to_spec()) for m in facility.maps}

    def to_wgs84(map_id: str | None, x: float, y: float) -> tuple[float, float] | None:
        frame = frames.get(map_id or "") or (
            next(iter(frames.values())) if map_id is None and len(frames) == 1 else None
        )
        return frame.to_wgs84(x, y) if frame is not None else None

    loaded = get_services(request).layouts.get(facility.key)
    shape = outline(loaded.documents if loaded is not None else (), to_wgs84)
    places = [PlacePoint(name=p.name, lat=p.lat, lon=p.lon) for p in facility.places]
    lats = [n[1] for n in shape.nodes] + [p.lat for p in places]
    lons = [n[2] for n in shape.nodes] + [p.lon for p in places]
    bounds = (min(lats), min(lons), max(lats), max(lons)) if lats else None
    return LayoutOutline(
        facility_id=facility.id,
        key=facility.key,
        name=facility.name,
        nodes=list(shape.nodes),
        edges=list(shape.edges),
        places=places,
        bounds=bounds,
    )


@router.get(
    "/facilities/{facility}/layout",
    response_model=LayoutOutline,
    summary="A facility's route graph and places, compact, for drawing a map",
    responses=problem_responses(401, 403, 404, 422),
)
async def facility_layout(
    request: Request,
    facility: str = Path(max_length=64, description="Facility key or id"),
    principal: Principal = Depends(require(Permission.FLEET_VIEW)),
) -> LayoutOutline:
    found = _facility(request, facility)
    if found is None or not principal.sees_facility(found.id):
        raise ProblemError(404, "Not found", f"No facility {facility!r}.", type=NOT_FOUND)
    cache: dict[str, LayoutOutline] = request.app.state.__dict__.setdefault("layout_outlines", {})
    shape = cache.get(found.key)
    if shape is None:
        shape = cache[found.key] = _build(request, found)
    return shape

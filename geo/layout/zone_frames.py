"""Stored zones (WGS84 GeoJSON, as PostGIS gives them) in a layout's map frame (pure).

The route graph lives in each map's local metric frame (LIF node positions); operators'
zones are stored on Earth. :func:`route_zone` projects one zone's polygon(s) into one
map's frame (:class:`~geo.frames.MapFrame`, one vectorised pyproj call per ring), so
:mod:`geo.layout.zones` can cut and slow the edges of that map. Only ``no_go`` and
``slow`` zones change a route graph; other kinds give None.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.errors import GEOSException
from shapely.geometry.base import BaseGeometry

from geo.frames import MapFrame
from geo.layout.zones import Zone, ZoneKind, ZoneSet

#: Stored kinds (``zones.kind``) that change a route graph, and what they become there.
ROUTE_KINDS: dict[str, ZoneKind] = {"no_go": ZoneKind.NO_GO, "slow": ZoneKind.SLOW}


@dataclass(frozen=True, slots=True)
class StoredZone:
    """A zone as stored: its id, kind (``zones.kind``), GeoJSON and speed cap."""

    zone_id: str
    kind: str
    geometry: dict[str, Any]
    speed_limit_mps: float | None = None


def _ring(frame: MapFrame, ring: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
    coords = np.asarray([(p[0], p[1]) for p in ring], dtype=np.float64)
    xs, ys = frame.from_wgs84_many(coords[:, 1], coords[:, 0])
    return list(zip(xs.tolist(), ys.tolist(), strict=True))


def _polygon(frame: MapFrame, rings: Sequence[Sequence[Sequence[float]]]) -> shapely.Polygon:
    shell, *holes = rings
    return shapely.Polygon(_ring(frame, shell), [_ring(frame, h) for h in holes])


def in_frame(geometry: dict[str, Any], frame: MapFrame) -> BaseGeometry:
    """A GeoJSON Polygon or MultiPolygon (lon, lat) as a shapely geometry in map metres."""
    kind = geometry.get("type")
    coords = geometry.get("coordinates") or []
    shape: BaseGeometry
    if kind == "Polygon":
        shape = _polygon(frame, coords)
    elif kind == "MultiPolygon":
        shape = shapely.MultiPolygon([_polygon(frame, p) for p in coords])
    else:
        raise ValueError(f"not a Polygon or MultiPolygon: {kind!r}")
    # Valid on Earth (the API checks) but a projection can still fold a sliver: GEOS
    # predicates on an invalid shape raise, so repair rather than fail every order.
    return shape if shape.is_valid else shapely.make_valid(shape)


def route_zone(zone: StoredZone, frame: MapFrame) -> Zone | None:
    """``zone`` on ``frame``'s map, or None when its kind does not change routes."""
    kind = ROUTE_KINDS.get(zone.kind)
    if kind is None:
        return None
    if kind is ZoneKind.SLOW and not (zone.speed_limit_mps or 0) > 0:
        return None  # the API refuses these; a row written by hand is ignored, not fatal
    return Zone(
        zone_id=zone.zone_id,
        kind=kind,
        geometry=in_frame(zone.geometry, frame),
        speed_limit_mps=zone.speed_limit_mps if kind is ZoneKind.SLOW else None,
        map_id=frame.map_id,
    )


def route_zones(
    zones: Iterable[StoredZone],
    frames: Iterable[MapFrame],
    on_error: Callable[[StoredZone, Exception], None] | None = None,
) -> ZoneSet:
    """Every route-changing zone of a facility, once per map frame of that facility.

    A zone that cannot be projected (a hand-written row of another geometry type, an
    unrepairable shape) is left out and reported to ``on_error``, not raised: one bad row
    must not stop every order of the facility.
    """
    frames = tuple(frames)
    out: list[Zone] = []
    for stored in zones:
        for frame in frames:
            try:
                zone = route_zone(stored, frame)
            except (ValueError, TypeError, IndexError, GEOSException) as exc:
                if on_error is not None:
                    on_error(stored, exc)
                break
            if zone is not None:
                out.append(zone)
    return ZoneSet(tuple(out))

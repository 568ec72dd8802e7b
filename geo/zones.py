"""Zones of a facility as the core sees them: their kinds, and the checks on a geometry.

A zone is a Polygon or MultiPolygon in WGS84 (GeoJSON order: longitude, latitude).
:func:`validate_geometry` accepts rings of at least 4 positions, closed, coordinates in
range and finite, at most :data:`MAX_VERTICES` positions, and valid for GEOS (shapely's
``is_valid``: no self-intersection, holes inside their shell, ...). It returns the
geometry as 2-D GeoJSON (an altitude, which GeoJSON allows, is dropped: storage is 2-D).
Errors name the offending member (``body.geometry.coordinates[0][2]``). Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Final, cast

import shapely
from shapely.errors import ShapelyError
from shapely.geometry import shape

#: Most positions (over all rings) one zone may have.
MAX_VERTICES: Final = 10_000


class ZoneKind(StrEnum):
    """What a zone means to dispatching (``zones.kind``)."""

    SERVICE_AREA = "service_area"
    NO_GO = "no_go"
    CHARGING = "charging"
    SLOW = "slow"


class GeometryError(ValueError):
    """A geometry that cannot be stored; ``field`` is the dotted path of the culprit."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _check_ring(ring: object, where: str) -> list[list[float]]:
    if not isinstance(ring, list | tuple):
        raise GeometryError(where, "a linear ring must be an array of positions")
    if len(ring) < 4:
        raise GeometryError(where, f"a linear ring needs at least 4 positions (got {len(ring)})")
    out: list[list[float]] = []
    for k, pos in enumerate(ring):
        at = f"{where}[{k}]"
        if not isinstance(pos, list | tuple) or not 2 <= len(pos) <= 3:
            raise GeometryError(at, "a position is [longitude, latitude] or with an altitude")
        numbers = [_number(v) for v in pos]
        if any(n is None or not math.isfinite(n) for n in numbers):
            raise GeometryError(at, "coordinates must be finite numbers")
        lon, lat = cast(float, numbers[0]), cast(float, numbers[1])
        if not -180.0 <= lon <= 180.0:
            raise GeometryError(at, f"longitude {lon:g} is out of range [-180, 180]")
        if not -90.0 <= lat <= 90.0:
            raise GeometryError(at, f"latitude {lat:g} is out of range [-90, 90]")
        out.append([lon, lat])
    if out[0] != out[-1]:
        raise GeometryError(
            where,
            f"the ring is not closed: its last position {out[-1]} must repeat the first {out[0]}",
        )
    return out


def validate_geometry(
    geometry: Mapping[str, Any], *, field: str = "body.geometry", max_vertices: int = MAX_VERTICES
) -> dict[str, Any]:
    """The 2-D GeoJSON of a valid Polygon or MultiPolygon, else :class:`GeometryError`."""
    gtype = geometry.get("type")
    coords = geometry.get("coordinates")
    if gtype not in ("Polygon", "MultiPolygon"):
        raise GeometryError(f"{field}.type", "must be 'Polygon' or 'MultiPolygon'")
    if not isinstance(coords, list | tuple) or not coords:
        raise GeometryError(f"{field}.coordinates", "must be a non-empty array")
    polygons = [coords] if gtype == "Polygon" else list(coords)
    prefix = f"{field}.coordinates"
    total = 0
    out: list[list[list[list[float]]]] = []
    for i, rings in enumerate(polygons):
        base = prefix if gtype == "Polygon" else f"{prefix}[{i}]"
        if not isinstance(rings, list | tuple) or not rings:
            raise GeometryError(base, "a polygon must have at least its outer ring")
        checked = []
        for j, ring in enumerate(rings):
            total += len(ring) if isinstance(ring, list | tuple) else 0
            if total > max_vertices:
                raise GeometryError(
                    prefix, f"too many positions: a zone may have at most {max_vertices}"
                )
            checked.append(_check_ring(ring, f"{base}[{j}]"))
        out.append(checked)
    clean: dict[str, Any] = {
        "type": gtype,
        "coordinates": out[0] if gtype == "Polygon" else out,
    }
    try:
        geom = shape(clean)
        valid = bool(shapely.is_valid(geom)) and not geom.is_empty
        reason = None if valid else str(shapely.is_valid_reason(geom))
    except (ValueError, TypeError, ShapelyError) as exc:
        valid, reason = False, str(exc)
    if not valid:
        raise GeometryError(field, f"invalid {gtype}: {reason}")
    return clean

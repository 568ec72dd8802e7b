"""Zones: areas of a facility stored as PostGIS geography, and the checks before storing one.

A zone is a Polygon or MultiPolygon in WGS84 (GeoJSON order: longitude, latitude) of one
kind: ``service_area``, ``no_go``, ``charging`` or ``slow`` (with ``speed_limit_mps``).
Zones are soft-deleted (``deleted_at``); a name is unique among a facility's live zones.

Two halves:

- :func:`validate_geometry` (pure): rings of at least 4 positions, closed, coordinates in
  range and finite, at most :data:`MAX_VERTICES` positions, and valid for GEOS (shapely's
  ``is_valid``: no self-intersection, holes inside their shell, ...). It returns the
  geometry as 2-D GeoJSON (an altitude, which GeoJSON allows, is dropped: the column is
  2-D). Errors name the offending member (``body.geometry.coordinates[0][2]``).
- :class:`ZoneStore`: every SQL statement on ``zones``. Writes run on the caller's
  connection when given one (``conn=``), so the application layer (:mod:`dispatcher.ops`)
  can commit a zone and its audit row in one transaction.

Geometry goes in through ``ST_GeomFromGeoJSON`` and comes out through ``ST_AsGeoJSON``;
containment (:meth:`ZoneStore.covering`) is PostGIS ``ST_Covers`` on the geography, which
treats edges as great-circle arcs (for campus-sized zones the same as planar, to
millimetres) and counts points on the boundary as inside.
"""

from __future__ import annotations

import contextlib
import json
import math
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, cast

import asyncpg
import shapely
from shapely.errors import ShapelyError
from shapely.geometry import shape

from dispatcher.storage.db import Conn

#: Most positions (over all rings) one zone may have.
MAX_VERTICES: Final = 10_000


class ZoneKind(StrEnum):
    """What a zone means to dispatching (``zones.kind``)."""

    SERVICE_AREA = "service_area"
    NO_GO = "no_go"
    CHARGING = "charging"
    SLOW = "slow"


# Geometry validation (pure) ---------------------------------------------------------------


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


# Storage ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ZoneRecord:
    """One ``zones`` row; ``geometry`` is GeoJSON (from ``ST_AsGeoJSON``)."""

    id: uuid.UUID
    facility_id: uuid.UUID
    name: str
    kind: ZoneKind
    geometry: dict[str, Any]
    speed_limit_mps: float | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None

    def summary(self) -> dict[str, Any]:
        """The zone as an audit ``details`` value (geometry included)."""
        return {
            "name": self.name,
            "kind": self.kind.value,
            "facility_id": str(self.facility_id),
            "speed_limit_mps": self.speed_limit_mps,
            "geometry": self.geometry,
            "deleted_at": self.deleted_at.isoformat() if self.deleted_at else None,
        }


@dataclass(frozen=True, slots=True)
class ZoneDraft:
    """A zone to create; ``geometry`` already passed :func:`validate_geometry`."""

    facility_id: uuid.UUID
    name: str
    kind: ZoneKind
    geometry: dict[str, Any]
    speed_limit_mps: float | None
    created_by: str


@dataclass(frozen=True, slots=True)
class FacilityRef:
    id: uuid.UUID
    key: str


class ZoneNameTaken(Exception):
    """A live zone of the facility already has this name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"a zone named {name!r} already exists in this facility")


_COLS = (
    "id, facility_id, name, kind, ST_AsGeoJSON(area)::json AS geometry, speed_limit_mps, "
    "created_by, created_at, updated_at, deleted_at"
)

_INSERT = f"""
INSERT INTO zones (facility_id, name, kind, area, speed_limit_mps, created_by)
VALUES ($1, $2, $3, ST_SetSRID(ST_GeomFromGeoJSON($4::text), 4326)::geography, $5, $6)
RETURNING {_COLS}
"""

_GET = f"""
SELECT {_COLS} FROM zones
WHERE id = $1 AND deleted_at IS NULL AND ($2::uuid IS NULL OR facility_id = $2)
"""

_LIST = f"""
SELECT {_COLS} FROM zones
WHERE deleted_at IS NULL
  AND ($1::uuid IS NULL OR facility_id = $1)
  AND ($2::text IS NULL OR kind = $2)
  AND ($3::text IS NULL OR (name, id) > ($3::text, $4::uuid))
ORDER BY name, id
LIMIT $5
"""

_SOFT_DELETE = "UPDATE zones SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL"

_COVERING = """
SELECT p.id
FROM zones z,
     unnest($2::uuid[], $3::float8[], $4::float8[]) AS p(id, lon, lat)
WHERE z.id = $1
  AND ST_Covers(z.area, ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326)::geography)
"""

_FACILITY = """
SELECT id, key FROM facilities
WHERE deleted_at IS NULL AND (key = $1 OR id::text = lower($1))
"""


def _record(row: asyncpg.Record) -> ZoneRecord:
    geometry = row["geometry"]
    if isinstance(geometry, str):  # a connection without the json codec
        geometry = json.loads(geometry)
    speed = row["speed_limit_mps"]
    return ZoneRecord(
        id=row["id"],
        facility_id=row["facility_id"],
        name=row["name"],
        kind=ZoneKind(row["kind"]),
        geometry=dict(geometry),
        # real (float4): round away the binary noise (1.2 -> 1.2000000476837158).
        speed_limit_mps=round(float(speed), 4) if speed is not None else None,
        created_by=row["created_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        deleted_at=row["deleted_at"],
    )


class ZoneStore:
    """Reads and writes ``zones`` through one asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def facility(self, ref: str) -> FacilityRef | None:
        """The live facility ``ref`` names (its key, or its id as text), else None."""
        row = await self._pool.fetchrow(_FACILITY, ref)
        return None if row is None else FacilityRef(row["id"], row["key"])

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        """A connection in a transaction, for writes that must commit with something else."""
        async with self._pool.acquire() as conn, conn.transaction():
            yield conn

    async def create(self, draft: ZoneDraft, *, conn: Conn | None = None) -> ZoneRecord:
        """Insert a zone (on ``conn`` when given, inside the caller's transaction).

        Raises :class:`ZoneNameTaken` when a live zone of the facility has the name.
        """
        try:
            row = await (conn or self._pool).fetchrow(
                _INSERT,
                draft.facility_id,
                draft.name,
                draft.kind.value,
                json.dumps(draft.geometry, separators=(",", ":")),
                draft.speed_limit_mps,
                draft.created_by,
            )
        except asyncpg.UniqueViolationError as exc:
            raise ZoneNameTaken(draft.name) from exc
        assert row is not None
        return _record(row)

    async def get(self, zone_id: uuid.UUID, facility_id: uuid.UUID | None) -> ZoneRecord | None:
        """A live zone; None if unknown, deleted, or not in ``facility_id`` (None = any)."""
        row = await self._pool.fetchrow(_GET, zone_id, facility_id)
        return None if row is None else _record(row)

    async def list_zones(
        self,
        *,
        facility_id: uuid.UUID | None,
        kind: ZoneKind | None,
        after: tuple[str, uuid.UUID] | None,
        limit: int,
    ) -> list[ZoneRecord]:
        """Live zones by (name, id), after the ``(name, id)`` cursor, at most ``limit``."""
        rows = await self._pool.fetch(
            _LIST,
            facility_id,
            kind.value if kind is not None else None,
            after[0] if after else None,
            after[1] if after else None,
            limit,
        )
        return [_record(r) for r in rows]

    async def soft_delete(
        self, zone_id: uuid.UUID, facility_id: uuid.UUID | None, *, conn: Conn | None = None
    ) -> ZoneRecord | None:
        """Mark a live zone deleted and return it as it was before.

        None (nothing changed) when there is no such live zone in ``facility_id`` (None =
        any facility). Without ``conn`` it runs in a transaction of its own.
        """
        if conn is None:
            async with self.transaction() as own:
                return await self.soft_delete(zone_id, facility_id, conn=own)
        row = await conn.fetchrow(_GET + " FOR UPDATE", zone_id, facility_id)
        if row is None:
            return None
        await conn.execute(_SOFT_DELETE, zone_id)
        return _record(row)

    async def covering(
        self, zone_id: uuid.UUID, points: Sequence[tuple[uuid.UUID, float, float]]
    ) -> set[uuid.UUID]:
        """Which of ``points`` (id, lon, lat) lie inside or on the boundary of the zone."""
        if not points:
            return set()
        rows = await self._pool.fetch(
            _COVERING,
            zone_id,
            [p[0] for p in points],
            [p[1] for p in points],
            [p[2] for p in points],
        )
        return {r["id"] for r in rows}

"""Zones: areas of a facility stored as PostGIS geography, and the checks before storing one.

A zone is a Polygon or MultiPolygon in WGS84 (GeoJSON order: longitude, latitude) of one
kind: ``service_area``, ``no_go``, ``charging`` or ``slow`` (with ``speed_limit_mps``).
Zones are soft-deleted (``deleted_at``); a name is unique among a facility's live zones.

Geometry is checked before it gets here (:func:`geo.zones.validate_geometry`, pure).
:class:`ZoneStore` holds every SQL statement on ``zones``. Writes run on the caller's
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
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from dispatcher.storage.db import Conn
from geo.zones import ZoneKind

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

"""Batched reads and writes of the fleet's durable state: facilities, vehicles, positions, events.

Every write takes a whole batch and makes one round trip (``unnest`` over column arrays),
because these are flushed from in-memory buffers every second or so, not per message.

Decisions callers rely on:

- Vehicles are upserted by ``id`` (deterministic, :func:`fleet.model.vehicle_id`, from
  kind, manufacturer and serial only); ``facility_id`` follows the latest write. A
  soft-deleted vehicle is **not** resurrected by an upsert: decommissioning is an
  operator's decision, and a robot still broadcasting must not undo it. Its row is left
  as is (so events and positions for it still satisfy their foreign keys).
- ``maintenance`` is written on insert only; upserts leave it alone so a periodic flush of
  live state cannot undo an operator's switch. Change it with :func:`set_maintenance`.
- Positions and vehicle state never move back in time: an older batch arriving after a
  newer one leaves the newer values.
- Facilities come from configuration, which is authoritative: a configured facility that
  was soft-deleted is restored. Facilities no longer configured are left untouched
  (missions and vehicles still point at them).
- Every timestamp must be timezone-aware; naive datetimes are refused (ValueError).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from dispatcher.config import FacilitySettings


@dataclass(frozen=True, slots=True)
class VehicleRow:
    """One row of ``vehicles`` (the columns the daemon reads and writes)."""

    id: uuid.UUID
    facility_id: uuid.UUID
    kind: str  # fleet.model.VehicleKind value
    manufacturer: str
    serial: str
    name: str
    capabilities: dict[str, Any]
    status: str  # fleet.model.VehicleStatus value
    online: bool
    maintenance: bool
    battery_pct: float | None
    last_seen: datetime | None


@dataclass(frozen=True, slots=True)
class PositionRow:
    """Last-known position of one vehicle. lat/lon None when only the map pose is known."""

    vehicle_id: uuid.UUID
    facility_id: uuid.UUID
    lat: float | None
    lon: float | None
    heading_deg: float | None
    accuracy_m: float | None
    map_id: str | None
    x: float | None
    y: float | None
    theta: float | None
    at: datetime


@dataclass(frozen=True, slots=True)
class VehicleEventRow:
    """One vehicle event; ``event`` is one of the values CHECKed in ``vehicle_events``."""

    vehicle_id: uuid.UUID
    facility_id: uuid.UUID
    event: str  # went_online | went_offline | registered | status_changed | error_*
    details: dict[str, Any] = field(default_factory=dict)
    at: datetime | None = None  # None: the database's now()


def _json(value: Any) -> str:
    # jsonb[] parameters go as text[]: asyncpg would read a list value as an array dimension.
    return json.dumps(value, separators=(",", ":"))


def _aware(dt: datetime | None, what: str) -> datetime | None:
    if dt is not None and dt.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (UTC), got naive {dt!r}")
    return dt


_T = TypeVar("_T")


def latest_per_key(rows: Iterable[_T], key: str, order: str | None = None) -> list[_T]:
    """One row per ``key`` attribute: the one with the greatest ``order`` (else the last).

    ``INSERT ... ON CONFLICT DO UPDATE`` refuses to touch one row twice in a statement, and
    a buffer may well hold two positions of one vehicle.
    """
    chosen: dict[Any, _T] = {}
    for row in rows:
        k = getattr(row, key)
        prev = chosen.get(k)
        if prev is None or order is None:
            chosen[k] = row
            continue
        new_val, old_val = getattr(row, order), getattr(prev, order)
        if old_val is None or (new_val is not None and new_val >= old_val):
            chosen[k] = row
    return list(chosen.values())


# Vehicles ---------------------------------------------------------------------------------

_LOAD_VEHICLES = """
SELECT id, facility_id, kind, manufacturer, serial, name, capabilities, status, online,
       maintenance, battery_pct, last_seen
FROM vehicles
WHERE deleted_at IS NULL AND ($1::uuid IS NULL OR facility_id = $1)
ORDER BY facility_id, kind, manufacturer, serial
"""


async def load_vehicles(
    pool: asyncpg.Pool, *, facility_id: uuid.UUID | None = None
) -> list[VehicleRow]:
    """Every vehicle that is not soft-deleted (of one facility, if given)."""
    rows = await pool.fetch(_LOAD_VEHICLES, facility_id)
    return [
        VehicleRow(
            id=r["id"],
            facility_id=r["facility_id"],
            kind=r["kind"],
            manufacturer=r["manufacturer"],
            serial=r["serial"],
            name=r["name"],
            capabilities=r["capabilities"],
            status=r["status"],
            online=r["online"],
            maintenance=r["maintenance"],
            battery_pct=r["battery_pct"],
            last_seen=r["last_seen"],
        )
        for r in rows
    ]


_RETIRED_IDS = """
SELECT DISTINCT ON (kind, manufacturer, serial) id, kind, manufacturer, serial
FROM vehicles
WHERE deleted_at IS NOT NULL
ORDER BY kind, manufacturer, serial, deleted_at DESC
"""


async def load_retired_ids(pool: asyncpg.Pool) -> dict[tuple[str, str, str], uuid.UUID]:
    """Ids of soft-deleted vehicles by (kind, manufacturer, serial).

    A retired vehicle that shows up again must get its stored id: ids derived under an
    older :func:`fleet.model.vehicle_id` differ from today's, and a second row for the
    same identity would break the ``(facility_id, kind, manufacturer, serial)`` key.
    """
    rows = await pool.fetch(_RETIRED_IDS)
    return {(r["kind"], r["manufacturer"], r["serial"]): r["id"] for r in rows}


_UPSERT_VEHICLES = """
INSERT INTO vehicles AS v (id, facility_id, kind, manufacturer, serial, name, capabilities,
                           status, online, maintenance, battery_pct, last_seen)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[]::jsonb[], $8::text[], $9::boolean[], $10::boolean[], $11::real[],
                     $12::timestamptz[])
ON CONFLICT (id) DO UPDATE SET
    facility_id  = EXCLUDED.facility_id,
    name         = EXCLUDED.name,
    capabilities = EXCLUDED.capabilities,
    status       = EXCLUDED.status,
    online       = EXCLUDED.online,
    battery_pct  = EXCLUDED.battery_pct,
    last_seen    = EXCLUDED.last_seen
WHERE v.deleted_at IS NULL
  AND (v.last_seen IS NULL OR EXCLUDED.last_seen IS NULL OR EXCLUDED.last_seen >= v.last_seen)
  AND (v.facility_id, v.name, v.capabilities, v.status, v.online, v.battery_pct, v.last_seen)
      IS DISTINCT FROM (EXCLUDED.facility_id, EXCLUDED.name, EXCLUDED.capabilities,
                        EXCLUDED.status, EXCLUDED.online, EXCLUDED.battery_pct,
                        EXCLUDED.last_seen)
"""


async def upsert_vehicles(pool: asyncpg.Pool, rows: Sequence[VehicleRow]) -> None:
    """Insert new vehicles and update live fields of known ones, in one statement.

    Updated: facility_id (a vehicle's id does not depend on its facility, and a robot
    first seen on its connection topic may be placed in a facility later), name,
    capabilities, status, online, battery_pct, last_seen. Not updated: kind,
    manufacturer, serial, ``maintenance`` (see :func:`set_maintenance`), soft-deleted rows,
    and rows whose stored ``last_seen`` is newer than the batch's.
    """
    # Sorted: two daemons writing the same vehicles at once lock the rows in one order
    # (in their own orders, each can hold a row the other waits for: a deadlock).
    batch = sorted(latest_per_key(rows, "id", "last_seen"), key=lambda r: r.id)
    if not batch:
        return
    for r in batch:
        _aware(r.last_seen, "VehicleRow.last_seen")
    await pool.execute(
        _UPSERT_VEHICLES,
        [r.id for r in batch],
        [r.facility_id for r in batch],
        [r.kind for r in batch],
        [r.manufacturer for r in batch],
        [r.serial for r in batch],
        [r.name for r in batch],
        [_json(r.capabilities) for r in batch],
        [r.status for r in batch],
        [r.online for r in batch],
        [r.maintenance for r in batch],
        [r.battery_pct for r in batch],
        [r.last_seen for r in batch],
    )


async def set_maintenance(pool: asyncpg.Pool, vehicle_id: uuid.UUID, on: bool) -> bool:
    """Set or clear a vehicle's maintenance flag. False if no such (live) vehicle."""
    result = await pool.execute(
        "UPDATE vehicles SET maintenance = $2 WHERE id = $1 AND deleted_at IS NULL",
        vehicle_id,
        on,
    )
    return bool(result != "UPDATE 0")


# Positions --------------------------------------------------------------------------------

_UPSERT_POSITIONS = """
INSERT INTO vehicle_positions AS p (vehicle_id, facility_id, position, heading_deg, accuracy_m,
                                    map_id, x, y, theta, at)
SELECT u.vehicle_id, u.facility_id,
       CASE WHEN u.lat IS NULL OR u.lon IS NULL THEN NULL
            ELSE ST_SetSRID(ST_MakePoint(u.lon, u.lat), 4326)::geography END,
       u.heading_deg, u.accuracy_m, u.map_id, u.x, u.y, u.theta, u.at
FROM unnest($1::uuid[], $2::uuid[], $3::float8[], $4::float8[], $5::real[], $6::real[],
            $7::text[], $8::float8[], $9::float8[], $10::float8[], $11::timestamptz[])
     AS u(vehicle_id, facility_id, lat, lon, heading_deg, accuracy_m, map_id, x, y, theta, at)
ON CONFLICT (vehicle_id) DO UPDATE SET
    facility_id = EXCLUDED.facility_id,
    position    = EXCLUDED.position,
    heading_deg = EXCLUDED.heading_deg,
    accuracy_m  = EXCLUDED.accuracy_m,
    map_id      = EXCLUDED.map_id,
    x           = EXCLUDED.x,
    y           = EXCLUDED.y,
    theta       = EXCLUDED.theta,
    at          = EXCLUDED.at
WHERE EXCLUDED.at >= p.at
"""


async def upsert_positions(pool: asyncpg.Pool, rows: Sequence[PositionRow]) -> None:
    """Write last-known positions (point from lon/lat, SRID 4326), one round trip.

    Per vehicle only the newest row of the batch counts, and it replaces the stored one
    only if it is not older. The vehicle must exist in ``vehicles`` (foreign key).
    """
    # Sorted, as in upsert_vehicles: one lock order for every writer.
    batch = sorted(latest_per_key(rows, "vehicle_id", "at"), key=lambda r: r.vehicle_id)
    if not batch:
        return
    for r in batch:
        _aware(r.at, "PositionRow.at")
    await pool.execute(
        _UPSERT_POSITIONS,
        [r.vehicle_id for r in batch],
        [r.facility_id for r in batch],
        [r.lat for r in batch],
        [r.lon for r in batch],
        [r.heading_deg for r in batch],
        [r.accuracy_m for r in batch],
        [r.map_id for r in batch],
        [r.x for r in batch],
        [r.y for r in batch],
        [r.theta for r in batch],
        [r.at for r in batch],
    )


# Vehicle events ---------------------------------------------------------------------------

_INSERT_EVENTS = """
INSERT INTO vehicle_events (vehicle_id, facility_id, event, details, at)
SELECT u.vehicle_id, u.facility_id, u.event, u.details, coalesce(u.at, now())
FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[]::jsonb[], $5::timestamptz[])
     WITH ORDINALITY AS u(vehicle_id, facility_id, event, details, at, n)
ORDER BY u.n
"""


async def insert_vehicle_events(pool: asyncpg.Pool, rows: Sequence[VehicleEventRow]) -> None:
    """Append vehicle events in batch order (their ``seq`` follows it), one round trip.

    The vehicles must already be in ``vehicles``: upsert the batch's vehicles first.
    """
    if not rows:
        return
    for r in rows:
        _aware(r.at, "VehicleEventRow.at")
    await pool.execute(
        _INSERT_EVENTS,
        [r.vehicle_id for r in rows],
        [r.facility_id for r in rows],
        [r.event for r in rows],
        [_json(r.details) for r in rows],
        [r.at for r in rows],
    )


async def vehicle_events_since(
    pool: asyncpg.Pool, facility_id: uuid.UUID, since: datetime
) -> list[tuple[uuid.UUID, str, datetime]]:
    """The facility's stored vehicle events from ``since`` on: (vehicle, event, at).

    What a daemon taking the facility over compares the changes it kept as standby
    against (:mod:`dispatcher.leadership.gap`).
    """
    rows = await pool.fetch(
        "SELECT vehicle_id, event, at FROM vehicle_events WHERE facility_id = $1 AND at >= $2",
        facility_id,
        since,
    )
    return [(r["vehicle_id"], r["event"], r["at"]) for r in rows]


# Facilities -------------------------------------------------------------------------------

_SYNC_FACILITIES = """
INSERT INTO facilities AS f (id, key, name, timezone, maps, places)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[]::jsonb[],
                     $6::text[]::jsonb[])
ON CONFLICT (id) DO UPDATE SET
    key        = EXCLUDED.key,
    name       = EXCLUDED.name,
    timezone   = EXCLUDED.timezone,
    maps       = EXCLUDED.maps,
    places     = EXCLUDED.places,
    deleted_at = NULL
WHERE (f.key, f.name, f.timezone, f.maps, f.places, f.deleted_at)
      IS DISTINCT FROM (EXCLUDED.key, EXCLUDED.name, EXCLUDED.timezone, EXCLUDED.maps,
                        EXCLUDED.places, NULL)
"""


async def sync_facilities(pool: asyncpg.Pool, facilities: Sequence[FacilitySettings]) -> None:
    """Upsert the configured facilities by id (uuid5 of the key); restore soft-deleted ones.

    ``maps`` and ``places`` are stored as JSON arrays of the settings' fields. Rows whose
    values did not change are not touched (``updated_at`` keeps meaning "last changed").
    """
    if not facilities:
        return
    await pool.execute(
        _SYNC_FACILITIES,
        [f.id for f in facilities],
        [f.key for f in facilities],
        [f.name for f in facilities],
        [f.timezone for f in facilities],
        [_json([m.model_dump(mode="json") for m in f.maps]) for f in facilities],
        [_json([p.model_dump(mode="json") for p in f.places]) for f in facilities],
    )

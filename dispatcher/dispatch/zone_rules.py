"""Zone rules for planning, from PostGIS ``zones``: where a mission may not be served.

A mission is not planned while its pickup or drop-off lies in a ``no_go`` zone of its
facility, or outside every ``service_area`` of a facility that has service areas. One
query answers for every open mission (its two points as arrays, ``ST_Covers`` against the
facility's live zones). The rule itself is :func:`zone_verdict` (pure).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg
import structlog

from dispatcher.missions.domain import MissionRecord

log = structlog.get_logger(__name__)

_POINTS_IN_ZONES = """
WITH p AS (
    SELECT * FROM unnest($1::int[], $2::uuid[], $3::float8[], $4::float8[])
        AS t(i, facility_id, lon, lat)
)
SELECT p.i,
    coalesce(bool_or(z.kind = 'no_go' AND ST_Covers(z.area, g.pt)), false) AS in_no_go,
    coalesce(bool_or(z.kind = 'service_area'), false) AS has_area,
    coalesce(bool_or(z.kind = 'service_area' AND ST_Covers(z.area, g.pt)), false) AS in_area
FROM p
CROSS JOIN LATERAL (SELECT ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326)::geography AS pt) g
LEFT JOIN zones z ON z.facility_id = p.facility_id AND z.deleted_at IS NULL
    AND z.kind IN ('no_go', 'service_area')
GROUP BY p.i
"""


def zone_verdict(in_no_go: bool, has_area: bool, in_area: bool) -> str | None:
    """Why a point may not be served (None: it may)."""
    if in_no_go:
        return "in_no_go_zone"
    if has_area and not in_area:
        return "outside_service_area"
    return None


class ZoneRules:
    """Checks open missions against the facilities' zones."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def blocked(self, missions: Sequence[MissionRecord]) -> dict[uuid.UUID, str]:
        """Mission -> why it may not be served now (missions that may are left out)."""
        if not missions:
            return {}
        facilities, lons, lats = [], [], []
        for m in missions:
            for loc in (m.pickup, m.dropoff):
                facilities.append(m.facility_id)
                lons.append(loc.lon)
                lats.append(loc.lat)
        rows = await self._pool.fetch(
            _POINTS_IN_ZONES, list(range(len(lons))), facilities, lons, lats
        )
        out: dict[uuid.UUID, str] = {}
        for row in rows:
            why = zone_verdict(row["in_no_go"], row["has_area"], row["in_area"])
            if why is not None:
                out.setdefault(missions[row["i"] // 2].id, why)
        return out

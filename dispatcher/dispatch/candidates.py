"""Vehicles near each pickup: Redis GEO first, PostGIS while Redis is away (edge).

Keeps a planning problem small in a large fleet: each open mission gets the
``count`` nearest fresh vehicles within ``radius_m`` of its pickup. A mission near which
nothing is found gets no list, so every eligible vehicle may still serve it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis
import structlog

from dispatcher.storage.live_positions import LivePositions

log = structlog.get_logger(__name__)

_NEAR_SQL = """
SELECT vehicle_id FROM vehicle_positions
WHERE facility_id = $1 AND position IS NOT NULL AND at > now() - make_interval(secs => $5)
  AND ST_DWithin(position, ST_SetSRID(ST_MakePoint($2, $3), 4326)::geography, $4)
ORDER BY position <-> ST_SetSRID(ST_MakePoint($2, $3), 4326)::geography
LIMIT $6
"""


@dataclass(frozen=True, slots=True)
class Around:
    """Where to look for one mission."""

    mission_id: uuid.UUID
    facility_id: uuid.UUID
    lat: float
    lon: float


class CandidateFinder:
    """Finds candidate vehicles per mission; one per engine."""

    def __init__(
        self,
        positions: LivePositions,
        pool: asyncpg.Pool,
        *,
        radius_m: float,
        count: int,
        max_age_s: float,
    ) -> None:
        self._positions = positions
        self._pool = pool
        self._radius = radius_m
        self._count = count
        self._max_age = max_age_s
        self.fallbacks = 0

    async def find(self, around: Sequence[Around]) -> dict[str, list[str]]:
        """Mission id -> nearby vehicle ids (missions with none found are left out).

        Every mission is asked in one Redis pipeline (two round trips in all); while
        Redis is away, one PostGIS query per mission."""
        out: dict[str, list[str]] = {}
        if not around:
            return out
        try:
            found = await self._positions.nearby_many(
                [(a.facility_id, a.lat, a.lon) for a in around],
                self._radius,
                limit=self._count,
                now=time.time(),
            )
            lists = [[str(n.vehicle_id) for n in near] for near in found]
        except (aioredis.RedisError, OSError) as exc:
            self.fallbacks += 1
            log.warning("dispatch.candidates_fallback", error=str(exc), missions=len(around))
            lists = [await self._from_postgis(a) for a in around]
        for a, ids in zip(around, lists, strict=True):
            if ids:
                out[str(a.mission_id)] = ids
        return out

    async def _from_postgis(self, a: Around) -> list[str]:
        rows = await self._pool.fetch(
            _NEAR_SQL, a.facility_id, a.lon, a.lat, self._radius, self._max_age, self._count
        )
        return [str(r["vehicle_id"]) for r in rows]

"""Live vehicle positions in Redis GEO, with their freshness.

Per facility two keys: a GEO set ``{prefix}geo:{facility}`` (member = vehicle id) and a
sorted set ``{prefix}geo_seen:{facility}`` whose score is the position's time (epoch s).
Look-ups search the GEO set and then drop members whose time is older than the heartbeat
timeout, so a stale position is never offered, even between prune rounds. Offline
vehicles are removed as soon as the registry reports them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
import structlog

from dispatcher.metrics import GEO_FLUSH_SECONDS
from fleet.record import VehicleRecord

log = structlog.get_logger(__name__)

#: Redis GEO cannot index latitudes beyond this (Web Mercator limit).
_MAX_GEO_LAT = 85.05112878


@dataclass(frozen=True, slots=True)
class NearbyVehicle:
    vehicle_id: uuid.UUID
    distance_m: float
    lat: float
    lon: float
    age_s: float


class LivePositions:
    """Writes and queries live positions; one instance per daemon."""

    def __init__(self, redis: aioredis.Redis, *, key_prefix: str, max_age_s: float) -> None:
        self._redis = redis
        self._prefix = key_prefix
        self._max_age = max_age_s
        # Where each vehicle was last written, so a move between facilities removes the old entry.
        self._written_facility: dict[uuid.UUID, uuid.UUID] = {}
        # str(uuid) costs a microsecond, per vehicle per flush: keep each vehicle's member.
        self._members: dict[uuid.UUID, str] = {}

    def geo_key(self, facility_id: uuid.UUID) -> str:
        return f"{self._prefix}geo:{facility_id}"

    def seen_key(self, facility_id: uuid.UUID) -> str:
        return f"{self._prefix}geo_seen:{facility_id}"

    async def write(self, records: Sequence[VehicleRecord]) -> int:
        """Write the given vehicles' positions in one pipeline; returns members written.

        Online vehicles with a known position are added or moved; the rest are removed.
        """
        if not records:
            return 0
        started = time.perf_counter()
        adds: dict[uuid.UUID, list[float | str]] = {}
        seen: dict[uuid.UUID, dict[str, float]] = {}
        removes: dict[uuid.UUID, list[str]] = {}
        member_of = self._members
        for rec in records:
            member = member_of.get(rec.id)
            if member is None:
                member = member_of[rec.id] = str(rec.id)
            previous = self._written_facility.get(rec.id)
            if previous is not None and previous != rec.facility_id:
                removes.setdefault(previous, []).append(member)
            usable = (
                rec.online
                and rec.lat is not None
                and rec.lon is not None
                and rec.position_time is not None
                and abs(rec.lat) <= _MAX_GEO_LAT
            )
            if usable:
                assert rec.lat is not None and rec.lon is not None and rec.position_time is not None
                adds.setdefault(rec.facility_id, []).extend((rec.lon, rec.lat, member))
                seen.setdefault(rec.facility_id, {})[member] = rec.position_time
                self._written_facility[rec.id] = rec.facility_id
            elif previous is not None:
                removes.setdefault(rec.facility_id, []).append(member)
                self._written_facility.pop(rec.id, None)
        pipe = self._redis.pipeline(transaction=False)
        for fid, members in removes.items():
            pipe.zrem(self.geo_key(fid), *members)
            pipe.zrem(self.seen_key(fid), *members)
        for fid, values in adds.items():
            pipe.geoadd(self.geo_key(fid), values)
            pipe.zadd(self.seen_key(fid), seen[fid])
        await pipe.execute()
        GEO_FLUSH_SECONDS.observe(time.perf_counter() - started)
        return sum(len(v) for v in seen.values())

    async def nearby(
        self,
        facility_id: uuid.UUID,
        lat: float,
        lon: float,
        radius_m: float,
        *,
        limit: int = 50,
        now: float | None = None,
    ) -> list[NearbyVehicle]:
        """Fresh vehicles within ``radius_m`` of a point, nearest first."""
        now = time.time() if now is None else now
        found: list[Any] = await self._redis.geosearch(
            self.geo_key(facility_id),
            longitude=lon,
            latitude=lat,
            radius=radius_m,
            unit="m",
            sort="ASC",
            withdist=True,
            withcoord=True,
            # Ask for more than the limit: some hits may be stale and filtered out below.
            count=max(limit * 2, limit + 16),
        )
        if not found:
            return []
        members = [m for m, _d, _c in found]
        times: list[float | None] = await self._redis.zmscore(self.seen_key(facility_id), members)
        return self._fresh(found, times, now, limit)

    async def nearby_many(
        self,
        queries: Sequence[tuple[uuid.UUID, float, float]],
        radius_m: float,
        *,
        limit: int = 50,
        now: float | None = None,
    ) -> list[list[NearbyVehicle]]:
        """:meth:`nearby` for many points ``(facility_id, lat, lon)`` in two round trips
        (one pipeline of GEOSEARCH, one of ZMSCORE), whatever their number: the planner
        asks for every open mission at once, and a round trip each would keep the event
        loop busy for as long as there are missions."""
        if not queries:
            return []
        now = time.time() if now is None else now
        pipe = self._redis.pipeline(transaction=False)
        for facility_id, lat, lon in queries:
            pipe.geosearch(
                self.geo_key(facility_id),
                longitude=lon,
                latitude=lat,
                radius=radius_m,
                unit="m",
                sort="ASC",
                withdist=True,
                withcoord=True,
                count=max(limit * 2, limit + 16),
            )
        found_all: list[list[Any]] = await pipe.execute()
        pipe = self._redis.pipeline(transaction=False)
        asked = []
        for (facility_id, _lat, _lon), found in zip(queries, found_all, strict=True):
            if found:
                pipe.zmscore(self.seen_key(facility_id), [m for m, _d, _c in found])
                asked.append(found)
        times_all: list[list[float | None]] = await pipe.execute() if asked else []
        times_of = iter(times_all)
        out: list[list[NearbyVehicle]] = []
        for found in found_all:
            out.append(self._fresh(found, next(times_of), now, limit) if found else [])
        return out

    def _fresh(
        self, found: list[Any], times: list[float | None], now: float, limit: int
    ) -> list[NearbyVehicle]:
        out: list[NearbyVehicle] = []
        for (member, dist, (mlon, mlat)), at in zip(found, times, strict=True):
            if at is None or now - at >= self._max_age:
                continue
            name = member.decode() if isinstance(member, bytes) else str(member)
            out.append(
                NearbyVehicle(uuid.UUID(name), float(dist), float(mlat), float(mlon), now - at)
            )
            if len(out) >= limit:
                break
        return out

    def marker_key(self) -> str:
        """A key that exists while Redis holds what fleetd wrote (gone: flushed, restarted)."""
        return f"{self._prefix}geo:written"

    async def lost_since_last_check(self) -> bool:
        """Whether Redis lost fleetd's keys since the last call (FLUSHALL, a restart without
        persistence, an eviction): True the first time and after each loss. Sets the marker."""
        created = await self._redis.set(self.marker_key(), b"1", nx=True)
        if created:
            self._written_facility.clear()
        return bool(created)

    async def prune(self, facility_ids: Sequence[uuid.UUID], *, now: float | None = None) -> int:
        """Remove positions older than the freshness limit (vehicles that vanished)."""
        now = time.time() if now is None else now
        removed = 0
        for fid in facility_ids:
            stale = await self._redis.zrangebyscore(self.seen_key(fid), "-inf", now - self._max_age)
            if stale:
                pipe = self._redis.pipeline(transaction=False)
                pipe.zrem(self.geo_key(fid), *stale)
                pipe.zrem(self.seen_key(fid), *stale)
                await pipe.execute()
                removed += len(stale)
                for m in stale:
                    name = m.decode() if isinstance(m, bytes) else str(m)
                    self._written_facility.pop(uuid.UUID(name), None)
        if removed:
            log.info("live_positions.pruned", removed=removed)
        return removed

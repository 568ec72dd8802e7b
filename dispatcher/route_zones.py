"""The operators' zones (PostGIS) as the robots' route graphs apply them.

:class:`RouteZones` holds, per facility, the live ``no_go`` and ``slow`` zones projected
into each of the facility's map frames (:func:`geo.layout.zone_frames.route_zones`). The
order builder (:class:`~dispatcher.dispatch.robot_channel.FacilityOrderLayouts`) asks it
for a facility's :class:`~geo.layout.zones.ZoneSet` on every order; the zone set's key is
part of the route-graph cache key (:class:`~geo.layout.cache.RouteGraphs`), so a changed
zone set compiles a new graph (a new layout version) and the next order is routed on it.

When it reloads:

* at start (the supervisor's task ``fleetd.route_zones`` loads before its first wait);
* right after a zone is created or deleted through the API (:meth:`RouteZones.changed`,
  awaited by the zone operation before it answers, so the order that follows the answer
  already avoids the zone);
* every ``interval_s`` (zones written by another fleetd process or by hand). A reload
  that finds the same rows keeps the same zone sets (same keys: cached graphs stay).

A failed reload (PostgreSQL away) keeps the zones it had and is logged and counted.

Which frames: each ``[[facilities.maps]]`` of the facility, and, for a map its layouts
use that no ``[[facilities.maps]]`` places on Earth, a placement fitted from the
facility's named places that carry a ``node_id`` (:mod:`geo.layout.georef`). Without
that, a facility configured with layouts but no maps had no frame, so its zones were
silently dropped. A layout map that no place locates either is logged at start
(``route_zones.map_not_located``): zones cannot be placed on it.

Straight-line travel (drivers, and robots between points off the route graph) goes round
the no-go zones: :meth:`RouteZones.around` lengthens the planner's straight-line pairs
that cross one (:mod:`geo.layout.detours`), with obstacles rebuilt only when the zones
change.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import asyncpg
import numpy as np
import numpy.typing as npt
import shapely
import shapely.geometry
import structlog
from prometheus_client import Counter, Gauge
from shapely.errors import GEOSException

from dispatcher.facility_layouts import FacilityLayouts
from dispatcher.storage.db import CONNECT_ERRORS
from geo.facility import FacilitySpec
from geo.frames import MapFrame
from geo.layout.detours import Obstacles, obstacles
from geo.layout.georef import fitted_maps
from geo.layout.model import LifDocument
from geo.layout.zone_frames import ROUTE_KINDS, StoredZone, route_zones
from geo.layout.zones import NO_ZONES, ZoneSet

log = structlog.get_logger(__name__)

ROUTE_ZONES = Gauge(
    "fleetd_route_zones",
    "Zones applied to the robots' route graphs, by facility key and kind.",
    ["facility", "kind"],
)
ROUTE_ZONE_RELOADS = Counter(
    "fleetd_route_zone_reloads_total",
    "Reloads of the zones applied to route graphs, by outcome (changed, same, failed), "
    "and zones left out because they could not be projected (zone_skipped).",
    ["outcome"],
)

_LOAD = """
SELECT id, facility_id, kind, speed_limit_mps, ST_AsGeoJSON(area)::text AS geometry
FROM zones
WHERE deleted_at IS NULL AND kind = ANY($1::text[])
ORDER BY facility_id, id
"""

#: What a failed reload raises (PostgreSQL away or refusing).
_RELOAD_ERRORS: tuple[type[BaseException], ...] = (asyncpg.PostgresError, *CONNECT_ERRORS)

#: Seconds between reloads that catch zones written outside this process.
DEFAULT_INTERVAL_S = 30.0


def _stored(row: asyncpg.Record) -> StoredZone:
    speed = row["speed_limit_mps"]
    geometry: dict[str, Any] = json.loads(row["geometry"])
    return StoredZone(
        zone_id=str(row["id"]),
        kind=str(row["kind"]),
        geometry=geometry,
        speed_limit_mps=round(float(speed), 4) if speed is not None else None,
    )


def _skipped(zone: StoredZone, exc: Exception) -> None:
    ROUTE_ZONE_RELOADS.labels("zone_skipped").inc()
    log.error("route_zones.zone_skipped", zone_id=zone.zone_id, kind=zone.kind, error=str(exc))


def _frames(facility: FacilitySpec, documents: Sequence[LifDocument]) -> tuple[MapFrame, ...]:
    """The configured map frames plus, for the layouts' other maps, fitted ones."""
    configured = tuple(MapFrame(m) for m in facility.maps)
    if not documents:
        return configured
    fitted, missing = fitted_maps(documents, facility.places, (m.map_id for m in facility.maps))
    for map_id, fit in fitted.items():
        log.info(
            "route_zones.map_fitted",
            facility=facility.key,
            map_id=map_id,
            origin=(round(fit.spec.origin_lat, 7), round(fit.spec.origin_lon, 7)),
            rotation_deg=round(fit.spec.rotation_deg, 2),
            places=fit.pairs,
            rms_m=round(fit.rms_m, 2),
        )
    for map_id in missing:
        log.warning(
            "route_zones.map_not_located",
            facility=facility.key,
            map_id=map_id,
            reason="no [[facilities.maps]] entry and no place with a node_id on it",
        )
    return configured + tuple(MapFrame(f.spec) for f in fitted.values())


def layout_documents(
    facilities: Iterable[tuple[uuid.UUID, str]], layouts: Mapping[str, FacilityLayouts]
) -> dict[uuid.UUID, tuple[LifDocument, ...]]:
    """Facility id -> its loaded LIF documents, from ``(id, key)`` pairs and the loaded
    layouts by facility key (:class:`dispatcher.facility_layouts.FacilityLayouts`)."""
    return {fid: tuple(layouts[key].documents) for fid, key in facilities if key in layouts}


def _obstacles(stored: Mapping[uuid.UUID, list[StoredZone]]) -> Obstacles | None:
    """Every facility's no-go zones (WGS84) as obstacles; one that cannot be read is
    skipped (it is already counted by the route graphs' projection)."""
    shapes = []
    for zones in stored.values():
        for zone in zones:
            if zone.kind != "no_go":
                continue
            try:
                shape = shapely.geometry.shape(zone.geometry)
            except (ValueError, TypeError, AttributeError, GEOSException):
                continue
            shapes.append(shape if shape.is_valid else shapely.make_valid(shape))
    return obstacles(shapes)


class RouteZones:
    """Per facility, the zones its route graphs apply (see the module docstring)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        facilities: Iterable[FacilitySpec],
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        documents: Mapping[uuid.UUID, Sequence[LifDocument]] | None = None,
    ) -> None:
        """``documents``: each facility's LIF documents (by facility id), so that a map
        with no ``[[facilities.maps]]`` entry is placed from the facility's places."""
        self._pool = pool
        self._facilities = {f.id: f for f in facilities}
        docs = documents or {}
        self._frames = {f.id: _frames(f, docs.get(f.id, ())) for f in self._facilities.values()}
        self._interval_s = interval_s
        self._zones: dict[uuid.UUID, ZoneSet] = {}
        #: The no-go zones of every facility as obstacles for straight-line travel.
        self._obstacles: Obstacles | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        #: Increases on every reload that changed a facility's zone set.
        self.version = 0

    def __call__(self, facility_id: uuid.UUID) -> ZoneSet:
        """The zones ``facility_id``'s route graphs apply now."""
        return self._zones.get(facility_id, NO_ZONES)

    @property
    def by_facility(self) -> Mapping[uuid.UUID, ZoneSet]:
        return dict(self._zones)

    async def reload(self) -> bool:
        """Read the live zones again; True when a facility's zone set changed.

        Raises what the pool raises (the caller decides whether that is fatal).
        """
        async with self._lock:
            rows = await self._pool.fetch(_LOAD, list(ROUTE_KINDS))
            stored: dict[uuid.UUID, list[StoredZone]] = {}
            for row in rows:
                stored.setdefault(row["facility_id"], []).append(_stored(row))
            fresh: dict[uuid.UUID, ZoneSet] = {}
            for fid, zones in stored.items():
                frames = self._frames.get(fid)
                if frames:  # a facility without maps has no route graph to change
                    fresh[fid] = route_zones(zones, frames, _skipped)
            changed = {k: v.key for k, v in fresh.items()} != {
                k: v.key for k, v in self._zones.items()
            }
            self._zones = fresh
            if changed:
                self._obstacles = _obstacles(stored)
                self.version += 1
                log.info(
                    "route_zones.changed",
                    version=self.version,
                    zones={str(k): len(v.zones) for k, v in fresh.items()},
                )
            self._count(stored)
            ROUTE_ZONE_RELOADS.labels("changed" if changed else "same").inc()
            return changed

    async def changed(self) -> None:
        """A zone was created or deleted here: reload now (failures are logged, and the
        periodic task retries)."""
        try:
            await self.reload()
        except _RELOAD_ERRORS as exc:
            ROUTE_ZONE_RELOADS.labels("failed").inc()
            log.warning("route_zones.reload_failed", error=str(exc))
            self._wake.set()

    async def run(self) -> None:
        """The supervisor's task: load now, then every ``interval_s`` (or when woken)."""
        while True:
            await self.changed()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval_s):
                    await self._wake.wait()

    def around(
        self, lats: Sequence[float], lons: Sequence[float], metres: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """``metres`` (straight-line distances between the points) with the pairs whose
        line crosses a live no-go zone lengthened by the way round it (the planner's
        :class:`~dispatcher.dispatch.problem.Detours`; called from its worker thread: it
        reads one reference, swapped whole on reload)."""
        found = self._obstacles
        return metres if found is None else found.around(lats, lons, metres)

    def _count(self, stored: Mapping[uuid.UUID, list[StoredZone]]) -> None:
        for fid, facility in self._facilities.items():
            for kind in ROUTE_KINDS:
                n = sum(1 for z in stored.get(fid, ()) if z.kind == kind)
                ROUTE_ZONES.labels(facility.key, kind).set(n)

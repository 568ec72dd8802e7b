"""Zones on a route graph: pure functions over shapely geometries in the map frame.

A no-go zone removes every edge that crosses it; a slow zone caps the speed of every edge
that crosses it. "Crosses" means the edge's line enters the zone's interior: an edge that
only runs along a zone's boundary is untouched. Zones arrive from PostGIS at the edge of
fleetd, already converted into the layout's map frame; here they are plain values.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from geo.layout.graph import EdgeTable


class ZoneKind(StrEnum):
    NO_GO = "no_go"
    SLOW = "slow"


@dataclass(frozen=True, slots=True)
class Zone:
    """A zone in a map frame (``map_id`` None: in every map of the layout)."""

    zone_id: str
    kind: ZoneKind
    geometry: BaseGeometry
    speed_limit_mps: float | None = None
    map_id: str | None = None

    def __post_init__(self) -> None:
        if self.kind is ZoneKind.SLOW and not (self.speed_limit_mps or 0) > 0:
            raise ValueError(f"slow zone {self.zone_id!r} needs a positive speed_limit_mps")

    @property
    def key(self) -> tuple[str, str, float | None, str | None, str]:
        """A hashable identity: the same zone content gives the same key."""
        shape = hashlib.sha256(shapely.to_wkb(self.geometry)).hexdigest()[:16]
        return (self.zone_id, self.kind.value, self.speed_limit_mps, self.map_id, shape)


ZoneKey = tuple[tuple[str, str, float | None, str | None, str], ...]


@dataclass(frozen=True, slots=True)
class ZoneSet:
    """The zones in force for one computation; its ``key`` is part of the matrix cache key."""

    zones: tuple[Zone, ...] = ()
    #: Computed once: the key is read for every order and every planner matrix lookup,
    #: and hashing each zone's geometry each time would cost more than the look-up.
    _key: ZoneKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_key", tuple(sorted(z.key for z in self.zones)))

    @property
    def key(self) -> ZoneKey:
        return self._key


NO_ZONES = ZoneSet()


def crossing(edges: EdgeTable, zone: Zone) -> npt.NDArray[np.bool_]:
    """Which edges of ``edges`` enter the interior of ``zone`` (vectorised shapely)."""
    if not len(edges.edge_ids):
        return np.zeros(0, dtype=bool)
    hits = shapely.intersects(edges.geometry, zone.geometry) & ~shapely.touches(
        edges.geometry, zone.geometry
    )
    if zone.map_id is not None:
        hits &= np.array([m == zone.map_id for m in edges.edge_map], dtype=bool)
    return np.asarray(hits, dtype=bool)


def remove_no_go(edges: EdgeTable, zones: ZoneSet) -> EdgeTable:
    """``edges`` without every edge crossing a no-go zone."""
    keep = np.ones(len(edges.edge_ids), dtype=bool)
    for zone in zones.zones:
        if zone.kind is ZoneKind.NO_GO:
            keep &= ~crossing(edges, zone)
    return edges if keep.all() else edges.select(keep)


def cap_slow(edges: EdgeTable, zones: ZoneSet) -> EdgeTable:
    """``edges`` with each edge's speed capped by every slow zone it crosses."""
    speed = edges.speed.copy()
    for zone in zones.zones:
        if zone.kind is ZoneKind.SLOW and zone.speed_limit_mps is not None:
            hit = crossing(edges, zone)
            speed[hit] = np.minimum(speed[hit], zone.speed_limit_mps)
    return edges.with_speed(speed)


def apply_zones(edges: EdgeTable, zones: ZoneSet) -> EdgeTable:
    """No-go zones first (removed edges need no speed), then slow zones."""
    return cap_slow(remove_no_go(edges, zones), zones)

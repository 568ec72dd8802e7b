"""Straight-line travel around no-go zones (pure): the drivers' geodesic model with zones.

Drivers' default travel is the geodesic distance times a detour factor
(:class:`geo.layout.drivers.GeodesicModel`): a straight line, which may cross an
operator's no-go zone. :class:`Obstacles` lengthens exactly those pairs: each no-go zone
becomes a convex obstacle (its convex hull, widened by a margin; obstacles that overlap
are merged), and a blocked pair's distance becomes the shortest way round the obstacles,
through their corners (a visibility graph: the shortest path among convex polygons runs
from corner to corner). The geodesic distance of such a pair is scaled by the ratio of
the way round to the straight line, so the detour factor still applies on top.

The geometry is a local plane (equirectangular metres about the zones' mean latitude):
exact enough over a campus or a town, where zones and trips are a few kilometres at most.
Everything is vectorised (separating-axis tests of segments against the convex
obstacles in numpy, scipy's Dijkstra between the corners, numpy min-plus products); only
pairs whose bounding box meets an obstacle's are tested at all. A point inside a no-go
zone keeps its straight lines (it has to get out somehow, and the planner must still see
it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
from scipy.sparse.csgraph import dijkstra
from shapely.geometry.base import BaseGeometry

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Metres per degree of latitude (and of longitude at the equator), for the local plane.
_M_PER_DEG = 111_320.0

#: How far a vehicle keeps from a zone's edge when going round it (metres).
DEFAULT_MARGIN_M = 2.0


def _plane(lat0: float, lon: FloatArray, lat: FloatArray) -> FloatArray:
    return np.column_stack([lon * _M_PER_DEG * np.cos(np.radians(lat0)), lat * _M_PER_DEG])


#: Overlaps thinner than this (metres) are touching, not crossing.
_EPS = 1e-6


def _blocked(a: FloatArray, b: FloatArray, polygons: Sequence[FloatArray]) -> BoolArray:
    """Which segments ``a[k] -> b[k]`` pass through the interior of one of the convex
    ``polygons`` (corner arrays): running along an edge or touching a corner does not
    count. Separating axes, in numpy: a segment misses a convex polygon's interior when
    one of the polygon's edge normals or the segment's own normal separates them."""
    out = np.zeros(len(a), dtype=bool)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    for poly in polygons:
        pmin, pmax = poly.min(axis=0), poly.max(axis=0)
        rows = np.flatnonzero(np.all((lo <= pmax) & (hi >= pmin), axis=1))
        if not len(rows):
            continue
        out[rows] |= _crosses(a[rows], b[rows], poly)
    return out


def _crosses(a: FloatArray, b: FloatArray, poly: FloatArray) -> BoolArray:
    """:func:`_blocked` for one convex polygon."""
    edges = np.roll(poly, -1, axis=0) - poly
    normals = np.column_stack([-edges[:, 1], edges[:, 0]])  # (E, 2)
    proj_poly = poly @ normals.T  # (V, E)
    lo_p, hi_p = proj_poly.min(axis=0), proj_poly.max(axis=0)
    pa, pb = a @ normals.T, b @ normals.T  # (M, E)
    scale = np.maximum(np.hypot(normals[:, 0], normals[:, 1]), 1e-12)
    eps = _EPS * scale
    apart = (np.maximum(pa, pb) <= lo_p + eps) | (np.minimum(pa, pb) >= hi_p - eps)
    hit = ~apart.any(axis=1)
    # The segment's own normal: the polygon wholly on one side of the segment's line.
    d = b - a
    n = np.column_stack([-d[:, 1], d[:, 0]])
    side = n @ poly.T - np.einsum("mk,mk->m", n, a)[:, None]
    side = side / np.maximum(np.hypot(n[:, 0], n[:, 1]), 1e-12)[:, None]
    hit &= ~((side.max(axis=1) <= _EPS) | (side.min(axis=1) >= -_EPS))
    out: BoolArray = np.asarray(hit, dtype=bool)
    return out


@dataclass(frozen=True)
class Obstacles:
    """No-go zones as convex obstacles in a local plane, with the ways between their corners."""

    lat0: float
    shape: BaseGeometry  # the obstacles as one (Multi)Polygon, plane metres
    polygons: tuple[FloatArray, ...]  # each obstacle's corners, in order
    boxes: FloatArray  # (K, 4) minx, miny, maxx, maxy per obstacle
    corners: FloatArray  # (H, 2)
    between: FloatArray  # (H, H) shortest distance between corners, round the obstacles

    def around(
        self, lats: Sequence[float], lons: Sequence[float], metres: FloatArray
    ) -> FloatArray:
        """``metres`` (straight-line distances between the points, any scale) with every
        pair whose straight line crosses an obstacle lengthened by the way round."""
        lat = np.asarray(lats, dtype=np.float64)
        lon = np.asarray(lons, dtype=np.float64)
        n = len(lat)
        if n < 2:
            return metres
        pts = _plane(self.lat0, lon, lat)
        inside = np.asarray(shapely.contains(self.shape, shapely.points(pts)), dtype=bool)
        i, j = np.triu_indices(n, k=1)
        near = self._near(pts, i, j) & ~inside[i] & ~inside[j]
        i, j = i[near], j[near]
        hit = _blocked(pts[i], pts[j], self.polygons)
        i, j = i[hit], j[hit]
        if not len(i):
            return metres
        rows = np.unique(np.concatenate([i, j]))
        at = np.full(n, -1, dtype=np.int64)
        at[rows] = np.arange(len(rows))
        # Straight from each of these points to each corner it sees.
        src = np.repeat(pts[rows], len(self.corners), axis=0)
        dst = np.tile(self.corners, (len(rows), 1))
        seen = ~_blocked(src, dst, self.polygons)
        to_corner = np.where(seen, np.hypot(*(dst - src).T), np.inf).reshape(len(rows), -1)
        # Point -> (corner a -> ... -> corner b): min over a, one row per point.
        via = np.min(to_corner[:, :, None] + self.between[None, :, :], axis=1)
        way = np.min(via[at[i]] + to_corner[at[j]], axis=1)
        straight = np.hypot(*(pts[j] - pts[i]).T)
        ratio = np.where(np.isfinite(way), way / np.maximum(straight, 1e-9), 1.0)
        out = np.array(metres, dtype=np.float64, copy=True)
        out[i, j] = out[i, j] * np.maximum(ratio, 1.0)
        out[j, i] = out[j, i] * np.maximum(ratio, 1.0)
        return out

    def _near(self, pts: FloatArray, i: npt.NDArray[np.intp], j: npt.NDArray[np.intp]) -> BoolArray:
        """Pairs whose segment's bounding box meets an obstacle's (the others cannot cross)."""
        lo = np.minimum(pts[i], pts[j])
        hi = np.maximum(pts[i], pts[j])
        near = np.zeros(len(i), dtype=bool)
        for minx, miny, maxx, maxy in self.boxes:
            near |= (
                (lo[:, 0] <= maxx) & (hi[:, 0] >= minx) & (lo[:, 1] <= maxy) & (hi[:, 1] >= miny)
            )
        return near


def obstacles(
    zones: Sequence[BaseGeometry], margin_m: float = DEFAULT_MARGIN_M
) -> Obstacles | None:
    """The obstacles of no-go ``zones`` (shapely geometries in lon/lat degrees), or None
    when there are none."""
    zones = [z for z in zones if not z.is_empty]
    if not zones:
        return None
    lat0 = float(np.mean([z.centroid.y for z in zones]))
    planar = [
        shapely.transform(z, lambda c: _plane(lat0, c[:, 0], c[:, 1])).convex_hull.buffer(
            margin_m, join_style="mitre"
        )
        for z in zones
    ]
    # Merge overlapping obstacles until the convex parts are apart: a corner inside another
    # obstacle would be a way nobody can drive. Each round merges at least two, so it ends.
    parts = planar
    while True:
        merged = shapely.unary_union(parts)
        parts = [g.convex_hull for g in getattr(merged, "geoms", [merged])]
        if not any(a.intersects(b) for k, a in enumerate(parts) for b in parts[k + 1 :]):
            break
    shape = shapely.MultiPolygon(parts) if len(parts) > 1 else parts[0]
    corners = np.vstack([np.asarray(p.exterior.coords)[:-1] for p in parts])
    h = len(corners)
    a, b = np.triu_indices(h, k=1)
    polygons = tuple(np.asarray(p.exterior.coords)[:-1] for p in parts)
    seen = ~_blocked(corners[a], corners[b], polygons)
    length = np.hypot(*(corners[b] - corners[a]).T)
    graph = np.zeros((h, h))
    graph[a[seen], b[seen]] = np.maximum(length[seen], 1e-9)
    between = dijkstra(graph, directed=False)
    boxes = np.asarray([p.bounds for p in parts], dtype=np.float64)
    return Obstacles(lat0, shape, polygons, boxes, corners, between)

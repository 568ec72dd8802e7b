"""Travel times for human drivers, who drive on roads rather than on a LIF graph.

By default: the geodesic distance (WGS84, pyproj Geod) times a detour factor, at a fixed
speed. When a facility provides its roads as GeoJSON LineStrings, a road graph: the line
ends that coincide (within a snap tolerance) become shared nodes, each line one edge (both
ways unless its properties say ``"oneway": true``), and a trip is the geodesic walk-on leg
to the nearest road node, the road, and the leg from the road to the destination.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import Geod
from scipy.spatial import cKDTree

from geo.layout.errors import InvalidElementError
from geo.layout.graph import EdgeTable
from geo.layout.routing import CompiledGraph, Matrices

FloatArray = npt.NDArray[np.float64]

_GEOD = Geod(ellps="WGS84")
#: Metres per degree of latitude, for the snapping grid only.
_M_PER_DEG = 111_320.0


@dataclass(frozen=True, slots=True)
class GeodesicModel:
    """Driving time as geodesic distance x ``detour_factor`` at ``speed_mps``."""

    detour_factor: float = 1.4
    speed_mps: float = 8.0

    def __post_init__(self) -> None:
        if self.detour_factor < 1 or not self.speed_mps > 0:
            raise ValueError("detour_factor must be >= 1 and speed_mps positive")

    def matrices(self, lats: Sequence[float], lons: Sequence[float]) -> Matrices:
        """Durations (s) and distances (m) between every pair of points, in one Geod call."""
        lat = np.asarray(lats, dtype=np.float64)
        lon = np.asarray(lons, dtype=np.float64)
        dist = geodesic_matrix(lat, lon) * self.detour_factor
        ids = tuple(str(i) for i in range(len(lat)))
        return Matrices(ids, dist / self.speed_mps, dist)


def geodesic_matrix(lat: FloatArray, lon: FloatArray) -> FloatArray:
    """Geodesic distances in metres between every pair of (lat, lon) points."""
    n = len(lat)
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    _, _, dist = _GEOD.inv(lon[i.ravel()], lat[i.ravel()], lon[j.ravel()], lat[j.ravel()])
    out: FloatArray = np.asarray(dist, dtype=np.float64).reshape(n, n)
    return out


def _lines(geojson: dict[str, Any]) -> list[tuple[FloatArray, dict[str, Any], str]]:
    """(coordinates as (lon, lat) rows, properties, feature path) of every LineString."""
    out = []
    for i, feat in enumerate(geojson.get("features", [])):
        geom = feat.get("geometry") or {}
        props = feat.get("properties") or {}
        kind = str(geom.get("type"))
        parts = {
            "LineString": [geom.get("coordinates")],
            "MultiLineString": geom.get("coordinates"),
        }.get(kind, [])
        for k, coords in enumerate(parts or []):
            arr = np.asarray(coords, dtype=np.float64)
            if arr.ndim != 2 or arr.shape[0] < 2 or arr.shape[1] < 2:
                raise InvalidElementError(
                    "a road line needs at least two [lon, lat] positions",
                    element="road",
                    element_id=str(props.get("id", i)),
                    json_path=f"$.features[{i}].geometry.coordinates" + (f"[{k}]" if k else ""),
                )
            out.append((arr[:, :2], props, f"$.features[{i}]"))
    return out


class RoadGraph:
    """Drivers' roads from GeoJSON, with durations and distances between any points."""

    def __init__(
        self,
        geojson: dict[str, Any],
        speed_mps: float = 8.0,
        snap_m: float = 1.0,
        detour_factor: float = 1.4,
    ) -> None:
        lines = _lines(geojson)
        if not lines:
            raise InvalidElementError("no LineString features", element="roads")
        ends = np.array([(ln[0], ln[-1]) for ln, _, _ in lines]).reshape(-1, 2)
        lat0 = float(ends[:, 1].mean())
        scale = np.array([_M_PER_DEG * np.cos(np.radians(lat0)), _M_PER_DEG])
        grid = np.round(ends * scale / snap_m).astype(np.int64)
        cells, inverse = np.unique(grid, axis=0, return_inverse=True)
        node_lonlat = np.zeros((len(cells), 2))
        node_lonlat[inverse.ravel()] = ends
        self._nodes = node_lonlat
        self._tree = cKDTree(node_lonlat * scale)
        self._scale = scale
        self._access = GeodesicModel(detour_factor=detour_factor, speed_mps=speed_mps)
        self.graph = CompiledGraph(self._edges(lines, inverse.reshape(-1, 2), speed_mps))

    def _edges(
        self,
        lines: list[tuple[FloatArray, dict[str, Any], str]],
        ends: npt.NDArray[np.int64],
        speed_mps: float,
    ) -> EdgeTable:
        length = np.array([_GEOD.line_length(ln[:, 0], ln[:, 1]) for ln, _, _ in lines])
        speed = np.array(
            [min(float(p.get("maxspeed_mps") or speed_mps), speed_mps) for _, p, _ in lines]
        )
        both = np.array([not p.get("oneway", False) for _, p, _ in lines])
        src = np.concatenate([ends[:, 0], ends[both, 1]])
        dst = np.concatenate([ends[:, 1], ends[both, 0]])
        ids = [str(p.get("id", path)) for _, p, path in lines]
        ids += [f"{i}:reverse" for i, b in zip(ids, both, strict=True) if b]
        geoms = [shapely.LineString(ln) for ln, _, _ in lines]
        backs = [ln for (ln, _, _), b in zip(lines, both, strict=True) if b]
        geoms += [shapely.LineString(ln[::-1]) for ln in backs]
        n = len(self._nodes)
        return EdgeTable(
            node_ids=tuple(str(i) for i in range(n)),
            node_xy=self._nodes,
            edge_ids=tuple(ids),
            src=src.astype(np.int64),
            dst=dst.astype(np.int64),
            length=np.concatenate([length, length[both]]),
            speed=np.concatenate([speed, speed[both]]),
            edge_map=tuple(None for _ in ids),
            geometry=np.array(geoms, dtype=object),
        )

    def nearest_nodes(self, lats: FloatArray, lons: FloatArray) -> npt.NDArray[np.int64]:
        """The road node nearest each point (on a local metric grid)."""
        pts = np.column_stack([lons, lats]) * self._scale
        _, idx = self._tree.query(pts)
        return np.asarray(idx, dtype=np.int64)

    def matrices(self, lats: Sequence[float], lons: Sequence[float]) -> Matrices:
        """Durations and distances between every pair of points: on, along and off the road."""
        lat = np.asarray(lats, dtype=np.float64)
        lon = np.asarray(lons, dtype=np.float64)
        near = self.nearest_nodes(lat, lon)
        road = self.graph.matrices([str(i) for i in near])
        nl = self._nodes[near]
        _, _, leg = _GEOD.inv(lon, lat, nl[:, 0], nl[:, 1])
        leg = np.asarray(leg) * self._access.detour_factor
        dist = leg[:, None] + road.distances + leg[None, :]
        time = (leg[:, None] + leg[None, :]) / self._access.speed_mps + road.durations
        np.fill_diagonal(dist, 0.0)
        np.fill_diagonal(time, 0.0)
        return Matrices(tuple(str(i) for i in range(len(lat))), time, dist)

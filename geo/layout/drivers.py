"""Travel times for human drivers, who drive on roads rather than on a LIF graph.

By default: the geodesic distance (WGS84, pyproj Geod) times a detour factor, at a fixed
speed. When a facility provides its roads as GeoJSON LineStrings, a road graph: line ends,
and vertices two lines share, become nodes once snapped together (within a tolerance);
each line is cut into edges at them (both ways unless its properties say ``"oneway":
true``). A trip is the geodesic leg (times the detour factor) to the nearest road node, the
road, and the leg from the road to the destination.

Zones (WGS84, :class:`~geo.layout.zones.ZoneSet` with geometries in lon/lat degrees): on
the road graph a no-go zone removes every road edge that enters it and a slow zone caps
the speed of those that do (the same rules as the robots' graphs, one compiled graph per
zone set, cached); the leg onto and off the road goes to the nearest road node whose
straight line does not cross a no-go zone (of the eight nearest; the nearest when all
eight do). The geodesic model goes round no-go zones through their corners
(:mod:`geo.layout.detours`).
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import Geod
from scipy.spatial import cKDTree

from geo.layout.detours import Obstacles, obstacles
from geo.layout.errors import InvalidElementError
from geo.layout.graph import EdgeTable
from geo.layout.routing import CompiledGraph, Matrices
from geo.layout.zones import NO_ZONES, ZoneKey, ZoneKind, ZoneSet, apply_zones

FloatArray = npt.NDArray[np.float64]

_GEOD = Geod(ellps="WGS84")
#: Metres per degree of latitude, for the snapping grid only.
_M_PER_DEG = 111_320.0


class DriverModel(Protocol):
    """What the planner asks of a drivers' travel model."""

    def matrices(
        self, lats: Sequence[float], lons: Sequence[float], zones: ZoneSet = NO_ZONES
    ) -> Matrices:
        """Durations (s) and distances (m) between every pair of points, round the no-go
        zones of ``zones`` (lon/lat geometries)."""
        ...


#: Obstacles per zone set (the zones change rarely; the planner asks on every plan).
_OBSTACLES: OrderedDict[ZoneKey, Obstacles | None] = OrderedDict()
_OBSTACLES_LOCK = threading.Lock()


def no_go_obstacles(zones: ZoneSet) -> Obstacles | None:
    """The no-go zones of ``zones`` (lon/lat) as obstacles, built once per zone set."""
    with _OBSTACLES_LOCK:
        if zones.key in _OBSTACLES:
            _OBSTACLES.move_to_end(zones.key)
            return _OBSTACLES[zones.key]
    built = obstacles([z.geometry for z in zones.zones if z.kind is ZoneKind.NO_GO])
    with _OBSTACLES_LOCK:
        _OBSTACLES[zones.key] = built
        while len(_OBSTACLES) > 8:
            _OBSTACLES.popitem(last=False)
    return built


@dataclass(frozen=True, slots=True)
class GeodesicModel:
    """Driving time as geodesic distance x ``detour_factor`` at ``speed_mps``."""

    detour_factor: float = 1.4
    speed_mps: float = 8.0

    def __post_init__(self) -> None:
        if self.detour_factor < 1 or not self.speed_mps > 0:
            raise ValueError("detour_factor must be >= 1 and speed_mps positive")

    def matrices(
        self, lats: Sequence[float], lons: Sequence[float], zones: ZoneSet = NO_ZONES
    ) -> Matrices:
        """Durations (s) and distances (m) between every pair of points, in one Geod call;
        pairs whose straight line crosses a no-go zone of ``zones`` go round it."""
        lat = np.asarray(lats, dtype=np.float64)
        lon = np.asarray(lons, dtype=np.float64)
        dist = geodesic_matrix(lat, lon) * self.detour_factor
        around = no_go_obstacles(zones) if zones.zones else None
        if around is not None:
            dist = around.around(lat.tolist(), lon.tolist(), dist)
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


def _junctions(per_line: list[npt.NDArray[np.int64]], n_cells: int) -> npt.NDArray[np.int64]:
    """Node number of each snapped cell, -1 for plain vertices: a cell is a node when it
    ends a line or lies on two or more lines (a T-junction at another line's vertex)."""
    count = np.zeros(n_cells, dtype=np.int64)
    is_node = np.zeros(n_cells, dtype=bool)
    for cells in per_line:
        count[np.unique(cells)] += 1
        is_node[[cells[0], cells[-1]]] = True
    is_node |= count >= 2
    node_of_cell = np.full(n_cells, -1, dtype=np.int64)
    node_of_cell[is_node] = np.arange(int(is_node.sum()))
    return node_of_cell


def _split(
    lines: list[tuple[FloatArray, dict[str, Any], str]],
    per_line: list[npt.NDArray[np.int64]],
    node_of_cell: npt.NDArray[np.int64],
) -> list[tuple[FloatArray, int, int, dict[str, Any], str]]:
    """Each line cut at its junction vertices: (points, start node, end node, props, id)."""
    out = []
    for (pts, props, path), cells in zip(lines, per_line, strict=True):
        cuts = np.flatnonzero(node_of_cell[cells] >= 0)
        base = str(props.get("id", path))
        for k, (i, j) in enumerate(itertools.pairwise(cuts)):
            a, b = int(node_of_cell[cells[i]]), int(node_of_cell[cells[j]])
            if a != b:
                ident = base if len(cuts) == 2 else f"{base}#{k}"
                out.append((pts[i : j + 1], a, b, props, ident))
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
        points = np.vstack([ln for ln, _, _ in lines])
        lat0 = float(points[:, 1].mean())
        scale = np.array([_M_PER_DEG * np.cos(np.radians(lat0)), _M_PER_DEG])
        grid = np.round(points * scale / snap_m).astype(np.int64)
        cells, inverse = np.unique(grid, axis=0, return_inverse=True)
        inverse = inverse.ravel()
        cell_lonlat = np.zeros((len(cells), 2))
        cell_lonlat[inverse] = points
        bounds = np.cumsum([0] + [len(ln) for ln, _, _ in lines])
        per_line = [inverse[bounds[i] : bounds[i + 1]] for i in range(len(lines))]
        node_of_cell = _junctions(per_line, len(cells))
        self._nodes = cell_lonlat[node_of_cell >= 0]
        self._tree = cKDTree(self._nodes * scale)
        self._scale = scale
        self._access = GeodesicModel(detour_factor=detour_factor, speed_mps=speed_mps)
        segments = _split(lines, per_line, node_of_cell)
        self.graph = CompiledGraph(self._edges(segments, speed_mps))
        #: The graph with each zone set applied (zone key -> graph), a few kept.
        self._zoned: OrderedDict[ZoneKey, CompiledGraph] = OrderedDict()
        self._lock = threading.Lock()

    def graph_for(self, zones: ZoneSet) -> CompiledGraph:
        """The road graph with ``zones`` applied (no-go edges out, slow ones capped)."""
        if not zones.zones:
            return self.graph
        with self._lock:
            found = self._zoned.get(zones.key)
            if found is not None:
                self._zoned.move_to_end(zones.key)
                return found
        compiled = CompiledGraph(apply_zones(self.graph.edges, zones))
        with self._lock:
            self._zoned[zones.key] = compiled
            while len(self._zoned) > 8:
                self._zoned.popitem(last=False)
        return compiled

    def _edges(
        self,
        segments: list[tuple[FloatArray, int, int, dict[str, Any], str]],
        speed_mps: float,
    ) -> EdgeTable:
        rows: list[tuple[str, int, int, float, float, FloatArray]] = []
        for pts, a, b, props, ident in segments:
            length = float(_GEOD.line_length(pts[:, 0], pts[:, 1]))
            speed = min(float(props.get("maxspeed_mps") or speed_mps), speed_mps)
            rows.append((ident, a, b, length, speed, pts))
            if not props.get("oneway", False):
                rows.append((f"{ident}:reverse", b, a, length, speed, pts[::-1]))
        return EdgeTable(
            node_ids=tuple(str(i) for i in range(len(self._nodes))),
            node_xy=self._nodes,
            edge_ids=tuple(r[0] for r in rows),
            src=np.array([r[1] for r in rows], dtype=np.int64),
            dst=np.array([r[2] for r in rows], dtype=np.int64),
            length=np.array([r[3] for r in rows], dtype=np.float64),
            speed=np.array([r[4] for r in rows], dtype=np.float64),
            edge_map=tuple(None for _ in rows),
            geometry=np.array([shapely.LineString(r[5]) for r in rows], dtype=object),
        )

    def nearest_nodes(
        self, lats: FloatArray, lons: FloatArray, zones: ZoneSet = NO_ZONES
    ) -> npt.NDArray[np.int64]:
        """The road node nearest each point (on a local metric grid) whose straight line
        from the point crosses no no-go zone of ``zones`` (the nearest when the eight
        nearest all do)."""
        pts = np.column_stack([lons, lats]) * self._scale
        no_go = [z.geometry for z in zones.zones if z.kind is ZoneKind.NO_GO]
        k = min(8, len(self._nodes)) if no_go else 1
        _, idx = self._tree.query(pts, k=k)
        idx = np.asarray(idx, dtype=np.int64).reshape(len(pts), k)
        if k == 1:
            return idx[:, 0]
        area = shapely.union_all(no_go)
        shapely.prepare(area)
        ends = self._nodes[idx]  # (n, k, 2) lon/lat
        starts = np.repeat(np.column_stack([lons, lats])[:, None, :], k, axis=1)
        legs = shapely.linestrings(np.stack([starts, ends], axis=2).reshape(-1, 2, 2))
        crossing = (shapely.intersects(area, legs) & ~shapely.touches(area, legs)).reshape(-1, k)
        first = np.argmax(~crossing, axis=1)  # the nearest clear one (0 when none is)
        chosen: npt.NDArray[np.int64] = idx[np.arange(len(pts)), first]
        return chosen

    def matrices(
        self, lats: Sequence[float], lons: Sequence[float], zones: ZoneSet = NO_ZONES
    ) -> Matrices:
        """Durations and distances between every pair of points: on, along and off the
        road, with ``zones`` (lon/lat) applied to the road and the legs onto it. A pair
        the zones leave no road between is ``inf``."""
        lat = np.asarray(lats, dtype=np.float64)
        lon = np.asarray(lons, dtype=np.float64)
        near = self.nearest_nodes(lat, lon, zones)
        road = self.graph_for(zones).matrices([str(i) for i in near])
        nl = self._nodes[near]
        _, _, leg = _GEOD.inv(lon, lat, nl[:, 0], nl[:, 1])
        leg = np.asarray(leg) * self._access.detour_factor
        dist = leg[:, None] + road.distances + leg[None, :]
        time = (leg[:, None] + leg[None, :]) / self._access.speed_mps + road.durations
        np.fill_diagonal(dist, 0.0)
        np.fill_diagonal(time, 0.0)
        return Matrices(tuple(str(i) for i in range(len(lat))), time, dist)

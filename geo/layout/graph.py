"""The route graph of one vehicle type: the LIF edges it may use, as flat arrays.

Edge length is the length of the edge's trajectory for that vehicle type when one is
given, else the straight distance between its nodes. Speed is the lower of the edge's
``maxSpeed`` and the vehicle's top speed; zones (geo.layout.zones) may lower it further.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
import shapely

from geo.layout.geometry import polyline_length, sample_trajectory
from geo.layout.model import Edge, LifDocument, LoadState

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ObjArray = npt.NDArray[np.object_]


@dataclass(frozen=True, slots=True)
class VehicleProfile:
    """What the route graph needs to know about a vehicle: its LIF type, top speed, load."""

    vehicle_type_id: str
    max_speed_mps: float
    #: Restrict to edges open in this load state (LIF loadRestriction); None: either.
    load: LoadState | None = None

    def __post_init__(self) -> None:
        if not self.max_speed_mps > 0:
            raise ValueError(f"max_speed_mps must be positive, got {self.max_speed_mps}")


@dataclass(frozen=True)
class EdgeTable:
    """A directed graph as parallel arrays, one row per usable edge."""

    node_ids: tuple[str, ...]
    node_xy: FloatArray
    edge_ids: tuple[str, ...]
    src: IntArray
    dst: IntArray
    length: FloatArray
    speed: FloatArray
    #: The map (LIF mapId) of each edge's start node; zones apply per map.
    edge_map: tuple[str | None, ...]
    #: shapely LineStrings in the map frame, for zone tests.
    geometry: ObjArray

    @property
    def index(self) -> MappingProxyType[str, int]:
        """Node id -> row in ``node_ids``."""
        return MappingProxyType({n: i for i, n in enumerate(self.node_ids)})

    def select(self, keep: npt.NDArray[np.bool_]) -> EdgeTable:
        """The same graph with only the edges where ``keep`` is true."""
        rows = np.flatnonzero(keep)
        return replace(
            self,
            edge_ids=tuple(self.edge_ids[i] for i in rows),
            src=self.src[rows],
            dst=self.dst[rows],
            length=self.length[rows],
            speed=self.speed[rows],
            edge_map=tuple(self.edge_map[i] for i in rows),
            geometry=self.geometry[rows],
        )

    def with_speed(self, speed: FloatArray) -> EdgeTable:
        """The same graph with other edge speeds."""
        return replace(self, speed=speed)


def _trajectory_shapes(edges: list[Edge], vehicle_type_id: str) -> dict[int, FloatArray]:
    """Sampled trajectories of the edges that have one for this vehicle type, by row."""
    out: dict[int, FloatArray] = {}
    for i, e in enumerate(edges):
        props = e.for_type(vehicle_type_id)
        if props is not None and props.trajectory is not None:
            out[i] = sample_trajectory(props.trajectory)
    return out


def _geometry(
    xy: FloatArray, src: IntArray, dst: IntArray, curves: dict[int, FloatArray]
) -> tuple[FloatArray, ObjArray]:
    """Lengths and LineStrings of all edges: straight ones in one vectorised call each."""
    a, b = xy[src], xy[dst]
    length = np.hypot(*(b - a).T) if len(src) else np.zeros(0)
    lines = shapely.linestrings(np.stack([a, b], axis=1)) if len(src) else np.zeros(0, object)
    for i, pts in curves.items():
        length[i] = polyline_length(pts)
        lines[i] = shapely.LineString(pts)
    return np.asarray(length, dtype=np.float64), np.asarray(lines, dtype=object)


def _usable(doc: LifDocument, edge: Edge, profile: VehicleProfile) -> bool:
    props = edge.for_type(profile.vehicle_type_id)
    if props is None:
        return False
    if props.load_restriction is not None and not props.load_restriction.allows(profile.load):
        return False
    start, end = doc.nodes.get(edge.start_node_id), doc.nodes.get(edge.end_node_id)
    return (
        start is not None
        and end is not None
        and start.admits(profile.vehicle_type_id)
        and end.admits(profile.vehicle_type_id)
    )


def build_edge_table(doc: LifDocument, profile: VehicleProfile) -> EdgeTable:
    """The graph a vehicle of ``profile`` may drive on, before zones."""
    vt = profile.vehicle_type_id
    nodes = [n for lay in doc.layouts for n in lay.nodes if n.admits(vt)]
    index = {n.node_id: i for i, n in enumerate(nodes)}
    edges = [e for lay in doc.layouts for e in lay.edges if _usable(doc, e, profile)]
    limits = [
        p.max_speed if (p := e.for_type(vt)) is not None and p.max_speed else np.inf for e in edges
    ]
    xy = np.array([(n.x, n.y) for n in nodes], dtype=np.float64).reshape(-1, 2)
    src = np.array([index[e.start_node_id] for e in edges], dtype=np.int64)
    dst = np.array([index[e.end_node_id] for e in edges], dtype=np.int64)
    length, geometry = _geometry(xy, src, dst, _trajectory_shapes(edges, vt))
    return EdgeTable(
        node_ids=tuple(n.node_id for n in nodes),
        node_xy=xy,
        edge_ids=tuple(e.edge_id for e in edges),
        src=src,
        dst=dst,
        length=length,
        speed=np.minimum(np.array(limits, dtype=np.float64), profile.max_speed_mps),
        edge_map=tuple(doc.nodes[e.start_node_id].map_id for e in edges),
        geometry=geometry,
    )

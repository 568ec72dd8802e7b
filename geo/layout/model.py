"""A LIF file inside fleetd: frozen dataclasses, one per LIF element fleetd reads.

LIF node ids are the VDA 5050 node ids used in orders. Edges are directed (start to end):
a two-way aisle is two edges, a one-way corridor one. Per-vehicle-type properties stay
keyed by ``vehicleTypeId``; a node or edge without properties for a type is closed to it
(LIF sections 8.3.4 and 8.3.8).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

#: The VDA 5050 action that marks a charging station's interaction node (LIF 8.3.13.1).
CHARGING_ACTION = "startCharging"

LoadState = Literal["loaded", "unloaded"]


@dataclass(frozen=True, slots=True)
class Action:
    """An action a master control system may put into an order on a node or edge."""

    action_type: str
    blocking_type: str
    requirement_type: str | None = None
    description: str | None = None
    parameters: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class NodeTypeProperties:
    """What one vehicle type may do at a node."""

    vehicle_type_id: str
    theta: float | None = None
    actions: tuple[Action, ...] = ()


@dataclass(frozen=True, slots=True)
class Node:
    node_id: str
    layout_id: str
    x: float
    y: float
    map_id: str | None = None
    name: str | None = None
    description: str | None = None
    properties: tuple[NodeTypeProperties, ...] = ()

    def admits(self, vehicle_type_id: str) -> bool:
        """Whether vehicles of this type may use the node."""
        return any(p.vehicle_type_id == vehicle_type_id for p in self.properties)

    def action_types(self) -> frozenset[str]:
        """Every action type offered on this node, for any vehicle type."""
        return frozenset(a.action_type for p in self.properties for a in p.actions)


@dataclass(frozen=True, slots=True)
class LoadRestriction:
    unloaded: bool
    loaded: bool
    load_set_names: tuple[str, ...] = ()

    def allows(self, load: LoadState | None) -> bool:
        """Whether a vehicle in ``load`` state (None: either) may use the edge."""
        if load is None:
            return self.loaded or self.unloaded
        return self.loaded if load == "loaded" else self.unloaded


@dataclass(frozen=True, slots=True)
class ControlPoint:
    x: float
    y: float
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Trajectory:
    """A NURBS curve from the edge's start node to its end node."""

    degree: int
    knot_vector: tuple[float, ...]
    control_points: tuple[ControlPoint, ...]


@dataclass(frozen=True, slots=True)
class EdgeTypeProperties:
    """How one vehicle type may travel an edge."""

    vehicle_type_id: str
    rotation_allowed: bool
    max_speed: float | None = None
    max_height: float | None = None
    min_height: float | None = None
    load_restriction: LoadRestriction | None = None
    trajectory: Trajectory | None = None
    vehicle_orientation: float | None = None
    orientation_type: str = "TANGENTIAL"
    actions: tuple[Action, ...] = ()


@dataclass(frozen=True, slots=True)
class Edge:
    edge_id: str
    layout_id: str
    start_node_id: str
    end_node_id: str
    name: str | None = None
    description: str | None = None
    properties: tuple[EdgeTypeProperties, ...] = ()

    def for_type(self, vehicle_type_id: str) -> EdgeTypeProperties | None:
        """This edge's properties for a vehicle type, or None when it is closed to it."""
        for p in self.properties:
            if p.vehicle_type_id == vehicle_type_id:
                return p
        return None


@dataclass(frozen=True, slots=True)
class Station:
    """A place where vehicles interact: a pick-up or drop-off point, a charger, a door."""

    station_id: str
    layout_id: str
    interaction_node_ids: tuple[str, ...]
    name: str | None = None
    description: str | None = None
    height: float = 0.0
    position: tuple[float, float, float | None] | None = None
    #: True when an interaction node offers ``startCharging`` (LIF 8.3.13.1).
    charging: bool = False


@dataclass(frozen=True, slots=True)
class Layout:
    """One LIF layout: a plane (a level, or part of one) of the facility."""

    layout_id: str
    version: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    stations: tuple[Station, ...] = ()
    name: str | None = None
    level_id: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class MetaInformation:
    project_identification: str
    creator: str
    export_timestamp: str
    lif_version: str


@dataclass(frozen=True)
class LifDocument:
    """A whole LIF file: its layouts, with the ids indexed across all of them.

    Node, edge and station ids are unique across the file's layouts (LIF 8.2), and an
    edge may end in another layout (a lift, a ramp), so lookups span the whole file.
    """

    meta: MetaInformation
    layouts: tuple[Layout, ...]
    source: str = ""
    #: Digest of the parsed content, so an edited file without a bumped layoutVersion
    #: still counts as a new version for caches.
    digest: str = ""
    nodes: MappingProxyType[str, Node] = field(init=False, repr=False, compare=False)
    edges: MappingProxyType[str, Edge] = field(init=False, repr=False, compare=False)
    stations: MappingProxyType[str, Station] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        nodes = {n.node_id: n for lay in self.layouts for n in lay.nodes}
        edges = {e.edge_id: e for lay in self.layouts for e in lay.edges}
        stations = {s.station_id: s for lay in self.layouts for s in lay.stations}
        object.__setattr__(self, "nodes", MappingProxyType(nodes))
        object.__setattr__(self, "edges", MappingProxyType(edges))
        object.__setattr__(self, "stations", MappingProxyType(stations))

    @property
    def version(self) -> tuple[str, ...]:
        """Cache key of this layout version: every (layoutId, layoutVersion) plus the digest."""
        parts = [f"{lay.layout_id}@{lay.version}" for lay in self.layouts]
        return (*parts, self.digest)

    def vehicle_types(self) -> frozenset[str]:
        """Every vehicleTypeId named on any edge."""
        return frozenset(
            p.vehicle_type_id for lay in self.layouts for e in lay.edges for p in e.properties
        )

    def charging_stations(self) -> tuple[Station, ...]:
        """Stations whose interaction nodes offer charging."""
        return tuple(s for lay in self.layouts for s in lay.stations if s.charging)


def content_digest(text: str | bytes) -> str:
    """A short stable digest of a file's bytes (the layout cache's version component)."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()[:16]

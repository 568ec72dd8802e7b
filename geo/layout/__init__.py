"""Facility layouts: VDA LIF 1.0 files, route graphs per vehicle type, travel matrices.

The pure core of what a facility looks like to a planner. It imports nothing from
``dispatcher``: the edges (dispatcher.facility_layouts, the CLI) turn configuration into the
plain values used here.
"""

from geo.layout.cache import CacheInfo, RouteGraphs
from geo.layout.errors import (
    DanglingReferenceError,
    DuplicateIdError,
    InvalidElementError,
    LayoutError,
    LayoutSchemaError,
    LayoutSyntaxError,
    OneWayTrapError,
    UnknownNodeError,
    UnreachableStationError,
)
from geo.layout.graph import EdgeTable, VehicleProfile, build_edge_table
from geo.layout.loader import load_lif, parse_lif
from geo.layout.model import Edge, Layout, LifDocument, Node, Station
from geo.layout.routing import CompiledGraph, Matrices, Route
from geo.layout.zones import NO_ZONES, Zone, ZoneKind, ZoneSet, apply_zones

__all__ = [
    "NO_ZONES",
    "CacheInfo",
    "CompiledGraph",
    "DanglingReferenceError",
    "DuplicateIdError",
    "Edge",
    "EdgeTable",
    "InvalidElementError",
    "Layout",
    "LayoutError",
    "LayoutSchemaError",
    "LayoutSyntaxError",
    "LifDocument",
    "Matrices",
    "Node",
    "OneWayTrapError",
    "Route",
    "RouteGraphs",
    "Station",
    "UnknownNodeError",
    "UnreachableStationError",
    "VehicleProfile",
    "Zone",
    "ZoneKind",
    "ZoneSet",
    "apply_zones",
    "build_edge_table",
    "load_lif",
    "parse_lif",
]

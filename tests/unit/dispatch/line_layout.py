"""Test support: a short straight corridor, so a robot drives a whole leg in seconds."""

from __future__ import annotations

import itertools
from typing import Any

from dispatcher.dispatch.robot_orders import OrderLayout
from geo.layout.cache import RouteGraphs
from geo.layout.graph import VehicleProfile
from geo.layout.loader import parse_lif
from tests.unit.geo.layout.builders import VT, document, node, text, two_way

#: Nodes n0..n4, one metre apart along x, two-way edges at most 2 m/s; a charger at n4.
LINE = [f"n{i}" for i in range(5)]
MAP_ID = "campus"


def line_lif(map_id: str = MAP_ID) -> dict[str, Any]:
    """The corridor as a LIF document (JSON)."""
    nodes = [node(n, float(i), 0.0, charger=(i == 4)) for i, n in enumerate(LINE)]
    for n in nodes:
        n["mapId"] = map_id
    edges = [e for a, b in itertools.pairwise(LINE) for e in two_way(a, b, speed=2.0)]
    return document(nodes, edges)


def line_layout() -> OrderLayout:
    """The corridor as the order builder sees it."""
    doc = parse_lif(text(line_lif()))
    return OrderLayout(doc, VT, RouteGraphs().graph(doc, VehicleProfile(VT, 2.0)))

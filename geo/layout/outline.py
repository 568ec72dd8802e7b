"""A facility's route graph reduced to what a small map needs: node points in WGS84 and
the undirected edges between them (``GET /v1/facilities/{key}/layout``).

Pure: the caller passes a function from (map id, x, y) to (lat, lon), or None when the
node's map has no frame (such nodes are left out, with their edges).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from geo.layout.model import LifDocument

#: (map_id, x, y) -> (lat, lon), or None for a map without a frame.
ToWgs84 = Callable[[str | None, float, float], tuple[float, float] | None]


@dataclass(frozen=True, slots=True)
class Outline:
    #: (node id, lat, lon), in file order.
    nodes: tuple[tuple[str, float, float], ...]
    #: Index pairs into ``nodes``, each undirected edge once (smaller index first).
    edges: tuple[tuple[int, int], ...]


def outline(documents: Iterable[LifDocument], to_wgs84: ToWgs84) -> Outline:
    """Every placeable node and every edge between two of them, once."""
    nodes: list[tuple[str, float, float]] = []
    index: dict[str, int] = {}
    docs = tuple(documents)
    for doc in docs:
        for node in doc.nodes.values():
            if node.node_id in index:
                continue
            point = to_wgs84(node.map_id, node.x, node.y)
            if point is None:
                continue
            index[node.node_id] = len(nodes)
            nodes.append((node.node_id, round(point[0], 7), round(point[1], 7)))
    pairs: set[tuple[int, int]] = set()
    for doc in docs:
        for edge in doc.edges.values():
            a, b = index.get(edge.start_node_id), index.get(edge.end_node_id)
            if a is None or b is None or a == b:
                continue
            pairs.add((min(a, b), max(a, b)))
    return Outline(tuple(nodes), tuple(sorted(pairs)))

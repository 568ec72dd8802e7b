"""Graph sanity of a LIF document, part two: can every station be reached and left?

Per vehicle type, on the edges that type may use: the strongly connected component
holding the most station nodes is the facility's main network. A station none of whose
interaction nodes (open to that type) lies in it is refused: as a one-way trap when the
main network leads into it but nothing leads back, as unreachable otherwise.
A vehicle type with no station is not checked: it has nowhere to be sent.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components

from geo.layout.errors import LayoutError, OneWayTrapError, UnreachableStationError
from geo.layout.graph import EdgeTable, VehicleProfile, build_edge_table
from geo.layout.model import LifDocument, Station


def _adjacency(edges: EdgeTable) -> csr_matrix:
    n = len(edges.node_ids)
    ones = np.ones(len(edges.src), dtype=np.int8)
    return csr_matrix((ones, (edges.src, edges.dst)), shape=(n, n))


def _main_component(labels: np.ndarray, station_nodes: list[int]) -> int:
    counts = np.bincount(labels[station_nodes], minlength=labels.max() + 1)
    sizes = np.bincount(labels)
    # Most station nodes, ties broken by component size, then by label for determinism.
    return int(max(range(len(counts)), key=lambda c: (counts[c], sizes[c], -c)))


def _type_problems(
    doc: LifDocument, vehicle_type: str, paths: dict[tuple[str, str], str], source: str
) -> list[LayoutError]:
    # Load restrictions are ignored here: an edge open when loaded or when empty counts.
    edges = build_edge_table(doc, VehicleProfile(vehicle_type, 1.0))
    index = edges.index
    stations: list[tuple[Station, list[int]]] = []
    for lay in doc.layouts:
        for st in lay.stations:
            nodes = [index[n] for n in st.interaction_node_ids if n in index]
            if nodes:
                stations.append((st, nodes))
    if len(stations) < 2 or not len(edges.node_ids):
        return []
    graph = _adjacency(edges)
    _, labels = connected_components(graph, directed=True, connection="strong")
    main = _main_component(labels, [n for _, ns in stations for n in ns])
    seed = int(np.flatnonzero(labels == main)[0])
    from_main = set(breadth_first_order(graph, seed, directed=True, return_predecessors=False))
    problems: list[LayoutError] = []
    for st, nodes in stations:
        if any(labels[n] == main for n in nodes):
            continue
        entered = any(n in from_main for n in nodes)
        cls = OneWayTrapError if entered else UnreachableStationError
        reason = (
            f"vehicle type {vehicle_type!r} can drive into this station but not back out"
            if entered
            else f"vehicle type {vehicle_type!r} cannot reach this station from the others"
        )
        problems.append(
            cls(
                reason,
                source=source,
                element="station",
                element_id=st.station_id,
                layout_id=st.layout_id,
                json_path=paths.get(("station", st.station_id), "$"),
            )
        )
    return problems


def reachability_problems(
    doc: LifDocument, paths: dict[tuple[str, str], str], source: str = ""
) -> list[LayoutError]:
    """Stations some vehicle type cannot reach, or cannot leave, on the layout's edges."""
    problems: list[LayoutError] = []
    for vt in sorted(doc.vehicle_types()):
        problems += _type_problems(doc, vt, paths, source)
    return problems

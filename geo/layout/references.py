"""Graph sanity of a LIF document, part one: ids and references (on the raw JSON).

Checked on the raw document rather than on the dataclasses because duplicates vanish once
elements are indexed by id, and because the JSON path of each element is known here.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from geo.layout.errors import (
    DanglingReferenceError,
    DuplicateIdError,
    InvalidElementError,
    LayoutError,
)

Json = dict[str, Any]

#: (array in a layout, id key, element kind)
_KINDS = (
    ("nodes", "nodeId", "node"),
    ("edges", "edgeId", "edge"),
    ("stations", "stationId", "station"),
)


def element_paths(document: Json) -> dict[tuple[str, str], str]:
    """JSON path of every element, keyed by (kind, id); the first wins for duplicates."""
    paths: dict[tuple[str, str], str] = {}
    for li, lay in enumerate(document["layouts"]):
        paths.setdefault(("layout", lay["layoutId"]), f"$.layouts[{li}]")
        for array, key, kind in _KINDS:
            for i, item in enumerate(lay.get(array, [])):
                paths.setdefault((kind, item[key]), f"$.layouts[{li}].{array}[{i}]")
    return paths


def _duplicates(document: Json, source: str) -> Iterator[LayoutError]:
    seen: dict[tuple[str, str], str] = {}
    for li, lay in enumerate(document["layouts"]):
        items = [("layout", lay["layoutId"], f"$.layouts[{li}]", None)]
        for array, key, kind in _KINDS:
            items += [
                (kind, item[key], f"$.layouts[{li}].{array}[{i}]", lay["layoutId"])
                for i, item in enumerate(lay.get(array, []))
            ]
        for kind, ident, path, layout_id in items:
            first = seen.setdefault((kind, ident), path)
            if first != path:
                yield DuplicateIdError(
                    f"duplicate {kind} id, first defined at {first}",
                    source=source,
                    element=kind,
                    element_id=ident,
                    layout_id=layout_id if layout_id is not None else ident,
                    json_path=path,
                )


def _type_duplicates(
    items: list[Json], kind: str, ident: str, path: str, layout_id: str, source: str
) -> Iterator[LayoutError]:
    types = [p["vehicleTypeId"] for p in items]
    for vt in sorted({t for t in types if types.count(t) > 1}):
        yield DuplicateIdError(
            f"vehicleTypeId {vt!r} has more than one set of properties",
            source=source,
            element=kind,
            element_id=ident,
            layout_id=layout_id,
            json_path=path,
        )


def _node_problems(lay: Json, li: int, source: str) -> Iterator[LayoutError]:
    lid = lay["layoutId"]
    for i, node in enumerate(lay["nodes"]):
        path = f"$.layouts[{li}].nodes[{i}].vehicleTypeNodeProperties"
        props = node["vehicleTypeNodeProperties"]
        if not props:
            yield InvalidElementError(
                "vehicleTypeNodeProperties must not be empty (LIF 8.3.4)",
                source=source,
                element="node",
                element_id=node["nodeId"],
                layout_id=lid,
                json_path=path,
            )
        yield from _type_duplicates(props, "node", node["nodeId"], path, lid, source)


def _edge_problems(lay: Json, li: int, all_nodes: set[str], source: str) -> Iterator[LayoutError]:
    lid = lay["layoutId"]
    own = {n["nodeId"] for n in lay["nodes"]}
    for i, edge in enumerate(lay["edges"]):
        path = f"$.layouts[{li}].edges[{i}]"
        eid = edge["edgeId"]
        # The start node must lie in the edge's own layout; the end node may be in another.
        if edge["startNodeId"] not in own:
            yield DanglingReferenceError(
                f"startNodeId {edge['startNodeId']!r} is not a node of this layout",
                source=source,
                element="edge",
                element_id=eid,
                layout_id=lid,
                json_path=f"{path}.startNodeId",
            )
        if edge["endNodeId"] not in all_nodes:
            yield DanglingReferenceError(
                f"endNodeId {edge['endNodeId']!r} is not a node of any layout",
                source=source,
                element="edge",
                element_id=eid,
                layout_id=lid,
                json_path=f"{path}.endNodeId",
            )
        props = edge["vehicleTypeEdgeProperties"]
        if not props:
            yield InvalidElementError(
                "vehicleTypeEdgeProperties must not be empty (LIF 8.3.8)",
                source=source,
                element="edge",
                element_id=eid,
                layout_id=lid,
                json_path=f"{path}.vehicleTypeEdgeProperties",
            )
        yield from _type_duplicates(
            props, "edge", eid, f"{path}.vehicleTypeEdgeProperties", lid, source
        )
        for pi, p in enumerate(props):
            traj = p.get("trajectory")
            if traj is not None:
                reason = trajectory_problem(traj)
                if reason is not None:
                    yield InvalidElementError(
                        reason,
                        source=source,
                        element="edge",
                        element_id=eid,
                        layout_id=lid,
                        json_path=f"{path}.vehicleTypeEdgeProperties[{pi}].trajectory",
                    )


def trajectory_problem(traj: Json) -> str | None:
    """Why a NURBS trajectory cannot be evaluated, or None when it can."""
    degree = int(traj.get("degree", 1))
    n_points = len(traj["controlPoints"])
    knots = traj["knotVector"]
    if n_points < degree + 1:
        return f"a degree-{degree} trajectory needs at least {degree + 1} control points"
    if len(knots) != n_points + degree + 1:
        return (
            f"knotVector has {len(knots)} values; {n_points} control points of degree "
            f"{degree} need {n_points + degree + 1}"
        )
    if any(b < a for a, b in itertools.pairwise(knots)):
        return "knotVector must not decrease"
    return None


def _station_problems(
    lay: Json, li: int, all_nodes: set[str], source: str
) -> Iterator[LayoutError]:
    lid = lay["layoutId"]
    for i, st in enumerate(lay.get("stations", [])):
        path = f"$.layouts[{li}].stations[{i}].interactionNodeIds"
        if not st["interactionNodeIds"]:
            yield InvalidElementError(
                "interactionNodeIds must name at least one node (LIF 8.3.13)",
                source=source,
                element="station",
                element_id=st["stationId"],
                layout_id=lid,
                json_path=path,
            )
        for j, nid in enumerate(st["interactionNodeIds"]):
            if nid not in all_nodes:
                yield DanglingReferenceError(
                    f"interaction node {nid!r} is not a node of any layout",
                    source=source,
                    element="station",
                    element_id=st["stationId"],
                    layout_id=lid,
                    json_path=f"{path}[{j}]",
                )


def reference_problems(document: Json, source: str = "") -> list[LayoutError]:
    """Duplicate ids, dangling edges and station nodes, malformed elements; in file order."""
    all_nodes = {n["nodeId"] for lay in document["layouts"] for n in lay["nodes"]}
    problems = list(_duplicates(document, source))
    for li, lay in enumerate(document["layouts"]):
        problems += _node_problems(lay, li, source)
        problems += _edge_problems(lay, li, all_nodes, source)
        problems += _station_problems(lay, li, all_nodes, source)
    return problems

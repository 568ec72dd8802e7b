"""How the virtual robot takes an order or an order update (VDA 5050 2.0 §6.6, Figure 8).

Plain JSON in, plain values out, written from the standard rather than from fleetd's
models (the virtual robot stands in for someone else's robot). :func:`take_order` either
returns the nodes and edges the robot is to follow from now on, or raises
:class:`OrderRefused` with the error type the standard names for the case:

- a new orderId while the robot still has nodes to go: ``orderError``;
- a new order whose first node is neither the robot's last node nor within the node's
  allowed deviation of where the robot stands: ``noRouteError``;
- an update (same orderId, higher orderUpdateId) that does not start at the last base
  node with its sequenceId (the stitching node): ``orderUpdateError``;
- an update with a lower orderUpdateId: ``orderUpdateError``; the same one: ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

#: Within this distance of a new order's first node the robot takes it as "here" when the
#: node gives no allowedDeviationXY.
DEFAULT_DEVIATION_M = 0.5


class OrderRefused(Exception):
    """The robot will not take the order; ``error_type`` goes into its state's errors."""

    def __init__(self, error_type: str, description: str) -> None:
        super().__init__(description)
        self.error_type = error_type
        self.description = description


class SameOrder(Exception):
    """The order is one the robot already has (a re-send): ignore it."""


@dataclass
class SimNode:
    node_id: str
    sequence_id: int
    released: bool
    x: float | None
    y: float | None
    theta: float | None
    deviation_xy: float | None
    actions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SimEdge:
    edge_id: str
    sequence_id: int
    released: bool
    start_node_id: str
    end_node_id: str
    max_speed: float | None
    actions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Where:
    """What the robot knows of itself when an order arrives."""

    order_id: str
    order_update_id: int
    last_node_id: str
    last_node_seq: int
    x: float
    y: float
    nodes: list[SimNode]
    edges: list[SimEdge]


def _nodes(msg: dict[str, Any]) -> list[SimNode]:
    out = []
    for n in sorted(msg.get("nodes", []), key=lambda n: int(n.get("sequenceId", 0))):
        pos = n.get("nodePosition") or {}
        dev = pos.get("allowedDeviationXY", pos.get("allowedDeviationXy"))
        out.append(
            SimNode(
                str(n["nodeId"]),
                int(n["sequenceId"]),
                bool(n.get("released", True)),
                pos.get("x"),
                pos.get("y"),
                pos.get("theta"),
                float(dev) if dev is not None else None,
                list(n.get("actions", [])),
            )
        )
    return out


def _edges(msg: dict[str, Any]) -> list[SimEdge]:
    return [
        SimEdge(
            str(e["edgeId"]),
            int(e["sequenceId"]),
            bool(e.get("released", True)),
            str(e["startNodeId"]),
            str(e["endNodeId"]),
            float(e["maxSpeed"]) if e.get("maxSpeed") is not None else None,
            list(e.get("actions", [])),
        )
        for e in sorted(msg.get("edges", []), key=lambda e: int(e.get("sequenceId", 0)))
    ]


def _is_here(node: SimNode, where: Where) -> bool:
    if node.node_id == where.last_node_id:
        return True
    if node.x is None or node.y is None:
        return False
    reach = node.deviation_xy if node.deviation_xy else DEFAULT_DEVIATION_M
    return math.hypot(node.x - where.x, node.y - where.y) <= reach


def _new_order(
    where: Where, nodes: list[SimNode], edges: list[SimEdge]
) -> tuple[list[SimNode], list[SimEdge]]:
    # Waiting at the end of the base for an update (only horizon left) counts as done.
    if any(n.released for n in where.nodes):
        raise OrderRefused("orderError", f"still running order {where.order_id}")
    if not nodes:
        raise OrderRefused("validationError", "an order needs at least one node")
    if not _is_here(nodes[0], where):
        raise OrderRefused("noRouteError", f"first node {nodes[0].node_id} is not here")
    return nodes, edges


def _update(
    where: Where, nodes: list[SimNode], edges: list[SimEdge]
) -> tuple[list[SimNode], list[SimEdge]]:
    # The last base node: the last released node still to go, else the node reached last.
    base = [n for n in where.nodes if n.released]
    stitch = (
        (base[-1].node_id, base[-1].sequence_id)
        if base
        else (
            where.last_node_id,
            where.last_node_seq,
        )
    )
    if not nodes or (nodes[0].node_id, nodes[0].sequence_id) != stitch:
        raise OrderRefused("orderUpdateError", f"update does not start at {stitch[0]}/{stitch[1]}")
    # Keep what is left of the base; replace the horizon with the update.
    kept = [n for n in where.nodes if n.released and n.sequence_id < stitch[1]]
    kept_edges = [e for e in where.edges if e.released and e.sequence_id < stitch[1]]
    fresh = nodes if base else nodes[1:]  # the stitching node is still ahead, or passed
    return kept + fresh, kept_edges + edges


def take_order(where: Where, msg: dict[str, Any]) -> tuple[list[SimNode], list[SimEdge]]:
    """The nodes and edges to follow after ``msg``; raises OrderRefused or SameOrder."""
    order_id = str(msg.get("orderId", ""))
    update_id = int(msg.get("orderUpdateId", 0))
    nodes, edges = _nodes(msg), _edges(msg)
    if order_id != where.order_id or not where.order_id:
        return _new_order(where, nodes, edges)
    if update_id == where.order_update_id:
        raise SameOrder
    if update_id < where.order_update_id:
        raise OrderRefused("orderUpdateError", f"orderUpdateId {update_id} is outdated")
    return _update(where, nodes, edges)

"""VDA 5050 orders from layout routes (pure: no I/O).

A robot leg becomes one :class:`~protocols.vda5050.models.Order`: the fastest path on the
facility's LIF route graph from the node the robot stands on, through each stop, with a
position on every node and the layout's edge properties on every edge. Stops carry their
action (``pick``, ``drop``, ``startCharging``; blocking HARD). The first
``released_stops`` stops and the path to them are the *base* (released); the rest is the
*horizon*, sent unreleased so the robot can plan ahead (VDA 5050 2.0 §6.6).

An order update (:func:`build_update`) keeps the orderId, raises the orderUpdateId and
starts at the previous base's last node (the stitching node), resent unchanged with its
sequenceId, as §6.6.2 requires. Sequence ids run over nodes and edges: nodes even, edges
odd, never reassigned. Every order is checked by :mod:`dispatcher.dispatch.order_rules`
before it is returned: the builder never hands out an order the rules refuse.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from dispatcher.dispatch.order_rules import OrderRuleError, check_order, check_update
from geo.layout.errors import UnknownNodeError
from geo.layout.model import Edge as LifEdge
from geo.layout.model import LifDocument
from geo.layout.model import Node as LifNode
from geo.layout.routing import Route
from protocols.vda5050.base import BlockingType
from protocols.vda5050.models import Action, ActionParameter, Edge, Node, NodePosition, Order

#: The schema's bound for allowedDeviationTheta; "any heading" where the layout gives none.
ANY_HEADING = 3.141592654
VDA_VERSION = "2.0.0"


class RouteFinder(Protocol):
    """The fastest path between two nodes of one vehicle type's graph (a CompiledGraph)."""

    def route(self, start: str, end: str) -> Route | None: ...


class NoRouteError(OrderRuleError):
    """The layout has no path for this vehicle type between two nodes of the order."""


@dataclass(frozen=True, slots=True)
class OrderStop:
    """One stop of an order: a layout node and the action to run there (None: pass by)."""

    node_id: str
    action_type: str | None
    action_id: str | None = None
    #: Action parameters as (key, value) pairs, e.g. the station id of a charger.
    parameters: tuple[tuple[str, str | int | float | bool], ...] = ()


@dataclass(frozen=True, slots=True)
class OrderSettings:
    """How exactly the robot must hit each node, and the map id of nodes without one."""

    default_map_id: str
    deviation_xy_m: float = 0.5
    deviation_theta_rad: float = 0.35


@dataclass(frozen=True, slots=True)
class OrderLayout:
    """What the builder reads of a facility: its LIF document, one vehicle type's routes."""

    doc: LifDocument
    vehicle_type_id: str
    routes: RouteFinder


@dataclass(frozen=True, slots=True)
class _Span:
    """Where a new stretch of order starts: node, its sequence id, and the order's ids."""

    order_id: str
    order_update_id: int
    first_sequence_id: int


def _path(
    layout: OrderLayout, start: str, stops: Sequence[OrderStop]
) -> tuple[list[str], list[str], list[int]]:
    """Node ids, edge ids and, per stop, the index in the node list where it is served."""
    nodes, edges, stop_at = [start], list[str](), list[int]()
    for stop in stops:
        try:
            route = layout.routes.route(nodes[-1], stop.node_id)
        except UnknownNodeError as exc:
            raise NoRouteError(f"{stop.node_id!r} is not a node this robot may use") from exc
        if route is None:
            raise NoRouteError(f"no route from {nodes[-1]!r} to {stop.node_id!r}")
        nodes.extend(route.node_ids[1:])
        edges.extend(route.edge_ids)
        stop_at.append(len(nodes) - 1)
    return nodes, edges, stop_at


def _heading(a: LifNode, b: LifNode) -> float | None:
    if a.x == b.x and a.y == b.y:
        return None
    return math.atan2(b.y - a.y, b.x - a.x)


def _position(
    layout: OrderLayout, cfg: OrderSettings, node: LifNode, travel: float | None
) -> NodePosition:
    """The node's position; theta from the layout, else the heading of travel, loosely."""
    props = next((p for p in node.properties if p.vehicle_type_id == layout.vehicle_type_id), None)
    theta = props.theta if props is not None else None
    deviation = cfg.deviation_theta_rad
    if theta is None:
        theta, deviation = (travel if travel is not None else 0.0), ANY_HEADING
    return NodePosition(
        x=node.x,
        y=node.y,
        theta=theta,
        map_id=node.map_id or cfg.default_map_id,
        allowed_deviation_xy=cfg.deviation_xy_m,
        allowed_deviation_theta=deviation,
    )


def _action(stop: OrderStop, span: _Span, seq: int) -> Action:
    assert stop.action_type is not None
    # The update id is part of the default id: a horizon re-planned by an update may put
    # another action at the same sequenceId, and actionIds are never reused.
    default_id = f"{span.order_id}/{span.order_update_id}/{seq}/{stop.action_type}"
    return Action(
        action_type=stop.action_type,
        action_id=stop.action_id or default_id,
        blocking_type=BlockingType.HARD,
        action_parameters=[ActionParameter(key=k, value=v) for k, v in stop.parameters] or None,
    )


def _edge(layout: OrderLayout, edge: LifEdge, seq: int, released: bool) -> Edge:
    props = edge.for_type(layout.vehicle_type_id)
    a, b = layout.doc.nodes[edge.start_node_id], layout.doc.nodes[edge.end_node_id]
    extra: dict[str, Any] = {}
    if props is not None:
        extra = {
            "max_speed": props.max_speed,
            "max_height": props.max_height,
            "min_height": props.min_height,
            "rotation_allowed": props.rotation_allowed,
            "orientation": props.vehicle_orientation,
            "orientation_type": props.orientation_type
            if props.vehicle_orientation is not None
            else None,
        }
        if props.trajectory is not None:
            t = props.trajectory
            extra["trajectory"] = {
                "degree": t.degree,
                "knotVector": list(t.knot_vector),
                "controlPoints": [
                    {"x": c.x, "y": c.y, "weight": c.weight} for c in t.control_points
                ],
            }
    if "trajectory" not in extra:
        extra["length"] = math.hypot(b.x - a.x, b.y - a.y)
    return Edge.model_validate(
        {
            "edge_id": edge.edge_id,
            "sequence_id": seq,
            "released": released,
            "start_node_id": edge.start_node_id,
            "end_node_id": edge.end_node_id,
            "actions": [],
            **{k: v for k, v in extra.items() if v is not None},
        }
    )


def _elements(
    layout: OrderLayout,
    cfg: OrderSettings,
    span: _Span,
    start: str,
    stops: Sequence[OrderStop],
    released_stops: int,
) -> tuple[list[Node], list[Edge]]:
    """Nodes and edges from ``start`` through ``stops``, sequence ids from the span's."""
    node_ids, edge_ids, stop_at = _path(layout, start, stops)
    base_end = stop_at[released_stops - 1] if released_stops > 0 and stop_at else 0
    actions: dict[int, list[OrderStop]] = {}
    for stop, at in zip(stops, stop_at, strict=True):
        if stop.action_type is not None:
            actions.setdefault(at, []).append(stop)
    doc, s0 = layout.doc, span.first_sequence_id
    nodes: list[Node] = []
    for i, nid in enumerate(node_ids):
        here = doc.nodes[nid]
        if i > 0:
            travel = _heading(doc.nodes[node_ids[i - 1]], here)
        else:
            travel = _heading(here, doc.nodes[node_ids[1]]) if len(node_ids) > 1 else None
        seq = s0 + 2 * i
        nodes.append(
            Node(
                node_id=nid,
                sequence_id=seq,
                released=i <= base_end,
                actions=[_action(s, span, seq) for s in actions.get(i, [])],
                node_position=_position(layout, cfg, here, travel),
            )
        )
    edges = [
        _edge(layout, doc.edges[eid], s0 + 2 * i + 1, i < base_end)
        for i, eid in enumerate(edge_ids)
    ]
    return nodes, edges


def _order(
    span: _Span, nodes: list[Node], edges: list[Edge], manufacturer: str, serial: str
) -> Order:
    return Order(
        header_id=0,  # the outbox sets the header when it sends
        timestamp=datetime.now(UTC),
        version=VDA_VERSION,
        manufacturer=manufacturer,
        serial_number=serial,
        order_id=span.order_id,
        order_update_id=span.order_update_id,
        nodes=nodes,
        edges=edges,
    )


def build_order(
    layout: OrderLayout,
    cfg: OrderSettings,
    *,
    order_id: str,
    start_node_id: str,
    stops: Sequence[OrderStop],
    released_stops: int,
    manufacturer: str = "",
    serial: str = "",
) -> Order:
    """A new order (orderUpdateId 0) from ``start_node_id`` through ``stops``.

    Raises :class:`NoRouteError` when a stop cannot be reached, and
    :class:`~dispatcher.dispatch.order_rules.OrderRuleError` when the result breaks a rule
    (which would be a bug here, so it is never sent).
    """
    if start_node_id not in layout.doc.nodes:
        raise NoRouteError(f"start node {start_node_id!r} is not in the layout")
    span = _Span(order_id, 0, 0)
    nodes, edges = _elements(layout, cfg, span, start_node_id, stops, released_stops)
    order = _order(span, nodes, edges, manufacturer, serial)
    check_order(order, start_node_id=start_node_id)
    return order


def build_update(
    layout: OrderLayout,
    cfg: OrderSettings,
    previous: Order,
    *,
    stops: Sequence[OrderStop],
    released_stops: int,
) -> Order:
    """An update of ``previous``: stitched onto its last base node, new stops after it.

    The stitching node is resent unchanged (same sequenceId and actions, §6.6.2); the
    previous horizon is dropped and replaced by the path through ``stops``.
    """
    base = [n for n in previous.nodes if n.released]
    if not base:
        raise OrderRuleError("the previous order has no base node to stitch onto")
    stitch = base[-1]
    span = _Span(previous.order_id, previous.order_update_id + 1, stitch.sequence_id)
    nodes, edges = _elements(layout, cfg, span, stitch.node_id, stops, released_stops)
    nodes[0] = stitch.model_copy()
    order = _order(span, nodes, edges, previous.manufacturer, previous.serial_number)
    check_update(previous, order)
    return order

"""The structural rules of a VDA 5050 2.0 order and order update (pure: no I/O).

What the JSON schema cannot say and a robot checks before it accepts an order (§6.6,
Figure 8); fleetd checks the same before it sends one, so an order a robot would reject
with an ``orderError`` is caught here, named, and never published:

- at least one node; the first node is where the robot is (a new order) or the stitching
  node (an update: the previous base's last node, same nodeId and sequenceId);
- nodes and edges alternate: n nodes, n-1 edges; sequenceIds run 0/first, +1, +2 ...
  (nodes even from an even start, edges odd), strictly increasing;
- edge i connects node i to node i+1;
- released flags are contiguous: the base (released) comes first, then the horizon; the
  first node is released; an edge is released only if both its nodes are;
- actionIds are unique in the order;
- an update keeps the orderId and has a higher orderUpdateId.
"""

from __future__ import annotations

from protocols.vda5050.models import Action, Order


class OrderRuleError(ValueError):
    """An order breaks a structural rule of VDA 5050 (the message names which)."""


def _check_sequence(order: Order) -> None:
    nodes, edges = order.nodes, order.edges
    if not nodes:
        raise OrderRuleError("an order needs at least one node")
    if len(edges) != len(nodes) - 1:
        raise OrderRuleError(f"{len(nodes)} nodes need {len(nodes) - 1} edges, got {len(edges)}")
    first = nodes[0].sequence_id
    if first % 2:
        raise OrderRuleError(f"node sequenceIds are even, the first is {first}")
    for i, node in enumerate(nodes):
        if node.sequence_id != first + 2 * i:
            raise OrderRuleError(
                f"node {node.node_id!r} has sequenceId {node.sequence_id}, expected {first + 2 * i}"
            )
    for i, edge in enumerate(edges):
        if edge.sequence_id != first + 2 * i + 1:
            raise OrderRuleError(
                f"edge {edge.edge_id!r} has sequenceId {edge.sequence_id}, "
                f"expected {first + 2 * i + 1}"
            )
        a, b = nodes[i], nodes[i + 1]
        if (edge.start_node_id, edge.end_node_id) != (a.node_id, b.node_id):
            raise OrderRuleError(
                f"edge {edge.edge_id!r} runs {edge.start_node_id!r}->{edge.end_node_id!r}, "
                f"not {a.node_id!r}->{b.node_id!r}"
            )


def _check_released(order: Order) -> None:
    flags = [n.released for n in order.nodes]
    if not flags[0]:
        raise OrderRuleError("the first node must be released (it is part of the base)")
    base = flags.index(False) if False in flags else len(flags)
    if any(flags[base:]):
        raise OrderRuleError("released nodes must come before the horizon (contiguous base)")
    for i, edge in enumerate(order.edges):
        should = i + 1 < base
        if edge.released != should:
            state = "released" if edge.released else "unreleased"
            raise OrderRuleError(f"edge {edge.edge_id!r} is {state} but its nodes say otherwise")


def _actions(order: Order, skip_first_node: bool = False) -> list[Action]:
    """Every action of the order's nodes and edges."""
    nodes = order.nodes[1:] if skip_first_node else order.nodes
    return [a for n in nodes for a in n.actions] + [a for e in order.edges for a in e.actions]


def _check_actions(order: Order) -> None:
    seen: set[str] = set()
    for action in _actions(order):
        if action.action_id in seen:
            raise OrderRuleError(f"actionId {action.action_id!r} is used twice")
        seen.add(action.action_id)


def check_order(order: Order, *, start_node_id: str | None = None) -> None:
    """Raise :class:`OrderRuleError` if ``order`` breaks a rule.

    ``start_node_id``: the node the robot stands on (a new order must start there); None
    when unknown (the robot then checks it against its own position).
    """
    _check_sequence(order)
    _check_released(order)
    _check_actions(order)
    if start_node_id is not None and order.nodes[0].node_id != start_node_id:
        raise OrderRuleError(
            f"the order starts at {order.nodes[0].node_id!r}, the robot is at {start_node_id!r}"
        )


def check_update(previous: Order, update: Order) -> None:
    """Raise :class:`OrderRuleError` unless ``update`` is a valid update of ``previous``."""
    check_order(update)
    if update.order_id != previous.order_id:
        raise OrderRuleError(
            f"an update keeps the orderId {previous.order_id!r}, got {update.order_id!r}"
        )
    if update.order_update_id <= previous.order_update_id:
        raise OrderRuleError(
            f"orderUpdateId {update.order_update_id} is not above {previous.order_update_id}"
        )
    base = [n for n in previous.nodes if n.released]
    stitch, first = base[-1], update.nodes[0]
    if (first.node_id, first.sequence_id) != (stitch.node_id, stitch.sequence_id):
        raise OrderRuleError(
            f"an update starts at the stitching node {stitch.node_id!r}/{stitch.sequence_id}, "
            f"got {first.node_id!r}/{first.sequence_id}"
        )
    if first != stitch:
        raise OrderRuleError("the stitching node must be resent unchanged")
    old_ids = {a.action_id for a in _actions(previous)}
    new_ids = {a.action_id for a in _actions(update, skip_first_node=True)}
    if reused := old_ids & new_ids:
        raise OrderRuleError(f"actionIds reused from the previous order: {sorted(reused)}")

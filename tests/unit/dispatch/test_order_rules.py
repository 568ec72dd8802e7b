"""The structural rules of orders: each rule refuses the order that breaks it."""

from __future__ import annotations

import pytest

from dispatcher.dispatch.order_rules import OrderRuleError, check_order, check_update
from dispatcher.dispatch.robot_orders import OrderStop, build_order, build_update
from protocols.vda5050.models import Order
from tests.unit.dispatch.layouts import CFG, campus_layout

STOPS = (OrderStop("a-dayroom", "pick"), OrderStop("h-lobby", "drop"))


def good(released: int = 1) -> Order:
    return build_order(
        campus_layout(),
        CFG,
        order_id="o",
        start_node_id="entrance",
        stops=STOPS,
        released_stops=released,
    )


def with_node(order: Order, i: int, **change: object) -> Order:
    nodes = list(order.nodes)
    nodes[i] = nodes[i].model_copy(update=change)
    return order.model_copy(update={"nodes": nodes})


def with_edge(order: Order, i: int, **change: object) -> Order:
    edges = list(order.edges)
    edges[i] = edges[i].model_copy(update=change)
    return order.model_copy(update={"edges": edges})


def refused(order: Order, match: str, **kw: str) -> None:
    with pytest.raises(OrderRuleError, match=match):
        check_order(order, **kw)


def test_a_built_order_passes() -> None:
    check_order(good(), start_node_id="entrance")


def test_no_nodes() -> None:
    refused(good().model_copy(update={"nodes": [], "edges": []}), "at least one node")


def test_wrong_start_node() -> None:
    refused(good(), "robot is at", start_node_id="h-lobby")


def test_edge_count() -> None:
    order = good()
    refused(order.model_copy(update={"edges": order.edges[:-1]}), "edges")


def test_odd_first_node_sequence() -> None:
    refused(with_node(good(), 0, sequence_id=1), "even")


def test_node_sequence_gap() -> None:
    refused(with_node(good(), 1, sequence_id=4), "sequenceId 4, expected 2")


def test_edge_sequence() -> None:
    refused(with_edge(good(), 0, sequence_id=3), "expected 1")


def test_edges_connect_consecutive_nodes() -> None:
    order = good()
    refused(with_edge(order, 0, end_node_id=order.nodes[2].node_id), "runs")


def test_first_node_released() -> None:
    refused(with_node(good(), 0, released=False), "first node")


def test_base_is_contiguous() -> None:
    order = good()
    refused(with_node(order, len(order.nodes) - 1, released=True), "contiguous")


def test_edge_released_flag_follows_its_nodes() -> None:
    order = good()
    refused(with_edge(order, len(order.edges) - 1, released=True), "edge")


def test_action_ids_unique() -> None:
    order = good(2)
    acted = [i for i, n in enumerate(order.nodes) if n.actions]
    action = order.nodes[acted[0]].actions[0]
    clash = order.nodes[acted[1]].actions[0].model_copy(update={"action_id": action.action_id})
    refused(with_node(order, acted[1], actions=[clash]), "used twice")


class TestUpdates:
    def update(self) -> tuple[Order, Order]:
        first = good()
        return first, build_update(campus_layout(), CFG, first, stops=STOPS[1:], released_stops=1)

    def test_a_built_update_passes(self) -> None:
        check_update(*self.update())

    def test_same_order_id(self) -> None:
        first, upd = self.update()
        with pytest.raises(OrderRuleError, match="keeps the orderId"):
            check_update(first, upd.model_copy(update={"order_id": "other"}))

    def test_higher_update_id(self) -> None:
        first, upd = self.update()
        with pytest.raises(OrderRuleError, match="not above"):
            check_update(first, upd.model_copy(update={"order_update_id": 0}))

    def test_starts_at_the_stitching_node(self) -> None:
        first, upd = self.update()
        moved = upd.model_copy(update={"nodes": upd.nodes[1:], "edges": upd.edges[1:]})
        with pytest.raises(OrderRuleError, match="stitching node"):
            check_update(first, moved)

    def test_stitching_node_unchanged(self) -> None:
        first, upd = self.update()
        pos = upd.nodes[0].node_position
        assert pos is not None
        changed = with_node(upd, 0, node_position=pos.model_copy(update={"x": pos.x + 1}))
        with pytest.raises(OrderRuleError, match="unchanged"):
            check_update(first, changed)

    def test_action_ids_not_reused(self) -> None:
        first, upd = self.update()
        old = [a for n in first.nodes for a in n.actions][-1]  # the old horizon's drop
        acted = next(i for i, n in enumerate(upd.nodes) if i > 0 and n.actions)
        reuse = upd.nodes[acted].actions[0].model_copy(update={"action_id": old.action_id})
        with pytest.raises(OrderRuleError, match="reused"):
            check_update(first, with_node(upd, acted, actions=[reuse]))

"""Orders built from layout routes: paths, positions, actions, base/horizon, updates, schema."""

from __future__ import annotations

import pytest

from dispatcher.dispatch.order_rules import check_order, check_update
from dispatcher.dispatch.robot_orders import (
    ANY_HEADING,
    NoRouteError,
    OrderStop,
    build_order,
    build_update,
)
from protocols.vda5050.models import Order
from tests.unit.dispatch.layouts import CFG, campus, campus_layout, wire
from tests.unit.protocols.schema_support import assert_valid, vda_schema

PICK = OrderStop("a-dayroom", "pick")
DROP = OrderStop("h-lobby", "drop")


def leg_order(released: int = 2, *stops: OrderStop) -> Order:
    return build_order(
        campus_layout(),
        CFG,
        order_id="leg-1",
        start_node_id="entrance",
        stops=stops or (PICK, DROP),
        released_stops=released,
        manufacturer="acme",
        serial="r1",
    )


class TestPath:
    def test_the_order_follows_the_layout_route_through_every_stop(self) -> None:
        order = leg_order()
        layout = campus_layout()
        to_pick = layout.routes.route("entrance", "a-dayroom")
        to_drop = layout.routes.route("a-dayroom", "h-lobby")
        assert to_pick is not None and to_drop is not None
        expected = [*to_pick.node_ids, *to_drop.node_ids[1:]]
        assert [n.node_id for n in order.nodes] == expected
        assert [e.edge_id for e in order.edges] == [*to_pick.edge_ids, *to_drop.edge_ids]

    def test_sequence_ids_are_even_for_nodes_and_odd_for_edges(self) -> None:
        order = leg_order()
        assert [n.sequence_id for n in order.nodes] == list(range(0, 2 * len(order.nodes), 2))
        assert [e.sequence_id for e in order.edges] == list(range(1, 2 * len(order.edges), 2))

    def test_every_node_has_a_position_with_theta_and_map(self) -> None:
        doc = campus()
        for node in leg_order().nodes:
            pos = node.node_position
            assert pos is not None and pos.theta is not None
            assert (pos.x, pos.y) == (doc.nodes[node.node_id].x, doc.nodes[node.node_id].y)
            assert pos.map_id == "campus"
            assert pos.allowed_deviation_xy == CFG.deviation_xy_m
            # The campus gives no node headings: any heading is fine, the travel one suggested.
            assert pos.allowed_deviation_theta == ANY_HEADING

    def test_edges_carry_the_layouts_speed_limits(self) -> None:
        doc = campus()
        for edge in leg_order().edges:
            props = doc.edges[edge.edge_id].for_type("simbot.wheelchair")
            assert props is not None
            assert edge.max_speed == props.max_speed
            assert edge.rotation_allowed == props.rotation_allowed
            assert edge.length is not None and edge.length >= 0

    def test_an_unreachable_stop_is_a_no_route_error(self) -> None:
        with pytest.raises(NoRouteError):
            leg_order(1, OrderStop("no-such-node", "pick"))

    def test_a_stop_where_the_robot_stands_is_a_one_node_order(self) -> None:
        order = leg_order(1, OrderStop("entrance", "startCharging"))
        assert [n.node_id for n in order.nodes] == ["entrance"] and order.edges == []
        assert order.nodes[0].actions[0].action_type == "startCharging"


class TestActions:
    def test_pick_at_the_pickup_and_drop_at_the_dropoff_both_hard(self) -> None:
        order = leg_order()
        with_actions = [
            (n.node_id, a.action_type, a.blocking_type) for n in order.nodes for a in n.actions
        ]
        assert with_actions == [("a-dayroom", "pick", "HARD"), ("h-lobby", "drop", "HARD")]

    def test_action_ids_are_unique(self) -> None:
        order = leg_order(2, PICK, DROP, PICK, DROP)
        ids = [a.action_id for n in order.nodes for a in n.actions]
        assert len(ids) == 4 == len(set(ids))


class TestBaseAndHorizon:
    def test_released_up_to_the_last_released_stop_the_rest_is_horizon(self) -> None:
        order = leg_order(1)
        pick_at = next(i for i, n in enumerate(order.nodes) if n.actions)
        assert all(n.released for n in order.nodes[: pick_at + 1])
        assert not any(n.released for n in order.nodes[pick_at + 1 :])
        assert all(e.released for e in order.edges[:pick_at])
        assert not any(e.released for e in order.edges[pick_at:])
        check_order(order, start_node_id="entrance")

    def test_all_stops_released_leaves_no_horizon(self) -> None:
        order = leg_order(2)
        assert all(n.released for n in order.nodes) and all(e.released for e in order.edges)


class TestUpdate:
    def test_an_update_stitches_onto_the_last_base_node(self) -> None:
        first = leg_order(1)
        update = build_update(campus_layout(), CFG, first, stops=(DROP,), released_stops=1)
        stitch = [n for n in first.nodes if n.released][-1]
        assert update.order_id == first.order_id
        assert update.order_update_id == first.order_update_id + 1
        assert update.nodes[0] == stitch  # resent unchanged, same sequenceId and actions
        assert update.nodes[1].sequence_id == stitch.sequence_id + 2
        assert update.edges[0].sequence_id == stitch.sequence_id + 1
        assert update.nodes[-1].node_id == "h-lobby" and update.nodes[-1].released
        check_update(first, update)

    def test_a_second_update_stitches_onto_the_first_updates_base(self) -> None:
        first = leg_order(1)
        second = build_update(campus_layout(), CFG, first, stops=(DROP,), released_stops=0)
        third = build_update(campus_layout(), CFG, second, stops=(DROP,), released_stops=1)
        assert third.nodes[0] == second.nodes[0] and third.order_update_id == 2


class TestSchema:
    @pytest.mark.parametrize("released", [0, 1, 2])
    def test_built_orders_validate_against_the_order_schema(self, released: int) -> None:
        assert_valid(vda_schema("order"), wire(leg_order(released)))

    def test_updates_and_charge_orders_validate_against_the_order_schema(self) -> None:
        first = leg_order(1)
        update = build_update(campus_layout(), CFG, first, stops=(DROP,), released_stops=1)
        charge = leg_order(1, OrderStop("a-charger", "startCharging"))
        assert_valid(vda_schema("order"), wire(update))
        assert_valid(vda_schema("order"), wire(charge))

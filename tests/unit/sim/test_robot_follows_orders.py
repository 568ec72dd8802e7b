"""The virtual robot follows fleetd's orders (stepped by hand, no broker).

Orders come from fleetd's own builder on the shipped campus; the robot's states during
the order are checked against the published state schema.
"""

from __future__ import annotations

import json
from typing import Any

from dispatcher.dispatch.robot_orders import OrderStop, build_order, build_update
from protocols.vda5050 import codec
from protocols.vda5050.models import Order
from sim.robot import RobotSpec, VirtualRobot
from tests.unit.dispatch.layouts import CFG, campus, campus_layout
from tests.unit.protocols.schema_support import assert_valid, vda_schema


def robot_at(node_id: str) -> VirtualRobot:
    node = campus().nodes[node_id]
    return VirtualRobot(RobotSpec("acme", "r1", x=node.x, y=node.y, last_node_id=node_id))


def order(*stops: OrderStop, released: int | None = None, start: str = "entrance") -> Order:
    return build_order(
        campus_layout(),
        CFG,
        order_id="o1",
        start_node_id=start,
        stops=stops,
        released_stops=len(stops) if released is None else released,
    )


def send(robot: VirtualRobot, msg: Order) -> None:
    robot.on_order(json.loads(codec.encode(msg)))


def run(
    robot: VirtualRobot, seconds: float, dt: float = 0.25, *, until_idle: bool = False
) -> list[dict[str, Any]]:
    """Step the robot (up to ``seconds``, or until it has nothing left to do); the states
    it would have published, one per step."""
    states = []
    for _ in range(int(seconds / dt)):
        robot.step(dt)
        states.append(robot.state_message())
        robot._reported()
        busy = any(n.released for n in robot.nodes) or any(
            a.status in ("WAITING", "RUNNING") for a in robot.actions.values()
        )
        if until_idle and not busy:
            break
    return states


def test_it_drives_the_order_runs_the_actions_and_reports_valid_states() -> None:
    robot = robot_at("entrance")
    o = order(OrderStop("a-dayroom", "pick"), OrderStop("h-lobby", "drop"))
    send(robot, o)
    states = run(robot, 900, until_idle=True)
    schema = vda_schema("state")
    for s in states[::20]:
        assert_valid(schema, s)
    assert robot.last_node_id == "h-lobby" and robot.nodes == []
    seen = [(a["actionType"], a["actionStatus"]) for s in states for a in s["actionStates"]]
    for kind in ("pick", "drop"):
        statuses = [st for k, st in seen if k == kind]
        assert statuses.index("RUNNING") < statuses.index("FINISHED")
        assert statuses[0] == "WAITING"
    dest = campus().nodes["h-lobby"]
    assert (round(robot.x, 3), round(robot.y, 3)) == (round(dest.x, 3), round(dest.y, 3))
    assert robot.battery < robot.spec.battery_pct


def test_it_keeps_to_the_edge_speed_limit() -> None:
    robot = robot_at("entrance")
    robot.spec.speed_mps = 9.0
    send(robot, order(OrderStop("a-dayroom", None)))
    speeds = [s["velocity"]["vx"] for s in run(robot, 5) if s["driving"]]
    limit = max(e.max_speed or 0 for e in order(OrderStop("a-dayroom", None)).edges)
    assert speeds and max(speeds) <= limit


def test_it_stops_at_the_end_of_the_base_and_goes_on_after_an_update() -> None:
    robot = robot_at("entrance")
    first = order(OrderStop("a-dayroom", "pick"), OrderStop("h-lobby", "drop"), released=1)
    send(robot, first)
    run(robot, 600, until_idle=True)
    assert robot.last_node_id == "a-dayroom" and not robot.driving
    assert all(not n.released for n in robot.nodes)  # only the horizon left
    update = build_update(
        campus_layout(), CFG, first, stops=(OrderStop("h-lobby", "drop"),), released_stops=1
    )
    send(robot, update)
    assert robot.errors == []
    run(robot, 600, until_idle=True)
    assert robot.last_node_id == "h-lobby" and robot.order_update_id == 1


def test_an_update_that_does_not_stitch_is_refused() -> None:
    robot = robot_at("entrance")
    first = order(OrderStop("a-dayroom", "pick"), released=1)
    send(robot, first)
    bad = first.model_copy(
        update={"order_update_id": 1, "nodes": first.nodes[1:], "edges": first.edges[1:]}
    )
    send(robot, bad)
    assert [e["errorType"] for e in robot.errors] == ["orderUpdateError"]


def test_a_new_order_while_busy_is_an_order_error() -> None:
    robot = robot_at("entrance")
    send(robot, order(OrderStop("a-dayroom", "pick")))
    other = order(OrderStop("h-lobby", "drop")).model_copy(update={"order_id": "o2"})
    send(robot, other)
    assert [e["errorType"] for e in robot.errors] == ["orderError"]
    assert robot.order_id == "o1"


def test_an_order_from_elsewhere_is_a_no_route_error() -> None:
    robot = robot_at("h-lobby")
    send(robot, order(OrderStop("a-dayroom", "pick")))
    assert [e["errorType"] for e in robot.errors] == ["noRouteError"]


def test_it_charges_at_the_charger() -> None:
    robot = robot_at("entrance")
    robot.battery = 50.0
    send(robot, order(OrderStop("a-charger", "startCharging")))
    states = run(robot, 900, until_idle=True)
    assert robot.last_node_id == "a-charger" and robot.charging
    statuses = [a["actionStatus"] for s in states for a in s["actionStates"]]
    assert "RUNNING" in statuses and "FINISHED" in statuses
    before = robot.battery
    run(robot, 5)
    assert robot.battery > before


def test_cancel_order_stops_it_and_fails_the_actions() -> None:
    robot = robot_at("entrance")
    send(robot, order(OrderStop("a-dayroom", "pick")))
    run(robot, 2)
    robot.on_instant_actions(
        {"actions": [{"actionType": "cancelOrder", "actionId": "c1", "blockingType": "HARD"}]}
    )
    states = run(robot, 2)
    assert robot.nodes == [] and not robot.driving
    assert any(
        a["actionStatus"] == "FAILED" and a["actionType"] == "pick"
        for a in states[0]["actionStates"]
    )

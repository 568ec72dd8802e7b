"""The robot channel with a virtual robot following it over the real broker (fixtures in
conftest.py): a leg is driven and reported in order, a charge leg, cancel, rejection."""

from __future__ import annotations

from dispatcher.dispatch.legs import LegFailure, LegProgressKind, Stop, StopAction
from tests.conftest import eventually
from tests.integration.dispatch.robots.conftest import WAIT_S, Loop

K = LegProgressKind


async def test_a_released_leg_is_driven_and_reported_in_order(loop: Loop) -> None:
    robot, vid = await loop.robot("leg")
    leg = loop.leg(vid)
    sent = await loop.channel.release(leg)
    assert sent.ok, sent.detail
    await loop.until(leg, K.FINISHED)
    assert loop.kinds(leg) == [
        K.ACCEPTED,
        K.TO_PICKUP,
        K.PICKUP_ARRIVED,
        K.PICKED_UP,
        K.TO_DROPOFF,
        K.DROPOFF_ARRIVED,
        K.DROPPED_OFF,
        K.FINISHED,
    ]
    assert robot.last_node_id == "n4" and robot.x == 4.0


async def test_a_charge_leg_ends_with_the_robot_charging(loop: Loop) -> None:
    robot, vid = await loop.robot("charge", battery_pct=40.0)
    leg = loop.leg(vid, Stop("charger", "n4", 0, 0, StopAction.CHARGE))
    assert (await loop.channel.release(leg)).ok
    await loop.until(leg, K.FINISHED)
    assert loop.kinds(leg) == [K.ACCEPTED, K.CHARGING, K.FINISHED]
    assert robot.charging


async def test_a_withdrawn_leg_stops_the_robot(loop: Loop) -> None:
    robot, vid = await loop.robot("cancel", speed_mps=0.2)  # slow: still on the way
    leg = loop.leg(vid)
    assert (await loop.channel.release(leg)).ok
    await loop.until(leg, K.ACCEPTED)
    res = await loop.channel.withdraw(leg, LegFailure.CANCELLED)
    assert res.ok
    await eventually(lambda: not robot.nodes and not robot.driving, WAIT_S)
    assert robot.last_node_id != "n4"
    assert K.FINISHED not in loop.kinds(leg) and K.FAILED not in loop.kinds(leg)


async def test_an_order_the_robot_rejects_is_refused(loop: Loop) -> None:
    robot, vid = await loop.robot("busy", speed_mps=0.2)
    first = loop.leg(vid)
    assert (await loop.channel.release(first)).ok
    await loop.until(first, K.ACCEPTED)
    # A second order while the first runs: the robot answers with an orderError.
    second = loop.leg(vid, Stop("n1", "n1", 0, 0, StopAction.PICK))
    assert (await loop.channel.release(second)).ok
    await loop.until(second, K.REFUSED)
    refused = next(p for p in loop.progress if p.leg_id == second.leg_id)
    assert refused.failure is LegFailure.ORDER_REJECTED and "orderError" in refused.detail
    assert robot.order_id == first.leg_id

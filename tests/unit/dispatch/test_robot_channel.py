"""The robot channel's state machine, fed with vehicle events (no broker: a recording adapter).

The adapter stands in for the MQTT side only: it records what the channel sends and
answers like :class:`~dispatcher.links.robot.RobotVehicles` does (``not_in_control`` for a
robot in MANUAL). Everything else is the real channel, commander, registry and layout.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field, replace

import pytest

from dispatcher.config import Settings
from dispatcher.dispatch.legs import (
    Leg,
    LegFailure,
    LegProgress,
    LegProgressKind,
    Stop,
    StopAction,
)
from dispatcher.dispatch.robot_actions import ActionMapping, ActionSpec
from dispatcher.dispatch.robot_channel import (
    RobotChannelSettings,
    RobotLegChannel,
    action_mapping,
)
from dispatcher.dispatch.robot_orders import OrderLayout
from dispatcher.links.commander import VehicleCommander
from dispatcher.links.commands import CommandReason, CommandResult, VehicleCommand, result
from dispatcher.links.mqtt import Route
from dispatcher.links.robot_policy import master_in_control
from dispatcher.links.vehicle_events import (
    ActionStateChanged,
    ErrorsChanged,
    NodeReached,
    OrderStateSeen,
)
from fleet.model import ConnectionState, OperatingMode, VehicleError, VehicleKey, VehicleKind
from fleet.record import VehicleRecord
from fleet.registry import FleetRegistry
from fleet.reports import Heard, RobotState
from geo.facility_maps import FacilityMaps
from protocols.driver.models import JobOffer
from protocols.vda5050.base import ActionStatus
from protocols.vda5050.models import Order
from tests.unit.dispatch.layouts import campus_layout

K = LegProgressKind
FACILITY = Settings().default_facility.id


@dataclass
class Recorder:
    """The robot adapter's outbound side, recorded."""

    orders: list[Order] = field(default_factory=list)
    commands: list[VehicleCommand] = field(default_factory=list)
    #: Every send in the order it was published: ``order <id>`` or the command's name.
    published: list[str] = field(default_factory=list)
    #: Set: the next command waits for it before it is published (as a send waits for
    #: its header id from Redis, which may answer late), then the gate is gone.
    gate: asyncio.Event | None = None

    @property
    def kind(self) -> VehicleKind:
        return VehicleKind.ROBOT

    @property
    def route(self) -> Route:
        raise NotImplementedError("not routed in these tests")

    def supports(self, command: VehicleCommand) -> bool:
        return True

    async def command(
        self, rec: VehicleRecord, command: VehicleCommand, correlation_id: str
    ) -> CommandResult:
        gate, self.gate = self.gate, None
        if gate is not None:
            await gate.wait()
        self.commands.append(command)
        self.published.append(command.value)
        return result(rec.id, command, CommandReason.SENT, correlation_id, "sent")

    async def announce_maintenance(
        self, rec: VehicleRecord, on: bool, correlation_id: str
    ) -> CommandResult:
        raise NotImplementedError

    async def send_order(self, rec: VehicleRecord, order: Order) -> CommandResult:
        cid = f"{order.order_id}:{order.order_update_id}"
        mode = None if rec.operating_mode is None else str(rec.operating_mode)
        if not master_in_control(mode):
            return result(rec.id, VehicleCommand.ORDER, CommandReason.NOT_IN_CONTROL, cid, "")
        self.orders.append(order)
        self.published.append(f"order {order.order_id}")
        return result(rec.id, VehicleCommand.ORDER, CommandReason.SENT, cid, "sent")

    async def offer_job(self, rec: VehicleRecord, offer: JobOffer) -> CommandResult:
        raise NotImplementedError


class World:
    """A registry with one robot on the campus, the channel, and a clock."""

    def __init__(
        self, mode: OperatingMode = OperatingMode.AUTOMATIC, actions: ActionMapping | None = None
    ) -> None:
        self.now = 1000.0
        self.registry = FleetRegistry(
            maps=FacilityMaps(Settings().facility_specs),
            default_facility_id=FACILITY,
            heartbeat_timeout_s=60,
            clock=lambda: self.now,
        )
        self.rec = self.registry.register(VehicleKey(VehicleKind.ROBOT, "acme", "r1"))
        self.state(mode=mode)
        self.adapter = Recorder()
        self.channel = RobotLegChannel(
            VehicleCommander(self.registry, [self.adapter]),
            self.registry,
            self.layout,
            {FACILITY: "campus"},
            RobotChannelSettings(resend_after_s=3.0, max_sends=3),
            clock=lambda: self.now,
            actions=actions,
        )

    @staticmethod
    def layout(facility_id: uuid.UUID, node_id: str) -> OrderLayout | None:
        return campus_layout() if node_id in campus_layout().doc.nodes else None

    def state(self, mode: OperatingMode = OperatingMode.AUTOMATIC, node: str = "entrance") -> None:
        state = RobotState(80.0, False, False, False, False, mode, None, None, node, (), None, None)
        self.registry.apply_robot_state(self.rec, state, Heard(self.now, self.now, False))

    def leg(self, *stops: Stop) -> Leg:
        stops = stops or (
            Stop("Day room", "a-dayroom", 0, 0, StopAction.PICK),
            Stop("Lobby", "h-lobby", 0, 0, StopAction.DROP),
        )
        return Leg(f"leg-{uuid.uuid4().hex[:6]}", self.rec.id, FACILITY, uuid.uuid4(), stops)

    def seen(self, order: Order, *, update: int = 0, order_id: str | None = None) -> OrderStateSeen:
        return OrderStateSeen(
            self.rec.id,
            self.now,
            order.order_id if order_id is None else order_id,
            update,
            "entrance",
            0,
            tuple(n.node_id for n in order.nodes),
            False,
            "NONE",
            "AUTOMATIC",
        )

    def action(self, order: Order, kind: str, status: str) -> ActionStateChanged:
        action = next(a for n in order.nodes for a in n.actions if a.action_type == kind)
        return ActionStateChanged(
            self.rec.id, self.now, action.action_id, kind, ActionStatus(status)
        )

    def reached(self, order: Order, kind: str) -> NodeReached:
        node = next(n for n in order.nodes if any(a.action_type == kind for a in n.actions))
        return NodeReached(self.rec.id, self.now, order.order_id, node.node_id, node.sequence_id)


def kinds(progress: object) -> list[K]:
    assert isinstance(progress, list | tuple)
    return [p.kind for p in progress if isinstance(p, LegProgress)]


async def test_a_leg_runs_from_echo_to_finished_in_order() -> None:
    w = World()
    leg = w.leg()
    sent = await w.channel.release(leg)
    assert sent.ok and len(w.adapter.orders) == 1
    order = w.adapter.orders[0]
    assert order.order_id == leg.leg_id and order.nodes[0].node_id == "entrance"
    got: list[K] = []
    got += kinds(w.channel.observe(w.seen(order)))
    got += kinds(w.channel.observe(w.reached(order, "pick")))
    got += kinds(w.channel.observe(w.action(order, "pick", "RUNNING")))
    got += kinds(w.channel.observe(w.action(order, "pick", "FINISHED")))
    got += kinds(w.channel.observe(w.reached(order, "drop")))
    got += kinds(w.channel.observe(w.action(order, "drop", "FINISHED")))
    assert got == [
        K.ACCEPTED,
        K.TO_PICKUP,
        K.PICKUP_ARRIVED,
        K.PICKED_UP,
        K.TO_DROPOFF,
        K.DROPOFF_ARRIVED,
        K.DROPPED_OFF,
        K.FINISHED,
    ]
    assert w.channel.held(w.rec.id) is None  # finished: the channel let go


async def test_repeated_reports_are_not_news() -> None:
    w = World()
    await w.channel.release(w.leg())
    order = w.adapter.orders[0]
    assert kinds(w.channel.observe(w.seen(order))) == [K.ACCEPTED, K.TO_PICKUP]
    assert kinds(w.channel.observe(w.seen(order))) == []


async def test_a_charge_leg_sends_start_charging_and_reports_charging() -> None:
    w = World()
    leg = w.leg(Stop("Charger", "a-charger", 0, 0, StopAction.CHARGE))
    await w.channel.release(leg)
    order = w.adapter.orders[0]
    assert order.nodes[-1].node_id == "a-charger"
    assert [a.action_type for a in order.nodes[-1].actions] == ["startCharging"]
    w.channel.observe(w.seen(order))
    assert kinds(w.channel.observe(w.action(order, "startCharging", "RUNNING"))) == [K.CHARGING]
    finished = w.channel.observe(w.action(order, "startCharging", "FINISHED"))
    assert kinds(finished) == [K.FINISHED]


@pytest.mark.parametrize("error_type", ["orderError", "orderUpdateError", "noRouteError"])
async def test_order_errors_refuse_the_leg(error_type: str) -> None:
    w = World()
    await w.channel.release(w.leg())
    err = ErrorsChanged(w.rec.id, w.now, (VehicleError(error_type, "WARNING", "bad"),))
    got = w.channel.observe(err)
    assert kinds(got) == [K.REFUSED] and got[0].failure is LegFailure.ORDER_REJECTED
    assert w.channel.held(w.rec.id) is None


async def test_a_fatal_error_fails_the_leg() -> None:
    w = World()
    await w.channel.release(w.leg())
    w.channel.observe(w.seen(w.adapter.orders[0]))
    got = w.channel.observe(
        ErrorsChanged(w.rec.id, w.now, (VehicleError("motorFault", "FATAL", ""),))
    )
    assert kinds(got) == [K.FAILED] and got[0].failure is LegFailure.FATAL_ERROR


async def test_a_failed_action_fails_the_leg() -> None:
    w = World()
    await w.channel.release(w.leg())
    order = w.adapter.orders[0]
    w.channel.observe(w.seen(order))
    got = w.channel.observe(w.action(order, "pick", "FAILED"))
    assert kinds(got) == [K.FAILED] and got[0].failure is LegFailure.ACTION_FAILED


async def test_a_robot_in_manual_mode_gets_no_order() -> None:
    w = World(OperatingMode.MANUAL)
    sent = await w.channel.release(w.leg())
    assert sent.reason is CommandReason.NOT_IN_CONTROL and not sent.ok
    assert w.adapter.orders == [] and w.channel.held(w.rec.id) is None


async def test_an_unreachable_stop_is_impossible_no_route() -> None:
    w = World()
    sent = await w.channel.release(w.leg(Stop("Nowhere", "nowhere", 0, 0, StopAction.PICK)))
    assert sent.reason is CommandReason.NO_ROUTE and w.adapter.orders == []


async def test_the_horizon_goes_unreleased_and_ends_at_a_stop_with_no_node() -> None:
    """Horizon stops with layout nodes follow the base unreleased; from the first one
    without a node (an unmapped place) the horizon is cut, and the leg is still sent."""
    w = World()
    leg = replace(
        w.leg(),
        horizon=(
            Stop("Lab", "h-lab", 0, 0, StopAction.PICK),
            Stop("Street", None, 52.5, 13.4, StopAction.DROP),
            Stop("Lobby", "h-lobby", 0, 0, StopAction.DROP),
        ),
    )
    sent = await w.channel.release(leg)
    assert sent.ok, sent.detail
    order = w.adapter.orders[0]
    acting = [(n.node_id, n.released) for n in order.nodes if n.actions]
    assert acting == [("a-dayroom", True), ("h-lobby", True), ("h-lab", False)]
    assert order.nodes[-1].node_id == "h-lab"


async def test_a_manufacturers_robots_get_their_own_action_types_and_parameters() -> None:
    """``[dispatch.robot_actions]``: acme's pick is ``liftPassenger`` with a fixed
    parameter, its drop keeps the name but gets parameters; the renamed action's states
    are still read as the pick."""
    mapping = ActionMapping(
        {
            "acme": {
                StopAction.PICK: ActionSpec("liftPassenger", (("seat", "front"),)),
                StopAction.DROP: ActionSpec("drop", (("stationType", "floor"), ("slow", True))),
            }
        }
    )
    w = World(actions=mapping)
    await w.channel.release(w.leg())
    order = w.adapter.orders[0]
    written = {
        a.action_type: {p.key: p.value for p in a.action_parameters or []}
        for n in order.nodes
        for a in n.actions
    }
    assert written == {
        "liftPassenger": {"seat": "front"},
        "drop": {"stationType": "floor", "slow": True},
    }
    w.channel.observe(w.seen(order))
    assert K.PICKED_UP in kinds(w.channel.observe(w.action(order, "liftPassenger", "FINISHED")))
    assert kinds(w.channel.observe(w.action(order, "drop", "FINISHED")))[-1] is K.FINISHED


def test_the_action_mapping_comes_from_the_settings() -> None:
    """TOML-shaped settings become the channel's mapping; unnamed types keep VDA 5050's."""
    settings = Settings(
        dispatch={
            "robot_actions": {
                "thirdparty": {
                    "pick": {"parameters": {"stationType": "floor", "loadType": "EPAL"}},
                    "charge": {"action_type": "dock"},
                }
            }
        }
    )
    mapping = action_mapping(settings)
    assert mapping.spec("thirdparty", StopAction.PICK) == ActionSpec(
        "pick", (("stationType", "floor"), ("loadType", "EPAL"))
    )
    assert mapping.spec("thirdparty", StopAction.CHARGE) == ActionSpec("dock")
    assert mapping.spec("thirdparty", StopAction.DROP) == ActionSpec("drop")
    assert mapping.spec("acme", StopAction.CHARGE) == ActionSpec("startCharging")


def test_an_unknown_kind_of_stop_in_the_settings_is_refused() -> None:
    """A misspelt stop kind stops fleetd at start rather than being ignored."""
    with pytest.raises(ValueError, match="robot_actions"):
        Settings(dispatch={"robot_actions": {"acme": {"pickup": {"action_type": "x"}}}})


async def test_an_order_not_echoed_is_resent_then_refused_not_taken() -> None:
    w = World()
    await w.channel.release(w.leg())
    assert await w.channel.tick(w.now + 1) == []  # not due yet
    w.now += 3.5
    assert await w.channel.tick(w.now) == [] and len(w.adapter.orders) == 2
    w.now += 3.5
    assert await w.channel.tick(w.now) == [] and len(w.adapter.orders) == 3
    w.now += 3.5
    got = await w.channel.tick(w.now)
    assert kinds(got) == [K.REFUSED] and got[0].failure is LegFailure.NOT_TAKEN
    assert len(w.adapter.orders) == 3 and w.channel.held(w.rec.id) is None


async def test_an_echoed_order_is_not_resent() -> None:
    w = World()
    await w.channel.release(w.leg())
    w.channel.observe(w.seen(w.adapter.orders[0]))
    w.now += 60
    assert await w.channel.tick(w.now) == [] and len(w.adapter.orders) == 1


async def test_withdraw_sends_cancel_order_and_forgets_the_leg() -> None:
    w = World()
    leg = w.leg()
    await w.channel.release(leg)
    res = await w.channel.withdraw(leg, LegFailure.CANCELLED)
    assert res.ok and w.adapter.commands == [VehicleCommand.CANCEL_ORDER]
    order = w.adapter.orders[0]
    assert w.channel.observe(w.action(order, "pick", "FAILED")) == []


async def _let_run(task: asyncio.Task[CommandResult]) -> None:
    """Let ``task`` run as far as it can without the gate (a few loop turns)."""
    for _ in range(10):
        if task.done():
            return
        await asyncio.sleep(0)


async def test_a_cancel_on_its_way_is_not_overtaken_by_the_next_order() -> None:
    """The engine releases legs side by side: a withdraw whose cancelOrder is slow to go
    out (its header id from Redis) and a release to the same robot decided after it.
    cancelOrder cancels whatever order the robot runs: published after the new order, it
    would cancel that one. The robot's sends leave in the order they were decided."""
    w = World()
    old, new = w.leg(), w.leg()
    await w.channel.release(old)
    w.adapter.gate = gate = asyncio.Event()
    withdraw = asyncio.create_task(w.channel.withdraw(old, LegFailure.CANCELLED))
    await _let_run(withdraw)
    release = asyncio.create_task(w.channel.release(new))
    await _let_run(release)
    gate.set()
    assert all(r.ok for r in await asyncio.gather(withdraw, release))
    assert w.adapter.published == [
        f"order {old.leg_id}",
        VehicleCommand.CANCEL_ORDER.value,
        f"order {new.leg_id}",
    ]
    assert w.channel.held(w.rec.id) == w.adapter.orders[-1]


async def test_the_ticks_cancel_of_an_unknown_order_is_not_overtaken_by_a_release() -> None:
    """The channel's tick runs beside the engine: its cancelOrder of an order fleetd did
    not give, slow to go out, and a leg released meanwhile. The release cancels the
    unknown order itself, then sends its own; the tick's cancel must not land after it."""
    w = World()
    w.channel.observe(
        OrderStateSeen(
            w.rec.id, w.now, "foreign", 0, "entrance", 0, ("x",), True, "NONE", "AUTOMATIC"
        )
    )
    w.adapter.gate = gate = asyncio.Event()
    tick = asyncio.create_task(w.channel.tick(w.now))
    await asyncio.sleep(0)
    leg = w.leg()
    release = asyncio.create_task(w.channel.release(leg))
    await _let_run(release)
    gate.set()
    await tick
    assert (await release).ok
    assert w.adapter.published[-1] == f"order {leg.leg_id}"
    assert VehicleCommand.CANCEL_ORDER.value in w.adapter.published


async def test_a_lost_order_is_sent_again() -> None:
    w = World()
    await w.channel.release(w.leg())
    order = w.adapter.orders[0]
    w.channel.observe(w.seen(order))
    # The robot rebooted: it reports no order at all.
    w.channel.observe(w.seen(order, order_id=""))
    await w.channel.tick(w.now)
    assert len(w.adapter.orders) == 2 and w.adapter.orders[1] == order


async def test_an_order_fleetd_did_not_give_is_reported_and_cancelled() -> None:
    w = World()
    w.channel.observe(
        OrderStateSeen(
            w.rec.id, w.now, "foreign", 0, "entrance", 0, ("x",), True, "NONE", "AUTOMATIC"
        )
    )
    assert w.channel.unknown_orders == {w.rec.id: "foreign"}
    await w.channel.tick(w.now)
    assert w.adapter.commands == [VehicleCommand.CANCEL_ORDER]
    w.channel.observe(  # still reported until it stops: cancelled once, not again
        OrderStateSeen(
            w.rec.id, w.now, "foreign", 0, "entrance", 0, ("x",), True, "NONE", "AUTOMATIC"
        )
    )
    await w.channel.tick(w.now + 1)
    assert w.adapter.commands == [VehicleCommand.CANCEL_ORDER]


async def test_a_reconnected_robot_is_asked_for_its_state() -> None:
    w = World()
    await w.channel.release(w.leg())
    w.rec.online = False
    await w.channel.tick(w.now)
    w.rec.online = True
    await w.channel.tick(w.now)
    assert w.adapter.commands == [VehicleCommand.STATE_REQUEST]


async def test_a_horizon_update_is_stitched_and_resent_until_echoed() -> None:
    w = World()
    leg = w.leg()
    await w.channel.release(leg)
    order = w.adapter.orders[0]
    w.channel.observe(w.seen(order))
    res = await w.channel.update_horizon(
        leg, (Stop("Charger", "a-charger", 0, 0, StopAction.CHARGE),)
    )
    assert res.ok
    update = w.adapter.orders[1]
    assert update.order_id == order.order_id and update.order_update_id == 1
    assert update.nodes[0] == order.nodes[-1]  # the stitching node, unchanged
    assert not any(n.released for n in update.nodes[1:])
    w.now += 3.5
    await w.channel.tick(w.now)
    assert len(w.adapter.orders) == 3 and w.adapter.orders[2] == update  # not echoed yet
    assert kinds(w.channel.observe(w.seen(update, update=1))) == []  # no second ACCEPTED
    w.now += 3.5
    await w.channel.tick(w.now)
    assert len(w.adapter.orders) == 3
    # The base goes on as before.
    w.channel.observe(w.action(order, "pick", "FINISHED"))
    assert kinds(w.channel.observe(w.action(order, "drop", "FINISHED")))[-1] is K.FINISHED


async def test_a_withdrawn_order_still_running_is_not_reported_as_unknown() -> None:
    w = World()
    leg = w.leg()
    await w.channel.release(leg)
    order = w.adapter.orders[0]
    await w.channel.withdraw(leg, LegFailure.CANCELLED)
    assert w.channel.observe(w.seen(order)) == []
    assert w.channel.unknown_orders == {}


def _gone(w: World) -> None:
    """The robot is offline (its goodbye: at once)."""
    w.registry.apply_connection(w.rec, ConnectionState.OFFLINE, Heard(w.now, w.now, False))
    assert not w.rec.online


async def test_an_order_withdrawn_while_the_robot_was_away_is_cancelled_when_it_is_back() -> None:
    """Issue 18: the robot dropped off (the broker went away) with its order; the engine
    took the leg back, but the cancelOrder could not be sent. Back online and still
    running the order, the robot is sent the cancel; until it lets go, the mission is
    not free for another robot."""
    w = World()
    leg = w.leg()
    await w.channel.release(leg)
    order = w.adapter.orders[0]
    w.channel.observe(w.seen(order))
    _gone(w)
    res = await w.channel.withdraw(leg, LegFailure.VEHICLE_OFFLINE)
    assert not res.ok and w.adapter.commands == []
    assert w.channel.releasing() == frozenset()  # offline: it cannot hold the mission up
    w.now += 2
    w.state()  # back
    assert w.channel.observe(w.seen(order)) == []  # still running it, nodes left
    assert w.channel.releasing() == {leg.mission_id}
    assert w.channel.unknown_orders == {}
    await w.channel.tick(w.now)
    assert w.adapter.commands == [VehicleCommand.CANCEL_ORDER]
    # VDA 5050 §6.6.3: cancelled, it keeps the orderId with no nodes left.
    w.channel.observe(replace(w.seen(order), node_ids_left=()))
    assert w.channel.releasing() == frozenset()
    w.now += 10
    await w.channel.tick(w.now)
    assert w.adapter.commands == [VehicleCommand.CANCEL_ORDER]


async def test_a_withdrawn_order_the_robot_keeps_running_is_cancelled_again() -> None:
    """A cancelOrder lost on the way: while the robot still reports the order running
    after ``resend_after_s`` it is cancelled again (at most ``max_sends`` more times)."""
    w = World()
    leg = w.leg()
    await w.channel.release(leg)
    order = w.adapter.orders[0]
    w.channel.observe(w.seen(order))
    await w.channel.withdraw(leg, LegFailure.CANCELLED)
    assert w.adapter.commands == [VehicleCommand.CANCEL_ORDER]
    w.channel.observe(w.seen(order))
    await w.channel.tick(w.now)
    assert w.adapter.commands == [VehicleCommand.CANCEL_ORDER]  # too soon to say
    assert w.channel.releasing() == {leg.mission_id}
    for _ in range(10):
        w.now += 3.5
        w.channel.observe(w.seen(order))
        await w.channel.tick(w.now)
    assert w.adapter.commands == [VehicleCommand.CANCEL_ORDER] * 4  # 1 + max_sends
    # A robot that never lets go does not hold the mission for ever.
    assert w.channel.releasing() == frozenset()


async def test_a_robot_that_could_not_be_told_has_its_old_order_cancelled_first() -> None:
    """Withdrawn while offline, given a new leg once back: the old order is cancelled
    before the new one goes out (else the robot refuses it: still running)."""
    w = World()
    old = w.leg()
    await w.channel.release(old)
    w.channel.observe(w.seen(w.adapter.orders[0]))
    _gone(w)
    await w.channel.withdraw(old, LegFailure.VEHICLE_OFFLINE)
    w.state()
    w.channel.observe(w.seen(w.adapter.orders[0]))
    res = await w.channel.release(w.leg())
    assert res.ok and w.adapter.commands == [VehicleCommand.CANCEL_ORDER]
    assert len(w.adapter.orders) == 2


async def test_an_order_never_echoed_holds_no_mission_up_when_withdrawn() -> None:
    """Withdrawn before the robot echoed it (it may never have arrived): the mission is
    free at once; should the robot report it running later, it is cancelled again."""
    w = World()
    leg = w.leg()
    await w.channel.release(leg)
    order = w.adapter.orders[0]
    await w.channel.withdraw(leg, LegFailure.NOT_TAKEN)
    assert w.channel.releasing() == frozenset()
    w.now += 5
    w.channel.observe(w.seen(order))  # taken late after all
    assert w.channel.releasing() == {leg.mission_id}
    await w.channel.tick(w.now)
    assert w.adapter.commands == [VehicleCommand.CANCEL_ORDER] * 2

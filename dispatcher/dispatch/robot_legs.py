"""What a robot's reports mean for the leg it was given (pure: no I/O).

One :class:`HeldLeg` per robot leg the channel has sent: the order, when it went out and
how often, and which steps have been reported. :func:`progress_of` reads one vehicle event
against it and returns the :class:`LegProgress` it means, in order, and whether the leg is
over (finished, refused or failed). VDA 5050 terms (§6.6, §6.10, §6.11): the order is
*taken* when the state echoes its orderId and orderUpdateId; errors of type orderError,
orderUpdateError or noRouteError reject it; a FATAL error or a FAILED action fails it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dispatcher.dispatch.legs import (
    Leg,
    LegFailure,
    LegProgress,
    LegProgressKind,
    StopAction,
)
from dispatcher.links.vehicle_events import (
    ActionStateChanged,
    ErrorsChanged,
    NodeReached,
    OrderStateSeen,
    VehicleEvent,
)
from protocols.vda5050.models import Order

#: Error types with which a robot refuses an order (VDA 5050 2.0 §6.6.4, §6.10.6).
REJECTING_ERRORS = frozenset({"orderError", "orderUpdateError", "noRouteError"})

K = LegProgressKind

#: The VDA 5050 action of each kind of stop, and back.
ACTION_OF_STOP = {
    StopAction.PICK: "pick",
    StopAction.DROP: "drop",
    StopAction.CHARGE: "startCharging",
}
STOP_OF_ACTION = {v: k for k, v in ACTION_OF_STOP.items()}


@dataclass
class HeldLeg:
    """A leg sent to a robot, and what has been heard of it so far."""

    leg: Leg
    order: Order
    sent_at: float
    sends: int = 1
    taken: bool = False
    #: An order update was sent and its orderUpdateId not echoed yet.
    update_pending: bool = False
    #: actionId -> what it does, for the leg's own stop actions.
    actions: dict[str, StopAction] = field(default_factory=dict)
    #: sequenceId of the node of each stop action, by actionId.
    action_nodes: dict[str, int] = field(default_factory=dict)
    done: set[K] = field(default_factory=set)
    finished_actions: set[str] = field(default_factory=set)

    @classmethod
    def of(
        cls, leg: Leg, order: Order, now: float, kinds: Mapping[str, StopAction] | None = None
    ) -> HeldLeg:
        """Hold ``leg``, sent now as ``order``; ``kinds``: action type -> kind of stop as
        the order writes them (default: VDA 5050's pick, drop, startCharging)."""
        kinds = STOP_OF_ACTION if kinds is None else kinds
        held = cls(leg, order, now)
        for node in order.nodes:
            for action in node.actions:
                kind = kinds.get(action.action_type)
                if kind is not None and node.released:
                    held.actions[action.action_id] = kind
                    held.action_nodes[action.action_id] = node.sequence_id
        return held

    @property
    def order_id(self) -> str:
        return self.order.order_id

    def progress(
        self, kind: K, at: float, failure: LegFailure | None = None, detail: str = ""
    ) -> list[LegProgress]:
        """``kind`` once: a step reported again (a repeated state) is not news."""
        if kind in self.done:
            return []
        self.done.add(kind)
        leg = self.leg
        return [LegProgress(leg.leg_id, leg.vehicle_id, leg.mission_id, kind, at, failure, detail)]

    def node_of(self, stop: StopAction) -> int | None:
        """The sequenceId of the node where ``stop`` is served."""
        for action_id, kind in self.actions.items():
            if kind is stop:
                return self.action_nodes[action_id]
        return None


#: Terminal kinds: after one of these the channel lets go of the leg.
TERMINAL = frozenset({K.FINISHED, K.REFUSED, K.FAILED})


def _taken(held: HeldLeg, ev: OrderStateSeen) -> list[LegProgress]:
    if ev.order_id != held.order_id or ev.order_update_id < held.order.order_update_id:
        return []
    held.update_pending = False
    if held.taken:
        return []
    held.taken = True
    out = held.progress(K.ACCEPTED, ev.at)
    first = held.leg.stops[0].action if held.leg.stops else None
    if first is StopAction.PICK:
        out += held.progress(K.TO_PICKUP, ev.at)
    return out


def _arrived(held: HeldLeg, ev: NodeReached) -> list[LegProgress]:
    if ev.order_id != held.order_id:
        return []
    out: list[LegProgress] = []
    pick, drop = held.node_of(StopAction.PICK), held.node_of(StopAction.DROP)
    if pick is not None and ev.sequence_id >= pick:
        out += held.progress(K.PICKUP_ARRIVED, ev.at)
    if drop is not None and ev.sequence_id >= drop:
        out += held.progress(K.DROPOFF_ARRIVED, ev.at)
    return out


def _action(held: HeldLeg, ev: ActionStateChanged) -> list[LegProgress]:
    stop = held.actions.get(ev.action_id)
    if stop is None:
        return []
    status = str(ev.status)
    if status == "FAILED":
        return held.progress(K.FAILED, ev.at, LegFailure.ACTION_FAILED, f"{stop.value} failed")
    out: list[LegProgress] = []
    if stop is StopAction.CHARGE and status in ("RUNNING", "FINISHED"):
        out += held.progress(K.CHARGING, ev.at)
    if status != "FINISHED":
        return out
    held.finished_actions.add(ev.action_id)
    if stop is StopAction.PICK:
        out += held.progress(K.PICKUP_ARRIVED, ev.at)
        out += held.progress(K.PICKED_UP, ev.at)
        if held.node_of(StopAction.DROP) is not None:
            out += held.progress(K.TO_DROPOFF, ev.at)
    elif stop is StopAction.DROP:
        out += held.progress(K.DROPOFF_ARRIVED, ev.at)
        out += held.progress(K.DROPPED_OFF, ev.at)
    if held.finished_actions >= held.actions.keys():
        out += held.progress(K.FINISHED, ev.at)
    return out


def _errors(held: HeldLeg, ev: ErrorsChanged) -> list[LegProgress]:
    for err in ev.errors:
        if err.type in REJECTING_ERRORS:
            detail = f"{err.type}: {err.description}".rstrip(": ")
            return held.progress(K.REFUSED, ev.at, LegFailure.ORDER_REJECTED, detail)
    for err in ev.errors:
        if err.level == "FATAL":
            detail = f"{err.type}: {err.description}".rstrip(": ")
            return held.progress(K.FAILED, ev.at, LegFailure.FATAL_ERROR, detail)
    return []


def progress_of(held: HeldLeg, event: VehicleEvent) -> list[LegProgress]:
    """What ``event`` (from the leg's robot) means for ``held``; updates ``held``."""
    if isinstance(event, OrderStateSeen):
        return _taken(held, event)
    if isinstance(event, NodeReached):
        return _arrived(held, event)
    if isinstance(event, ActionStateChanged):
        return _action(held, event)
    if isinstance(event, ErrorsChanged):
        return _errors(held, event)
    return []


def order_lost(held: HeldLeg, ev: OrderStateSeen) -> bool:
    """Whether a robot that had taken the order reports another one (or none): it lost it.

    A robot keeps reporting a finished or cancelled orderId until it gets a new order, so
    a different id after the echo means a restart or a reset, not progress.
    """
    return held.taken and ev.order_id != held.order_id

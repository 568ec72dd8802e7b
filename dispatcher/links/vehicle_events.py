"""Typed events the vehicle links publish for the rest of the daemon (pure: no I/O).

The links turn what vehicles report about *work* into these: a driver's answer to an
offer, its trip progress and its acknowledgement of a command; a robot reaching a node,
an action changing state (the action id of an instant action is the command's
correlation id, so that is VDA 5050's command acknowledgement) and its errors changing.
They travel through one bounded :class:`~dispatcher.links.event_bus.VehicleEventBus`;
the dispatch loop is their consumer. Position, battery and liveness are not events here:
they are state, kept by the registry.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from fleet.model import VehicleError
from protocols.driver.models import AckResult, Decision, TripEventKind
from protocols.vda5050.base import ActionStatus


@dataclass(frozen=True, slots=True)
class OfferAnswered:
    """A driver accepted or declined a job offer."""

    vehicle_id: uuid.UUID
    at: float
    offer_id: str
    decision: Decision
    reason: str | None


@dataclass(frozen=True, slots=True)
class TripProgressed:
    """A driver reported progress on an accepted mission."""

    vehicle_id: uuid.UUID
    at: float
    mission_id: str
    event: TripEventKind
    lat: float | None
    lon: float | None


@dataclass(frozen=True, slots=True)
class CommandAcked:
    """A driver's app answered a command (``correlation_id`` is the command's)."""

    vehicle_id: uuid.UUID
    at: float
    correlation_id: str
    result: AckResult
    reason: str | None


@dataclass(frozen=True, slots=True)
class NodeReached:
    """A robot's ``lastNodeId`` moved on (it reached or passed a node of its order)."""

    vehicle_id: uuid.UUID
    at: float
    order_id: str | None
    node_id: str
    sequence_id: int


@dataclass(frozen=True, slots=True)
class ActionStateChanged:
    """A robot reported a new status for one action (order action or instant action)."""

    vehicle_id: uuid.UUID
    at: float
    action_id: str
    action_type: str | None
    status: ActionStatus


@dataclass(frozen=True, slots=True)
class ErrorsChanged:
    """A robot's list of errors changed (``errors`` is the new list, maybe empty)."""

    vehicle_id: uuid.UUID
    at: float
    errors: tuple[VehicleError, ...]


@dataclass(frozen=True, slots=True)
class OrderStateSeen:
    """A robot's state said something new about its order, or it answered a stateRequest.

    Published when any field here changes and on the first state after fleetd (or the
    robot) connected. ``order_id`` echoing what was sent is VDA 5050's acknowledgement of
    an order (orders travel at QoS 0); ``node_ids_left`` are its nodeStates, in order.
    """

    vehicle_id: uuid.UUID
    at: float
    order_id: str | None
    order_update_id: int
    last_node_id: str | None
    last_node_sequence_id: int
    node_ids_left: tuple[str, ...]
    driving: bool
    e_stop: str
    operating_mode: str


VehicleEvent = (
    OfferAnswered
    | TripProgressed
    | CommandAcked
    | NodeReached
    | ActionStateChanged
    | ErrorsChanged
    | OrderStateSeen
)

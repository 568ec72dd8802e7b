"""What the dispatch engine hands a vehicle, and what it hears back (pure: no I/O).

The planner decides which vehicle serves which mission and in what order; the engine
releases only the *next leg* of a vehicle's plan (the rest stays the horizon). A
:class:`Leg` is that unit of work: drive to the pickup, pick up, drive to the dropoff,
drop (or drive to a charger and charge). Each kind of vehicle turns a leg into its own
protocol through a :class:`LegChannel` (a VDA 5050 order for a robot, a job offer for a
driver) and turns what the vehicle reports back into :class:`LegProgress`, which the
engine applies to the mission (mission events through :mod:`dispatcher.ops`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from dispatcher.links.commands import CommandResult
from dispatcher.links.vehicle_events import VehicleEvent


class StopAction(StrEnum):
    """What happens at a stop."""

    PICK = "pick"
    DROP = "drop"
    CHARGE = "charge"


@dataclass(frozen=True, slots=True)
class Stop:
    """One place a leg visits. Robots use ``node_id`` (a layout node); drivers lat/lon."""

    place: str
    node_id: str | None
    lat: float
    lon: float
    action: StopAction
    service_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Leg:
    """The next piece of work released to one vehicle.

    ``leg_id`` is unique per release (a re-release after a refusal gets a new one); a
    robot's orderId and a driver's offer id derive from it. ``mission_id`` is ``None``
    for a charging trip. ``horizon`` lists the stops planned after this leg: known to the
    engine, not released (a robot may get them as unreleased horizon nodes).
    """

    leg_id: str
    vehicle_id: uuid.UUID
    facility_id: uuid.UUID
    mission_id: uuid.UUID | None
    stops: tuple[Stop, ...]
    horizon: tuple[Stop, ...] = ()
    priority: str = "normal"
    notes: str | None = None


class LegProgressKind(StrEnum):
    """What a vehicle reported about a leg, in the order it normally happens."""

    ACCEPTED = "accepted"  # robot: order echoed in state; driver: offer accepted
    REFUSED = "refused"  # robot: order/noRoute error; driver: declined or offer expired
    TO_PICKUP = "to_pickup"
    PICKUP_ARRIVED = "pickup_arrived"
    PICKED_UP = "picked_up"
    TO_DROPOFF = "to_dropoff"
    DROPOFF_ARRIVED = "dropoff_arrived"
    DROPPED_OFF = "dropped_off"
    CHARGING = "charging"
    FINISHED = "finished"  # every stop done (after DROPPED_OFF, or a charge ended)
    FAILED = "failed"  # fatal error, action FAILED, vehicle lost mid-leg


class LegFailure(StrEnum):
    """Why a leg was refused or failed (mission events carry it as the reason)."""

    DECLINED = "declined"
    OFFER_EXPIRED = "offer_expired"
    ORDER_REJECTED = "order_rejected"  # orderError / orderUpdateError / noRouteError
    NOT_TAKEN = "not_taken"  # the robot never echoed the order after the re-sends
    FATAL_ERROR = "fatal_error"
    ACTION_FAILED = "action_failed"
    VEHICLE_OFFLINE = "vehicle_offline"
    NOT_IN_CONTROL = "not_in_control"  # robot in MANUAL / SERVICE / TEACHIN
    CANCELLED = "cancelled"  # withdrawn by fleetd (operator cancel, reassignment)
    VEHICLE_STUCK = "vehicle_stuck"  # no progress for dispatch.stuck_after_s (vehicle_sense)
    BATTERY_CRITICAL = "battery_critical"  # at or below alerts.critical_battery_pct


@dataclass(frozen=True, slots=True)
class LegProgress:
    """One step of a leg, reported by its channel to the engine."""

    leg_id: str
    vehicle_id: uuid.UUID
    mission_id: uuid.UUID | None
    kind: LegProgressKind
    at: float
    failure: LegFailure | None = None
    detail: str = ""


class LegChannel(Protocol):
    """One kind of vehicle's way of carrying out legs (robot: orders; driver: offers).

    ``release`` and ``withdraw`` send. ``observe`` is synchronous and cheap (called on the
    event loop for every vehicle event) and returns the progress it recognised, in order;
    ``tick`` runs about once a second and may send (re-sends, expiry notices). ``forget``
    never sends.
    """

    async def release(self, leg: Leg) -> CommandResult:
        """Send ``leg`` to its vehicle (robot order, driver offer)."""
        ...

    async def withdraw(self, leg: Leg, why: LegFailure) -> CommandResult:
        """Take ``leg`` back (robot ``cancelOrder``, driver ``cancel_job``)."""
        ...

    def observe(self, event: VehicleEvent) -> Sequence[LegProgress]:
        """What ``event`` means for the legs this channel holds."""
        ...

    async def tick(self, now: float) -> Sequence[LegProgress]:
        """Time-driven progress: offer expiry, an order never taken, re-sends due."""
        ...

    def releasing(self) -> frozenset[uuid.UUID]:
        """Missions taken back from a vehicle that may still be carrying them out: the
        engine gives them to no other vehicle until this vehicle has let go."""
        ...

    def forget(self, vehicle_id: uuid.UUID) -> None:
        """Stop following the vehicle's legs without a word to it: another daemon
        dispatches its facility now (leadership lost) and carries on with them."""
        ...

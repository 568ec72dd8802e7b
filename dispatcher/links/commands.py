"""What can be asked of a vehicle, and the closed set of answers (pure: no I/O).

Every command gets a correlation id and a :class:`CommandResult`: ``done`` (handed to the
broker session for delivery at QoS 1), ``retry`` (not sent now: broker or Redis away,
vehicle offline) or ``impossible`` (unknown vehicle, a command that does not apply to
it, a robot the master control is not in charge of). :class:`CommandReason` says which,
so callers branch on a value, never on the text of ``detail``. Model: rmf_demos
``RobotClientAPI`` and its result enum.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class CommandOutcome(StrEnum):
    DONE = "done"
    RETRY = "retry"
    IMPOSSIBLE = "impossible"


class VehicleCommand(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL_ORDER = "cancel_order"
    CHARGE = "charge"
    MAINTENANCE_ON = "maintenance_on"
    MAINTENANCE_OFF = "maintenance_off"
    EMERGENCY_STOP = "emergency_stop"
    ORDER = "order"
    OFFER = "offer"
    STATE_REQUEST = "state_request"  # robot: ask for a state now (reconciling orders)


#: The commands that only switch fleetd's own maintenance flag (and tell a driver).
MAINTENANCE_COMMANDS = frozenset({VehicleCommand.MAINTENANCE_ON, VehicleCommand.MAINTENANCE_OFF})


class CommandReason(StrEnum):
    """Why a command ended as it did; each reason belongs to one outcome."""

    SENT = "sent"  # done: on its way at QoS 1
    FLAG_SET = "flag_set"  # done: fleetd's own flag, nothing sent
    VEHICLE_OFFLINE = "vehicle_offline"  # retry
    BROKER_DOWN = "broker_down"  # retry
    STORE_DOWN = "store_down"  # retry: Redis (header counters) away
    UNKNOWN_VEHICLE = "unknown_vehicle"  # impossible
    NOT_SUPPORTED = "not_supported"  # impossible: not a command for this kind of vehicle
    NOT_IN_CONTROL = "not_in_control"  # impossible: robot in MANUAL/SERVICE/TEACHIN mode
    NO_ROUTE = "no_route"  # impossible: the layout has no path to the leg's stops

    @property
    def outcome(self) -> CommandOutcome:
        """The outcome this reason belongs to."""
        return _OUTCOME_OF[self]


_OUTCOME_OF: dict[CommandReason, CommandOutcome] = {
    CommandReason.SENT: CommandOutcome.DONE,
    CommandReason.FLAG_SET: CommandOutcome.DONE,
    CommandReason.VEHICLE_OFFLINE: CommandOutcome.RETRY,
    CommandReason.BROKER_DOWN: CommandOutcome.RETRY,
    CommandReason.STORE_DOWN: CommandOutcome.RETRY,
    CommandReason.UNKNOWN_VEHICLE: CommandOutcome.IMPOSSIBLE,
    CommandReason.NOT_SUPPORTED: CommandOutcome.IMPOSSIBLE,
    CommandReason.NOT_IN_CONTROL: CommandOutcome.IMPOSSIBLE,
    CommandReason.NO_ROUTE: CommandOutcome.IMPOSSIBLE,
}


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What became of one command."""

    vehicle_id: uuid.UUID
    command: VehicleCommand
    outcome: CommandOutcome
    correlation_id: str
    #: Human-readable; for logs, audit rows and problem documents, not for branching.
    detail: str = ""
    #: What went on the wire (topic, headerId), for the audit trail.
    sent: Mapping[str, object] = field(default_factory=dict)
    reason: CommandReason | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is CommandOutcome.DONE


def result(
    vehicle_id: uuid.UUID,
    command: VehicleCommand,
    reason: CommandReason,
    correlation_id: str,
    detail: str,
    sent: Mapping[str, object] | None = None,
) -> CommandResult:
    """A result whose outcome follows from its reason."""
    return CommandResult(
        vehicle_id, command, reason.outcome, correlation_id, detail, sent or {}, reason
    )

"""The gate between the dispatch engine and the vehicles: only the facility's leader sends.

With several daemons on one broker and database, exactly one is active per facility
(:mod:`dispatcher.leadership`). The engine asks a :class:`FacilityGate` before it plans
or writes for a facility, and carries the gate's :class:`~dispatcher.leadership.state.Fence`
on every mission write. :class:`GatedChannel` wraps each kind of vehicle's
:class:`~dispatcher.dispatch.legs.LegChannel` so that no order, offer or cancel goes out
for a vehicle of a facility this daemon does not lead (checked right before the send),
and so that a standby does not act on what those vehicles report (a standby's robot
channel would otherwise see the leader's orders as unknown and cancel them).

The fencing token is not written into the VDA 5050 order: the orderId format is fixed
(``leg_id``, which tests and the robots' echo rely on) and the protocol has no field for
it. The check before each send plus the fenced mission writes are what keep a stale
leader from acting; a stale leader's order can at worst race the step-down by one send,
and the new leader cancels an order it does not know, as after a restart.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from dispatcher.dispatch.legs import Leg, LegChannel, LegFailure, LegProgress
from dispatcher.leadership.state import Fence
from dispatcher.links.commands import CommandReason, CommandResult, VehicleCommand, result
from dispatcher.links.vehicle_events import OrderStateSeen, VehicleEvent
from fleet.model import VehicleKind


class FacilityGate(Protocol):
    """Which facilities this daemon leads now (implemented by
    :class:`dispatcher.leadership.service.Leadership`)."""

    def leads(self, facility_id: uuid.UUID) -> bool:
        """Whether this daemon may dispatch ``facility_id`` now."""
        ...

    def fence(self, facility_id: uuid.UUID) -> Fence | None:
        """The fence mission writes for ``facility_id`` carry; None when not leading."""
        ...

    def fenced_out(self, facility_id: uuid.UUID) -> None:
        """A fenced write was refused: step down for ``facility_id`` at once."""
        ...


#: Vehicle id -> its facility (None: unknown vehicle).
FacilityOf = Callable[[uuid.UUID], uuid.UUID | None]


class GatedChannel:
    """A :class:`LegChannel` that sends and hears only for facilities the gate says this
    daemon leads (see the module docstring). Other attributes are the inner channel's."""

    def __init__(self, inner: LegChannel, gate: FacilityGate, facility_of: FacilityOf) -> None:
        self.inner = inner
        self._gate = gate
        self._facility_of = facility_of
        #: The last order state each robot of a facility led elsewhere reported: shown to
        #: the inner channel once this daemon takes the facility over.
        self._unseen: dict[uuid.UUID, OrderStateSeen] = {}

    def _led(self, vehicle_id: uuid.UUID) -> bool:
        facility = self._facility_of(vehicle_id)
        return facility is None or self._gate.leads(facility)

    @staticmethod
    def _standby(leg: Leg, command: VehicleCommand) -> CommandResult:
        return result(
            leg.vehicle_id,
            command,
            CommandReason.NOT_SUPPORTED,
            leg.leg_id,
            "standby: another daemon leads this facility",
        )

    async def release(self, leg: Leg) -> CommandResult:
        if not self._gate.leads(leg.facility_id):
            return self._standby(leg, VehicleCommand.ORDER)
        return await self.inner.release(leg)

    async def withdraw(self, leg: Leg, why: LegFailure) -> CommandResult:
        if not self._gate.leads(leg.facility_id):
            self.forget(leg.vehicle_id)
            return self._standby(leg, VehicleCommand.CANCEL_ORDER)
        return await self.inner.withdraw(leg, why)

    def observe(self, event: VehicleEvent) -> Sequence[LegProgress]:
        if not self._led(event.vehicle_id):
            if isinstance(event, OrderStateSeen):
                self._unseen[event.vehicle_id] = event
            return ()
        self._unseen.pop(event.vehicle_id, None)
        return self.inner.observe(event)

    async def tick(self, now: float) -> Sequence[LegProgress]:
        """The inner channel's tick; first, after a takeover, what the facility's robots
        last said of their orders: the robot link only reports an order state that
        changed, so a robot standing still would otherwise never show the order the old
        leader gave it. The inner channel reconciles it as after a restart (an order it
        does not know is cancelled; the mission is planned again or its rider resumed)."""
        out: list[LegProgress] = []
        for vehicle_id, seen in list(self._unseen.items()):
            if self._led(vehicle_id):
                del self._unseen[vehicle_id]
                out.extend(self.inner.observe(seen))
        out.extend(p for p in await self.inner.tick(now) if self._led(p.vehicle_id))
        return out

    def forget(self, vehicle_id: uuid.UUID) -> None:
        """Drop what the inner channel holds for the vehicle, sending nothing."""
        self.inner.forget(vehicle_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def gate_channels(
    channels: Mapping[VehicleKind, LegChannel], gate: FacilityGate, facility_of: FacilityOf
) -> dict[VehicleKind, LegChannel]:
    """Each channel behind the gate."""
    return {kind: GatedChannel(ch, gate, facility_of) for kind, ch in channels.items()}

"""The one place every command to a vehicle goes through.

Operators (through the API), the dispatch engine and the charging policy all call
:class:`VehicleCommander`; nothing else publishes to a vehicle. It checks what holds for
every kind (the vehicle is known, the command applies to its kind, it is online), then
hands the command to the :class:`~dispatcher.links.vehicle.VehicleAdapter` of the
vehicle's kind. Each command gets a correlation id and a closed
:class:`~dispatcher.links.commands.CommandResult`; whether the vehicle *executed* it
arrives later as a typed event (a robot's action state, a driver's command ack).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable

from dispatcher.links.commands import (
    MAINTENANCE_COMMANDS,
    CommandOutcome,
    CommandReason,
    CommandResult,
    VehicleCommand,
)
from dispatcher.links.outbox import finish
from dispatcher.links.vehicle import VehicleAdapter
from fleet.model import VehicleKind
from fleet.record import VehicleRecord
from fleet.registry import FleetRegistry
from protocols.driver.models import JobOffer
from protocols.vda5050.models import Order

__all__ = [
    "CommandOutcome",
    "CommandReason",
    "CommandResult",
    "VehicleCommand",
    "VehicleCommander",
]


class VehicleCommander:
    """Sends commands to vehicles of every kind through their adapters."""

    def __init__(self, registry: FleetRegistry, adapters: Iterable[VehicleAdapter]) -> None:
        self._registry = registry
        self._adapters: dict[VehicleKind, VehicleAdapter] = {a.kind: a for a in adapters}

    # --- operator commands ------------------------------------------------------------

    async def pause(self, vehicle_id: uuid.UUID) -> CommandResult:
        return await self.command(vehicle_id, VehicleCommand.PAUSE)

    async def resume(self, vehicle_id: uuid.UUID) -> CommandResult:
        return await self.command(vehicle_id, VehicleCommand.RESUME)

    async def cancel_order(self, vehicle_id: uuid.UUID) -> CommandResult:
        return await self.command(vehicle_id, VehicleCommand.CANCEL_ORDER)

    async def send_to_charge(self, vehicle_id: uuid.UUID) -> CommandResult:
        return await self.command(vehicle_id, VehicleCommand.CHARGE)

    async def emergency_stop(self, vehicle_id: uuid.UUID) -> CommandResult:
        return await self.command(vehicle_id, VehicleCommand.EMERGENCY_STOP)

    async def set_maintenance(self, vehicle_id: uuid.UUID, on: bool) -> CommandResult:
        """Take a vehicle out of (or back into) service.

        Maintenance is fleetd's own flag: the planner skips the vehicle at once, even
        while it is offline. The adapter then tells the vehicle if its protocol has a
        way to (drivers do; robots do not).
        """
        command = VehicleCommand.MAINTENANCE_ON if on else VehicleCommand.MAINTENANCE_OFF
        correlation_id = uuid.uuid4().hex
        target = self._resolve(vehicle_id, command, correlation_id)
        if isinstance(target, CommandResult):
            return target
        rec, adapter = target
        self._registry.set_maintenance(rec, on, time.time())
        if not rec.online:
            return finish(
                vehicle_id, command, CommandReason.FLAG_SET, correlation_id, "maintenance flag set"
            )
        return await adapter.announce_maintenance(rec, on, correlation_id)

    async def command(self, vehicle_id: uuid.UUID, command: VehicleCommand) -> CommandResult:
        """Send one of the operator commands to a vehicle of any kind."""
        if command in MAINTENANCE_COMMANDS:
            return await self.set_maintenance(vehicle_id, command is VehicleCommand.MAINTENANCE_ON)
        correlation_id = uuid.uuid4().hex
        target = self._resolve(vehicle_id, command, correlation_id, online=True)
        if isinstance(target, CommandResult):
            return target
        rec, adapter = target
        return await adapter.command(rec, command, correlation_id)

    # --- dispatch engine --------------------------------------------------------------

    async def send_order(self, vehicle_id: uuid.UUID, order: Order) -> CommandResult:
        """Send a mission leg as a VDA 5050 order (its header is filled in on the way)."""
        correlation_id = f"{order.order_id}:{order.order_update_id}"
        target = self._resolve(vehicle_id, VehicleCommand.ORDER, correlation_id, online=True)
        if isinstance(target, CommandResult):
            return target
        rec, adapter = target
        return await adapter.send_order(rec, order)

    async def offer_job(self, vehicle_id: uuid.UUID, offer: JobOffer) -> CommandResult:
        """Offer a job to a driver; the answer arrives as an ``OfferAnswered`` event."""
        target = self._resolve(vehicle_id, VehicleCommand.OFFER, offer.offer_id, online=True)
        if isinstance(target, CommandResult):
            return target
        rec, adapter = target
        return await adapter.offer_job(rec, offer)

    # --- internals --------------------------------------------------------------------

    def _resolve(
        self,
        vehicle_id: uuid.UUID,
        command: VehicleCommand,
        correlation_id: str,
        *,
        online: bool = False,
    ) -> tuple[VehicleRecord, VehicleAdapter] | CommandResult:
        """The vehicle's record and adapter, or the result refusing the command."""
        rec = self._registry.record(vehicle_id)
        if rec is None:
            reason, detail = CommandReason.UNKNOWN_VEHICLE, "unknown vehicle"
        elif (adapter := self._adapters.get(rec.key.kind)) is None or not adapter.supports(command):
            reason, detail = CommandReason.NOT_SUPPORTED, f"not a {rec.key.kind.value} command"
        elif online and not rec.online:
            reason, detail = CommandReason.VEHICLE_OFFLINE, "vehicle is offline"
        else:
            return rec, adapter
        return finish(vehicle_id, command, reason, correlation_id, detail)

"""The operator's "charge" command while the dispatch engine runs: through the engine.

Sending a robot to charge is a leg like any other (a station chosen by the charging
policy, never one another robot uses), so while the engine runs it takes the command: the
robot goes to the nearest free station once it has no mission. Every other command, and
"charge" without an engine or for a driver, goes to the vehicle's link as before.
"""

from __future__ import annotations

import uuid
from typing import Protocol

from dispatcher.links.commands import CommandReason, CommandResult, VehicleCommand, result
from dispatcher.ops.fleet_access import Commander


class ChargeRequests(Protocol):
    """The engine's side: True when it took the request (a robot it dispatches)."""

    def request_charge(self, vehicle_id: uuid.UUID) -> bool: ...


class ChargeRoutingCommander:
    """A :class:`Commander` that hands ``charge`` to the dispatch engine."""

    def __init__(self, inner: Commander, engine: ChargeRequests) -> None:
        self._inner = inner
        self._engine = engine

    async def command(self, vehicle_id: uuid.UUID, command: VehicleCommand) -> CommandResult:
        if command is VehicleCommand.CHARGE and self._engine.request_charge(vehicle_id):
            return result(
                vehicle_id,
                command,
                CommandReason.FLAG_SET,
                uuid.uuid4().hex,
                "the dispatch engine sends it to a free charging station once it has no mission",
            )
        return await self._inner.command(vehicle_id, command)

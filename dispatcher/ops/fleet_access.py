"""What vehicle operations need from the rest of the daemon: the live fleet and the commander.

Protocols, so the operations do not depend on how either is built (the registry and the
MQTT links); tests and the dispatch engine pass the real ones.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Protocol

from dispatcher.links.commander import CommandResult, VehicleCommand
from fleet.model import VehicleFacts, VehicleView


class FleetLookup(Protocol):
    """Read access to live fleet state (the registry)."""

    def snapshot(self) -> tuple[VehicleView, ...]: ...

    def get(self, vehicle_id: uuid.UUID) -> VehicleView | None: ...

    def select(self, keep: Callable[[VehicleFacts], bool]) -> tuple[VehicleView, ...]: ...


class Commander(Protocol):
    """Sends one command to one vehicle and says what became of it."""

    async def command(self, vehicle_id: uuid.UUID, command: VehicleCommand) -> CommandResult: ...

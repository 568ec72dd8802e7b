"""The handles the daemon's tasks and its HTTP API share, built once by the supervisor."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import asyncpg
import redis.asyncio as aioredis

from dispatcher.config import Settings
from dispatcher.missions.domain import MissionRecord
from fleet.model import VehicleView

if TYPE_CHECKING:
    from dispatcher.links.commander import VehicleCommander
    from dispatcher.ops.resolve import DispatchHandle


class FleetView(Protocol):
    """Read access to live fleet state (implemented by ``fleet.registry.FleetRegistry``)."""

    def snapshot(self) -> tuple[VehicleView, ...]: ...

    def get(self, vehicle_id: uuid.UUID) -> VehicleView | None: ...


@dataclass(slots=True)
class Services:
    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    fleet: FleetView
    #: Every command to a vehicle goes through this (None only in API tests without links).
    commander: VehicleCommander | None
    #: True while the MQTT session to the broker is up.
    broker_connected: Callable[[], bool]
    #: Monotonic time the supervisor's main loop last ticked (liveness for /healthz).
    loop_heartbeat: Callable[[], float]
    #: The dispatch engine's operator side (held missions, resolve), None when it is off.
    dispatch: DispatchHandle | None = None
    #: Told of each mission this process creates, once committed (the dispatch engine's
    #: hand-off; :class:`~dispatcher.ops.missions.MissionOps` ``on_created``).
    mission_created: Callable[[MissionRecord], None] | None = None

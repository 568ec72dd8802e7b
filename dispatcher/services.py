"""The handles the daemon's tasks and its HTTP API share, built once by the supervisor."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import asyncpg
import redis.asyncio as aioredis

from dispatcher.config import Settings
from dispatcher.missions.domain import MissionRecord
from fleet.model import VehicleFacts, VehicleView

if TYPE_CHECKING:
    from dispatcher.facility_layouts import FacilityLayouts
    from dispatcher.links.commander import VehicleCommander
    from dispatcher.ops.durable import DurableWrites
    from dispatcher.ops.resolve import DispatchHandle


class FleetView(Protocol):
    """Read access to live fleet state (implemented by ``fleet.registry.FleetRegistry``)."""

    def snapshot(self) -> tuple[VehicleView, ...]: ...

    def get(self, vehicle_id: uuid.UUID) -> VehicleView | None: ...

    def select(self, keep: Callable[[VehicleFacts], bool]) -> tuple[VehicleView, ...]: ...


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
    #: Facility key -> its loaded route graphs (``GET /v1/facilities/{key}/layout``).
    layouts: Mapping[str, FacilityLayouts] = field(default_factory=dict)
    #: Awaited after a zone is created or deleted: the route graphs reload their zones
    #: (:class:`dispatcher.route_zones.RouteZones`). None: nothing to tell.
    zones_changed: Callable[[], Awaitable[None]] | None = None
    #: The write path's spool while PostgreSQL is away (None in API tests without one).
    durable: DurableWrites | None = None
    #: The broker's own dropped-message count ($SYS; None until it reported one) and how
    #: much it grew since fleetd first read it.
    broker_dropped: Callable[[], tuple[int | None, int]] | None = None
    #: Told of each mission this process creates, once committed (the dispatch engine's
    #: hand-off; :class:`~dispatcher.ops.missions.MissionOps` ``on_created``).
    mission_created: Callable[[MissionRecord], None] | None = None
    #: True once shutdown began: new missions are refused (503), /readyz says "draining".
    draining: Callable[[], bool] | None = None

    def is_draining(self) -> bool:
        """Whether the daemon is shutting down (no new work is taken)."""
        return self.draining is not None and self.draining()

    #: Facility key -> "active" | "standby" for this daemon (None: leadership off).
    leadership: Callable[[], dict[str, str]] | None = None

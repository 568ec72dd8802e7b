"""One vehicle's live state, as the registry keeps it, and who reads what changed.

Only the registry (:mod:`fleet.registry`) writes a :class:`VehicleRecord`; the flush tasks
and the vehicle links read it. Everyone else sees :class:`~fleet.model.VehicleView`
snapshots. Pure data.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import IntFlag

from fleet.model import (
    Capabilities,
    DriverAvailability,
    GeoPosition,
    MapPose,
    OfflineReason,
    OperatingMode,
    VehicleError,
    VehicleKey,
    VehicleStatus,
    VehicleView,
)


class Consumer(IntFlag):
    """Who reads what changed. Each has its own list, so one lagging never starves another."""

    GEO = 1  # Redis GEO live positions
    POSITIONS = 2  # Postgres vehicle_positions
    VEHICLES = 4  # Postgres vehicles (status, battery, online, last_seen)
    ALERTS = 8  # the alert watch (re-judges only the vehicles that changed)


@dataclass(slots=True)
class VehicleRecord:
    """Mutable live state of one vehicle. Only the registry's owner (the event loop) writes it."""

    id: uuid.UUID
    facility_id: uuid.UUID
    key: VehicleKey
    name: str
    capabilities: Capabilities = field(default_factory=Capabilities)
    online: bool = False
    last_seen: float | None = None
    offline_reason: OfflineReason | None = None
    battery_pct: float | None = None
    charging: bool = False
    map_pose: MapPose | None = None
    pose_pending: bool = False  # map pose not yet converted to WGS84
    unknown_map: bool = False
    lat: float | None = None
    lon: float | None = None
    heading_deg: float | None = None
    accuracy_m: float | None = None
    position_time: float | None = None
    speed_mps: float | None = None
    operating_mode: OperatingMode | None = None
    driving: bool = False
    paused: bool = False
    safety_stop: bool = False
    working: bool = False
    availability: DriverAvailability | None = None
    errors: tuple[VehicleError, ...] = ()
    order_id: str | None = None
    order_update_id: int | None = None
    last_node_id: str | None = None
    mission_id: uuid.UUID | None = None
    maintenance: bool = False
    status: VehicleStatus = VehicleStatus.OFFLINE
    view: VehicleView | None = None  # cached snapshot entry, dropped on every change
    #: What ``status`` was derived from; equal inputs give the same status, so most
    #: messages (same mode, same flags, no errors) skip the derivation.
    status_inputs: tuple[object, ...] = ()
    dirty: int = 0  # Consumer flags of the writers that have yet to see the latest change
    #: The facility is fixed (configured, stored, or placed by its first known map): a
    #: report on another facility's map is refused, never followed.
    facility_pinned: bool = False
    #: History events this vehicle may still cause (a token bucket, refilled per minute).
    event_tokens: float = -1.0  # -1: full, not yet used
    event_tokens_at: float = 0.0

    def to_view(self) -> VehicleView:
        position = (
            GeoPosition(self.lat, self.lon, self.heading_deg, self.accuracy_m)
            if self.lat is not None and self.lon is not None
            else None
        )
        return VehicleView(
            id=self.id,
            facility_id=self.facility_id,
            key=self.key,
            name=self.name,
            online=self.online,
            status=self.status,
            battery_pct=self.battery_pct,
            charging=self.charging,
            last_seen=self.last_seen,
            position=position,
            map_pose=self.map_pose,
            unknown_map=self.unknown_map,
            operating_mode=self.operating_mode,
            driving=self.driving,
            paused=self.paused,
            errors=self.errors,
            order_id=self.order_id,
            order_update_id=self.order_update_id,
            mission_id=self.mission_id,
            maintenance=self.maintenance,
            capabilities=self.capabilities,
            safety_stop=self.safety_stop,
            last_node_id=self.last_node_id,
        )

"""The fleet's vocabulary: vehicle identity, status and the read-only views of live state.

Pure data, no I/O. The registry (:mod:`fleet.registry`) owns the mutable state; everyone
else (the API, the status view, the planner) sees :class:`VehicleView` snapshots.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

#: Namespace for deterministic ids derived from names (vehicles here; facilities in the
#: settings, :func:`dispatcher.config.facility_id`).
FLEETD_NAMESPACE = uuid.UUID("6f2d3c1e-8b0a-4c61-9a57-3e0f2b9d7a11")


class VehicleKind(StrEnum):
    ROBOT = "robot"
    DRIVER = "driver"


class VehicleStatus(StrEnum):
    """Operational status, one word for people and the planner.

    Stored in ``vehicles.status`` (CHECK-constrained to these values).
    """

    IDLE = "idle"  # online, free for work
    DRIVING = "driving"  # robot moving, or driver on a trip
    BUSY = "busy"  # working but not moving (robot executing an action, driver busy)
    PAUSED = "paused"
    CHARGING = "charging"
    BREAK = "break"  # driver on a break
    ERROR = "error"  # robot reports a FATAL error, or its operating mode forbids control
    MAINTENANCE = "maintenance"  # set by an operator; not dispatchable
    OFFLINE = "offline"


class ChangeKind(StrEnum):
    """What happened to a vehicle, worth a ``vehicle_events`` row (the registry's change feed)."""

    REGISTERED = "registered"
    WENT_ONLINE = "went_online"
    WENT_OFFLINE = "went_offline"
    STATUS_CHANGED = "status_changed"
    ERROR_RAISED = "error_raised"
    ERROR_CLEARED = "error_cleared"


#: The changes that are liveness transitions.
LIVENESS_CHANGES = frozenset({ChangeKind.WENT_ONLINE, ChangeKind.WENT_OFFLINE})


class OperatingMode(StrEnum):
    """A robot's operating mode (VDA 5050 ``operatingMode``): who is in control of it."""

    AUTOMATIC = "AUTOMATIC"
    SEMIAUTOMATIC = "SEMIAUTOMATIC"
    MANUAL = "MANUAL"
    SERVICE = "SERVICE"
    TEACHIN = "TEACHIN"


class DriverAvailability(StrEnum):
    """What a driver says about their own work (the driver protocol's ``availability``)."""

    ONLINE = "online"  # working and free for offers
    BUSY = "busy"  # working, not free
    BREAK = "break"
    OFFLINE = "offline"  # signed off work (the app may stay connected)


class ConnectionState(StrEnum):
    """A vehicle's own word on its connection (both protocols' ``connection`` topic)."""

    ONLINE = "ONLINE"
    OFFLINE = "OFFLINE"  # an orderly goodbye
    CONNECTION_BROKEN = "CONNECTIONBROKEN"  # the Last Will, published by the broker


class OfflineReason(StrEnum):
    HEARTBEAT_TIMEOUT = "heartbeat_timeout"
    CONNECTION_BROKEN = "connection_broken"  # Last Will
    DISCONNECTED = "disconnected"  # orderly goodbye
    STALE_RETAINED = "stale_retained"  # a retained ONLINE older than the timeout


def vehicle_id(kind: VehicleKind, manufacturer: str, serial: str) -> uuid.UUID:
    """Deterministic vehicle UUID: the same robot gets the same id on every daemon start.

    The id follows the wire identity only (not the facility), so a robot that first shows
    up on its connection topic and later reports a map keeps one id. Drivers use
    ``manufacturer=""`` and their driver id as ``serial``.

    The name hashed is the JSON array ``["vehicle", kind, manufacturer, serial]``: each
    part is quoted and escaped, so no two identities share it (joining the parts with
    ``:``, a character legal in both, made ``acme:WR/0001`` and ``acme/WR:0001`` one id).
    Vehicles stored before this derivation keep their stored ids: the registry finds a
    vehicle by its wire identity, never by recomputing the id (docs/operations.md).
    """
    name = json.dumps(["vehicle", str(kind), manufacturer, serial], separators=(",", ":"))
    return uuid.uuid5(FLEETD_NAMESPACE, name)


@dataclass(frozen=True, slots=True)
class VehicleKey:
    """How a vehicle names itself on the wire."""

    kind: VehicleKind
    manufacturer: str  # "" for drivers
    serial: str  # VDA serialNumber, or the driver id

    @property
    def id(self) -> uuid.UUID:
        return vehicle_id(self.kind, self.manufacturer, self.serial)

    @property
    def label(self) -> str:
        return f"{self.manufacturer}/{self.serial}" if self.manufacturer else self.serial


@dataclass(frozen=True, slots=True)
class MapPose:
    """A position in a facility map's local metric frame (VDA 5050 agvPosition)."""

    map_id: str
    x: float
    y: float
    theta: float


@dataclass(frozen=True, slots=True)
class GeoPosition:
    lat: float
    lon: float
    heading_deg: float | None = None
    accuracy_m: float | None = None


@dataclass(frozen=True, slots=True)
class VehicleError:
    """An error a vehicle reports (VDA 5050 ``errors[]``, or a driver's problem report)."""

    type: str
    level: str  # WARNING | FATAL
    description: str = ""


@dataclass(frozen=True, slots=True)
class Capabilities:
    wheelchair_types: tuple[str, ...] = ()
    max_payload_kg: float | None = None
    seats: int | None = None


class VehicleFacts(Protocol):
    """What a vehicle is now, read-only: a :class:`VehicleView`, or the registry's live
    record itself (a filter over the fleet reads records, so it builds no view for a
    vehicle it does not keep: see ``FleetRegistry.select``)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def facility_id(self) -> uuid.UUID: ...
    @property
    def key(self) -> VehicleKey: ...
    @property
    def name(self) -> str: ...
    @property
    def maintenance(self) -> bool: ...
    @property
    def online(self) -> bool: ...
    @property
    def last_seen(self) -> float | None: ...
    @property
    def errors(self) -> tuple[VehicleError, ...]: ...
    @property
    def status(self) -> VehicleStatus: ...
    @property
    def safety_stop(self) -> bool: ...
    @property
    def battery_pct(self) -> float | None: ...
    @property
    def charging(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class VehicleView:
    """A read-only copy of one vehicle's live state, as of ``as_of`` (epoch seconds)."""

    id: uuid.UUID
    facility_id: uuid.UUID
    key: VehicleKey
    name: str
    online: bool
    status: VehicleStatus
    battery_pct: float | None
    charging: bool
    last_seen: float | None  # epoch seconds of the last message received
    position: GeoPosition | None  # None when unknown (no fix, unknown map, stale)
    map_pose: MapPose | None
    unknown_map: bool
    operating_mode: OperatingMode | None
    driving: bool
    paused: bool
    errors: tuple[VehicleError, ...]
    order_id: str | None
    order_update_id: int | None
    mission_id: uuid.UUID | None
    maintenance: bool
    capabilities: Capabilities = field(default_factory=Capabilities)
    #: A robot's e-stop is engaged or a protective field is violated (VDA 5050 safetyState).
    safety_stop: bool = False
    #: A robot's last route-graph node (VDA 5050 lastNodeId), None if it reported none.
    last_node_id: str | None = None

    @property
    def kind(self) -> VehicleKind:
        return self.key.kind

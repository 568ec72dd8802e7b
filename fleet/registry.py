"""The live fleet registry: one record per vehicle of either kind, in memory.

The vehicle links write into it on every message (synchronously, on the event loop, a few
microseconds each); flush tasks read what changed (``take_dirty``) and write Redis and
Postgres in batches; the API, status view and planner read ``snapshot()``.

No I/O here. Map poses are turned into WGS84 in batches (``resolve_positions``), one pyproj
call per map, instead of once per message.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import IntFlag
from typing import Any

import numpy as np
import structlog

from dispatcher.metrics import LIVENESS_CHANGES
from fleet.liveness import is_fresh
from fleet.model import (
    Capabilities,
    GeoPosition,
    LivenessChange,
    MapPose,
    OfflineReason,
    VehicleError,
    VehicleKey,
    VehicleKind,
    VehicleStatus,
    VehicleView,
)
from fleet.status import StatusInputs, derive_status
from geo.facility_maps import FacilityMaps

log = structlog.get_logger(__name__)

#: Changes kept for the writer while Postgres is away; beyond this the oldest are dropped
#: (and counted), never blocking the links.
MAX_PENDING_CHANGES = 100_000


class Consumer(IntFlag):
    """Who reads what changed. Each has its own list, so one lagging never starves another."""

    GEO = 1  # Redis GEO live positions
    POSITIONS = 2  # Postgres vehicle_positions
    VEHICLES = 4  # Postgres vehicles (status, battery, online, last_seen)


_GEO, _POSITIONS, _VEHICLES = Consumer.GEO.value, Consumer.POSITIONS.value, Consumer.VEHICLES.value


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
    operating_mode: str | None = None
    driving: bool = False
    paused: bool = False
    working: bool = False
    availability: str | None = None
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
        )


@dataclass(frozen=True, slots=True)
class FleetChange:
    """Something worth recording about a vehicle (a ``vehicle_events`` row)."""

    vehicle_id: uuid.UUID
    facility_id: uuid.UUID
    #: registered | went_online | went_offline | status_changed | error_raised | error_cleared
    event: str
    details: dict[str, Any]
    at: float


class FleetRegistry:
    """All vehicles fleetd knows, keyed by id and by wire identity."""

    def __init__(
        self,
        *,
        maps: FacilityMaps,
        default_facility_id: uuid.UUID,
        heartbeat_timeout_s: float,
        robot_heartbeat_timeout_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._maps = maps
        self._default_facility_id = default_facility_id
        self._timeout = heartbeat_timeout_s
        self._robot_timeout = (
            heartbeat_timeout_s if robot_heartbeat_timeout_s is None else robot_heartbeat_timeout_s
        )
        self._clock = clock
        self._by_id: dict[uuid.UUID, VehicleRecord] = {}
        self._by_key: dict[VehicleKey, VehicleRecord] = {}
        # A record sits in a consumer's list once, while its flag for that consumer is set;
        # flags on the record make "already queued?" a bit test, not a set of UUIDs.
        self._dirty: dict[int, list[VehicleRecord]] = {c.value: [] for c in Consumer}
        self._pending_poses: list[VehicleRecord] = []
        # Looking a facility up by map happens on every pose: keep the answer per map.
        self._facility_of_map: dict[str, uuid.UUID | None] = {}
        self._changes: deque[FleetChange] = deque()
        self.changes_dropped = 0

    # --- lookup -----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._by_id)

    @property
    def heartbeat_timeout_s(self) -> float:
        """The longest silence any vehicle may keep and stay online."""
        return max(self._timeout, self._robot_timeout)

    def timeout_for(self, rec: VehicleRecord) -> float:
        """How long this vehicle may stay silent before it is offline."""
        return self._robot_timeout if rec.key.kind is VehicleKind.ROBOT else self._timeout

    @property
    def default_facility_id(self) -> uuid.UUID:
        return self._default_facility_id

    @property
    def maps(self) -> FacilityMaps:
        return self._maps

    def record(self, vehicle_id: uuid.UUID) -> VehicleRecord | None:
        return self._by_id.get(vehicle_id)

    def record_by_key(self, key: VehicleKey) -> VehicleRecord | None:
        return self._by_key.get(key)

    def records(self) -> Iterable[VehicleRecord]:
        return self._by_id.values()

    def get(self, vehicle_id: uuid.UUID) -> VehicleView | None:
        rec = self._by_id.get(vehicle_id)
        return None if rec is None else self._view(rec)

    def find(self, key: VehicleKey) -> VehicleView | None:
        rec = self._by_key.get(key)
        return None if rec is None else self._view(rec)

    def snapshot(self) -> tuple[VehicleView, ...]:
        """A consistent, immutable copy of every vehicle; unchanged vehicles reuse their copy."""
        self.resolve_positions()
        return tuple(self._view(rec) for rec in self._by_id.values())

    def _view(self, rec: VehicleRecord) -> VehicleView:
        if rec.pose_pending:
            self.resolve_positions()
        if rec.view is None:
            rec.view = rec.to_view()
        return rec.view

    # --- membership -------------------------------------------------------------------

    def add(self, rec: VehicleRecord, *, announce: bool) -> VehicleRecord:
        """Add a vehicle (loaded from storage, or registered on first contact when ``announce``)."""
        if rec.id in self._by_id:
            return self._by_id[rec.id]
        rec.status = self._derive(rec)
        self._by_id[rec.id] = rec
        self._by_key[rec.key] = rec
        if announce:
            self._emit(rec, "registered", {"kind": rec.key.kind.value, "name": rec.name})
            log.info(
                "vehicle.registered",
                vehicle_id=str(rec.id),
                vehicle=rec.key.label,
                kind=rec.key.kind.value,
            )
        self._mark(rec, _VEHICLES)
        return rec

    def register(
        self, key: VehicleKey, *, facility_id: uuid.UUID | None = None, name: str | None = None
    ) -> VehicleRecord:
        """Create the record of a vehicle heard from for the first time."""
        rec = VehicleRecord(
            id=key.id,
            facility_id=facility_id or self._default_facility_id,
            key=key,
            name=name or key.serial,
        )
        return self.add(rec, announce=True)

    # --- liveness ---------------------------------------------------------------------

    def heard_from(self, rec: VehicleRecord, seen_at: float | None, now: float) -> None:
        """Note a sign of life at ``seen_at``; a fresh one brings an offline vehicle online.

        ``None`` (a retained message of unknown age) proves nothing and changes nothing.
        """
        if seen_at is None:
            return
        if rec.last_seen is None or seen_at > rec.last_seen:
            rec.last_seen = seen_at
            rec.view = None
        if not rec.online and is_fresh(rec.last_seen, now, self.timeout_for(rec)):
            rec.online = True
            rec.offline_reason = None
            self._liveness(rec, LivenessChange.WENT_ONLINE, None, now)

    def went_offline(self, rec: VehicleRecord, reason: OfflineReason, now: float) -> None:
        """The vehicle said goodbye, its Last Will arrived, or its silence outlasted the timeout."""
        if not rec.online:
            if rec.offline_reason is None:
                rec.offline_reason = reason
            return
        rec.online = False
        rec.offline_reason = reason
        self._liveness(rec, LivenessChange.WENT_OFFLINE, reason, now)

    def expire(self, now: float) -> int:
        """Turn every vehicle silent for longer than the heartbeat timeout offline."""
        expired = 0
        for rec in self._by_id.values():
            if rec.online and not is_fresh(rec.last_seen, now, self.timeout_for(rec)):
                self.went_offline(rec, OfflineReason.HEARTBEAT_TIMEOUT, now)
                expired += 1
        return expired

    def _liveness(
        self, rec: VehicleRecord, change: LivenessChange, reason: OfflineReason | None, now: float
    ) -> None:
        details: dict[str, Any] = {}
        if reason is not None:
            details["reason"] = reason.value
        if rec.last_seen is not None:
            details["last_seen_age_s"] = round(max(0.0, now - rec.last_seen), 3)
        self._emit(rec, change.value, details, at=now)
        LIVENESS_CHANGES.labels(change.value).inc()
        log.info(
            f"vehicle.{change.value}",
            vehicle_id=str(rec.id),
            vehicle=rec.key.label,
            kind=rec.key.kind.value,
            **details,
        )
        self.changed(rec, now=now)
        self._mark(rec, _GEO)  # an offline vehicle leaves the look-ups at once

    # --- updates ----------------------------------------------------------------------

    def changed(self, rec: VehicleRecord, *, now: float | None = None) -> None:
        """Call after changing a record's fields: re-derives status, schedules the writes."""
        rec.view = None
        inputs = (
            rec.online,
            rec.maintenance,
            rec.errors,
            rec.operating_mode,
            rec.charging,
            rec.paused,
            rec.driving,
            rec.working,
            rec.availability,
        )
        if inputs == rec.status_inputs:
            self._mark(rec, _VEHICLES)
            return
        rec.status_inputs = inputs
        status = self._derive(rec)
        if status is not rec.status:
            old, rec.status = rec.status, status
            self._emit(
                rec,
                "status_changed",
                {"from": old.value, "to": status.value},
                at=now,
            )
        self._mark(rec, _VEHICLES)

    def set_errors(self, rec: VehicleRecord, errors: tuple[VehicleError, ...], now: float) -> None:
        """Replace the vehicle's error list, recording errors raised and cleared."""
        if errors == rec.errors:
            return
        old = {(e.type, e.level) for e in rec.errors}
        new = {(e.type, e.level) for e in errors}
        for etype, level in sorted(new - old):
            self._emit(rec, "error_raised", {"type": etype, "level": level}, at=now)
        for etype, level in sorted(old - new):
            self._emit(rec, "error_cleared", {"type": etype, "level": level}, at=now)
        rec.errors = errors

    def set_map_pose(self, rec: VehicleRecord, pose: MapPose, at: float) -> None:
        """Record a robot's pose in its map frame; WGS84 follows in ``resolve_positions``."""
        frame = self._maps.frame(pose.map_id)
        rec.map_pose = pose
        rec.position_time = at
        rec.view = None
        if frame is None:
            if not rec.unknown_map:
                log.warning(
                    "vehicle.unknown_map",
                    vehicle_id=str(rec.id),
                    vehicle=rec.key.label,
                    map_id=pose.map_id,
                )
            # Position in an unknown frame is reported as unknown, never guessed.
            rec.unknown_map = True
            rec.pose_pending = False
            rec.lat = rec.lon = rec.heading_deg = None
        else:
            rec.unknown_map = False
            facility_id = self.facility_of_map(pose.map_id)
            if facility_id is not None and facility_id != rec.facility_id:
                rec.facility_id = facility_id
                self._mark(rec, _VEHICLES)
            if not rec.pose_pending:
                rec.pose_pending = True
                self._pending_poses.append(rec)
        self._mark(rec, _GEO)
        self._mark(rec, _POSITIONS)

    def set_geo_position(
        self,
        rec: VehicleRecord,
        position: GeoPosition,
        at: float,
    ) -> None:
        """Record a WGS84 position (driver phones report these directly)."""
        rec.lat, rec.lon = position.lat, position.lon
        rec.heading_deg, rec.accuracy_m = position.heading_deg, position.accuracy_m
        rec.position_time = at
        rec.map_pose = None
        rec.unknown_map = False
        rec.pose_pending = False
        rec.view = None
        self._mark(rec, _GEO)
        self._mark(rec, _POSITIONS)

    def facility_of_map(self, map_id: str) -> uuid.UUID | None:
        """The facility a map belongs to (None for an unknown map), cached per map."""
        try:
            return self._facility_of_map[map_id]
        except KeyError:
            facility = self._maps.facility_for_map(map_id)
            fid = facility.id if facility is not None else None
            if len(self._facility_of_map) < 10_000:  # bounded: map ids come from the wire
                self._facility_of_map[map_id] = fid
            return fid

    def set_maintenance(self, rec: VehicleRecord, on: bool, now: float) -> None:
        rec.maintenance = on
        self.changed(rec, now=now)

    def resolve_positions(self) -> int:
        """Convert pending map poses to WGS84, one vectorised pyproj call per map."""
        if not self._pending_poses:
            return 0
        by_map: dict[str, list[VehicleRecord]] = {}
        for rec in self._pending_poses:
            if rec.pose_pending and rec.map_pose is not None:
                by_map.setdefault(rec.map_pose.map_id, []).append(rec)
        self._pending_poses = []
        converted = 0
        for map_id, recs in by_map.items():
            frame = self._maps.frame(map_id)
            if frame is None:
                continue
            poses = [r.map_pose for r in recs if r.map_pose is not None]
            xs = np.fromiter((p.x for p in poses), dtype=float, count=len(poses))
            ys = np.fromiter((p.y for p in poses), dtype=float, count=len(poses))
            lats, lons = frame.to_wgs84_many(xs, ys)
            for rec, pose, lat, lon in zip(recs, poses, lats, lons, strict=True):
                rec.lat, rec.lon = float(lat), float(lon)
                rec.heading_deg = frame.heading_to_geo(pose.theta)
                rec.accuracy_m = None
                rec.pose_pending = False
                rec.view = None
            converted += len(recs)
        return converted

    # --- what changed -----------------------------------------------------------------

    def take_dirty(self, consumer: Consumer) -> list[VehicleRecord]:
        """Records changed since this consumer last asked (positions already resolved)."""
        bit = consumer.value
        recs = self._dirty[bit]
        if not recs:
            return []
        if consumer is not Consumer.VEHICLES:
            self.resolve_positions()
        self._dirty[bit] = []
        clear = ~bit
        for rec in recs:
            rec.dirty &= clear
        return recs

    def mark_dirty(self, consumer: Consumer, records: Iterable[VehicleRecord]) -> None:
        """Put records back (a write failed; they go again with the next batch)."""
        for rec in records:
            self._mark(rec, consumer.value)

    def drain_changes(self, limit: int = 10_000) -> list[FleetChange]:
        out: list[FleetChange] = []
        while self._changes and len(out) < limit:
            out.append(self._changes.popleft())
        return out

    def requeue_changes(self, changes: list[FleetChange]) -> None:
        """Return changes a failed write took, ahead of newer ones."""
        self._changes.extendleft(reversed(changes))
        self._trim_changes()

    @property
    def pending_changes(self) -> int:
        return len(self._changes)

    # --- internals --------------------------------------------------------------------

    def _mark(self, rec: VehicleRecord, bit: int) -> None:
        # Plain ints: IntFlag arithmetic costs microseconds, and this runs per message.
        if not rec.dirty & bit:
            rec.dirty |= bit
            self._dirty[bit].append(rec)

    def _emit(
        self, rec: VehicleRecord, event: str, details: dict[str, Any], at: float | None = None
    ) -> None:
        self._changes.append(
            FleetChange(
                rec.id, rec.facility_id, event, details, self._clock() if at is None else at
            )
        )
        self._trim_changes()

    def _trim_changes(self) -> None:
        while len(self._changes) > MAX_PENDING_CHANGES:
            self._changes.popleft()
            self.changes_dropped += 1
            if self.changes_dropped in (1, 10, 100) or self.changes_dropped % 1000 == 0:
                log.warning("vehicle_events.dropped", dropped_total=self.changes_dropped)

    @staticmethod
    def _derive(rec: VehicleRecord) -> VehicleStatus:
        return derive_status(
            StatusInputs(
                kind=rec.key.kind,
                online=rec.online,
                maintenance=rec.maintenance,
                errors=rec.errors,
                operating_mode=rec.operating_mode,
                charging=rec.charging,
                paused=rec.paused,
                driving=rec.driving,
                working=rec.working,
                availability=rec.availability if rec.key.kind is VehicleKind.DRIVER else None,
            )
        )

"""The live fleet registry: one record per vehicle of either kind, in memory.

The vehicle links hand it what each message reports (synchronously, on the event loop, a
few microseconds each) through typed ``apply_*`` methods; the registry alone writes the
records, so status, liveness, dirty marks and change events stay consistent. Flush tasks
read what changed (``take_dirty``, the change feed) and write Redis and Postgres in
batches; the API, status view and planner read ``snapshot()``.

No I/O and no metrics here: the edges count what they need from the change feed
(:meth:`FleetRegistry.subscribe`). Map poses are turned into WGS84 in batches
(``resolve_positions``), one pyproj call per map, instead of once per message.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import structlog

from fleet.changes import ChangeFeed, ChangeListener, FleetChange
from fleet.liveness import is_fresh, seen_at
from fleet.model import (
    ChangeKind,
    ConnectionState,
    GeoPosition,
    MapPose,
    OfflineReason,
    VehicleError,
    VehicleFacts,
    VehicleKey,
    VehicleKind,
    VehicleStatus,
    VehicleView,
)
from fleet.record import Consumer, VehicleRecord
from fleet.reports import DriverState, Heard, RobotState
from fleet.status import StatusInputs, derive_status
from geo.facility_maps import FacilityMaps

log = structlog.get_logger(__name__)

#: A driver moving faster than this (m/s) is driving, not walking about with the phone.
DRIVER_DRIVING_MPS = 0.5

#: How long a Last Will waits before it takes its vehicle offline (seconds). A broker that
#: shuts down publishes the Last Will of every client it drops, fleetd's own session drops a
#: moment later, and those wills say nothing about the vehicles: a will still waiting when
#: fleetd finds itself cut off is discarded (:meth:`FleetRegistry.excuse_silence`). A will
#: that reaches fleetd in the first heartbeat timeout after its return waits out that
#: timeout instead (see :meth:`FleetRegistry.expire`).
WILL_GRACE_S = 1.0

_GEO, _POSITIONS, _VEHICLES = Consumer.GEO.value, Consumer.POSITIONS.value, Consumer.VEHICLES.value
_ALERTS = Consumer.ALERTS.value


class FleetRegistry:
    """All vehicles fleetd knows, keyed by id and by wire identity."""

    def __init__(
        self,
        *,
        maps: FacilityMaps,
        default_facility_id: uuid.UUID,
        heartbeat_timeout_s: float,
        robot_heartbeat_timeout_s: float | None = None,
        events_per_minute: int = 120,
        on_event_suppressed: Callable[[FleetChange], None] | None = None,
        clock: Callable[[], float] = time.time,
        will_grace_s: float = WILL_GRACE_S,
    ) -> None:
        self._maps = maps
        self._will_grace = will_grace_s
        #: vehicle id -> when its Last Will arrived, until applied (expire) or void.
        self._wills: dict[uuid.UUID, float] = {}
        #: When fleetd's broker session last came back after a cut-off (excuse_silence).
        self._returned_at: float | None = None
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
        self._feed = ChangeFeed()
        # Ids of stored vehicles not in the registry (soft-deleted): a vehicle coming back
        # gets its stored id, whatever the derivation (fleet.model.vehicle_id) says now.
        self._known_ids: dict[VehicleKey, uuid.UUID] = {}
        self._events_per_minute = float(events_per_minute)
        self._on_suppressed = on_event_suppressed
        self.events_suppressed = 0

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
        """The live record of a vehicle, to read (only the registry writes it)."""
        return self._by_id.get(vehicle_id)

    def record_by_key(self, key: VehicleKey) -> VehicleRecord | None:
        """The live record of a vehicle by its wire identity, to read."""
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

    def select(self, keep: Callable[[VehicleFacts], bool]) -> tuple[VehicleView, ...]:
        """Views of the vehicles ``keep`` says yes to, asked of the live records: a filter
        over a large fleet builds views only for the few it keeps."""
        return tuple(self._view(rec) for rec in self._by_id.values() if keep(rec))

    def _view(self, rec: VehicleRecord) -> VehicleView:
        if rec.pose_pending:
            self.resolve_positions()
        if rec.view is None:
            rec.view = rec.to_view()
        return rec.view

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

    # --- membership -------------------------------------------------------------------

    def add(self, rec: VehicleRecord, *, announce: bool) -> VehicleRecord:
        """Add a vehicle (loaded from storage, or registered on first contact when ``announce``)."""
        if rec.id in self._by_id:
            return self._by_id[rec.id]
        rec.status = self._derive(rec)
        self._by_id[rec.id] = rec
        self._by_key[rec.key] = rec
        if announce:
            self._emit(rec, ChangeKind.REGISTERED, {"kind": rec.key.kind.value, "name": rec.name})
            log.info(
                "vehicle.registered",
                vehicle_id=str(rec.id),
                vehicle=rec.key.label,
                kind=rec.key.kind.value,
            )
        self._mark(rec, _VEHICLES)
        self._mark(rec, _ALERTS)
        return rec

    def remember_id(self, key: VehicleKey, vehicle_id: uuid.UUID) -> None:
        """The stored id of a vehicle that is not in the registry (e.g. soft-deleted)."""
        self._known_ids[key] = vehicle_id

    def register(
        self,
        key: VehicleKey,
        *,
        facility_id: uuid.UUID | None = None,
        name: str | None = None,
        pinned: bool | None = None,
    ) -> VehicleRecord:
        """Create the record of a vehicle heard from for the first time.

        With a ``facility_id`` the vehicle is pinned to it (unless ``pinned=False``);
        without, it waits in the default facility, unpinned, until its first known map
        places it (:meth:`foreign_map`).
        """
        rec = VehicleRecord(
            id=self._known_ids.get(key) or key.id,
            facility_id=facility_id or self._default_facility_id,
            key=key,
            name=name or key.serial,
            facility_pinned=facility_id is not None if pinned is None else pinned,
        )
        return self.add(rec, announce=True)

    def pin(self, rec: VehicleRecord, facility_id: uuid.UUID) -> None:
        """Fix the vehicle's facility (configuration, an administrator)."""
        rec.facility_pinned = True
        if rec.facility_id != facility_id:
            rec.facility_id = facility_id
            rec.view = None
            self._mark(rec, _VEHICLES)
            self._mark(rec, _GEO)
            self._mark(rec, _ALERTS)

    def foreign_map(self, rec: VehicleRecord, map_id: str) -> bool:
        """Whether ``map_id`` belongs to another facility than the vehicle's pinned one.

        Such a report must be refused: following it would let a robot of one facility
        move itself into another and become commandable there. An unpinned vehicle is
        placed (and pinned) by its first map of a known facility instead. A map no
        facility has is not foreign (the pose is then reported unknown, never guessed).
        """
        facility_id = self.facility_of_map(map_id)
        # ``is`` first: the same cached id object, per message, spares UUID.__eq__.
        if facility_id is None or facility_id is rec.facility_id or facility_id == rec.facility_id:
            if facility_id is not None:
                rec.facility_pinned = True
            return False
        if rec.facility_pinned:
            return True
        self.pin(rec, facility_id)
        return False

    # --- what vehicles report (the links call these) ----------------------------------

    def apply_robot_state(self, rec: VehicleRecord, state: RobotState, heard: Heard) -> None:
        """A robot's ``state``: battery, motion, order progress, errors and pose, at once."""
        now = heard.received_at
        self._heard_from(rec, heard)
        rec.battery_pct = max(0.0, min(100.0, state.battery_pct))
        rec.charging = state.charging
        rec.working = state.working
        rec.driving = state.driving
        rec.paused = state.paused
        rec.safety_stop = state.safety_stop
        rec.operating_mode = state.operating_mode
        rec.order_id = state.order_id
        rec.order_update_id = state.order_update_id
        rec.last_node_id = state.last_node_id
        rec.speed_mps = state.speed_mps
        if state.errors or rec.errors:  # most states carry none, and most vehicles have none
            self._set_errors(rec, state.errors, now)
        if state.pose is not None:
            self._set_map_pose(rec, state.pose, now)
        self._changed(rec, now)

    def apply_robot_pose(self, rec: VehicleRecord, pose: MapPose | None, heard: Heard) -> None:
        """A robot's ``visualization``: a sign of life and, when localised, its pose."""
        self._heard_from(rec, heard)
        if pose is not None:
            self._set_map_pose(rec, pose, heard.received_at)
        self._changed(rec, heard.received_at)

    def apply_factsheet(self, rec: VehicleRecord, *, max_payload_kg: float | None) -> None:
        """What a robot's factsheet says it can carry (the other capabilities are configured)."""
        rec.capabilities = dataclasses.replace(rec.capabilities, max_payload_kg=max_payload_kg)
        self._changed(rec, self._clock())

    def apply_driver_status(self, rec: VehicleRecord, state: DriverState, heard: Heard) -> None:
        """A driver's ``status``: availability, phone battery, speed and, with a fix, position."""
        now = heard.received_at
        self._heard_from(rec, heard)
        rec.availability = state.availability
        rec.battery_pct = state.phone_battery_pct
        rec.speed_mps = state.speed_mps
        rec.driving = state.speed_mps is not None and state.speed_mps > DRIVER_DRIVING_MPS
        rec.working = state.on_job
        if state.position is not None:
            self._set_geo_position(rec, state.position, now)
        self._changed(rec, now)

    def apply_connection(self, rec: VehicleRecord, state: ConnectionState, heard: Heard) -> None:
        """A vehicle's word on its connection: online, goodbye, or its Last Will."""
        now = heard.received_at
        if state is ConnectionState.ONLINE:
            self._heard_from(rec, heard)
            if not rec.online and heard.retained:
                rec.offline_reason = OfflineReason.STALE_RETAINED
        elif heard.retained and rec.online:
            # A goodbye or Last Will the broker kept, delivered because fleetd (re)subscribed
            # (after a broker outage): of unknown age, while fleetd judges the vehicles it
            # believed online from its own return. Their heartbeat decides.
            return
        elif state is ConnectionState.CONNECTION_BROKEN:
            if rec.online and self._will_grace > 0:
                # Applied by expire() after the grace, unless fleetd's session drops first
                # (the broker itself going away) or the vehicle speaks again.
                self._wills.setdefault(rec.id, now)
                return
            self.went_offline(rec, OfflineReason.CONNECTION_BROKEN, now)
        else:
            self.went_offline(rec, OfflineReason.DISCONNECTED, now)
        self._changed(rec, now)

    def apply_sign_of_life(self, rec: VehicleRecord, heard: Heard) -> None:
        """Any other message from the vehicle: it proves it is alive, and nothing more."""
        self._heard_from(rec, heard)
        self._changed(rec, heard.received_at)

    def set_maintenance(self, rec: VehicleRecord, on: bool, now: float) -> None:
        """An operator takes the vehicle out of service (``on``) or puts it back."""
        rec.maintenance = on
        self._changed(rec, now)

    # --- liveness ---------------------------------------------------------------------

    def went_offline(self, rec: VehicleRecord, reason: OfflineReason, now: float) -> None:
        """The vehicle said goodbye, its Last Will arrived, or its silence outlasted the timeout."""
        if not rec.online:
            if rec.offline_reason is None:
                rec.offline_reason = reason
            return
        rec.online = False
        rec.offline_reason = reason
        self._liveness(rec, ChangeKind.WENT_OFFLINE, reason, now)

    def excuse_silence(self, now: float, cut_off_at: float | None = None) -> int:
        """fleetd itself was cut off (broker away) from ``cut_off_at`` until ``now``: the
        vehicles online before are judged from now on, not from messages they could not
        get through; the count."""
        # Last Wills still waiting when fleetd found itself cut off arrived just before: a
        # broker going away drops every client, fleetd included. Void: the heartbeat
        # judges from now. Wills that came after (queued for fleetd's persistent session
        # while it was away, delivered on its return) still count.
        for vid, at in list(self._wills.items()):
            if cut_off_at is None or at <= cut_off_at:
                del self._wills[vid]
        self._returned_at = now
        excused = 0
        for rec in self._by_id.values():
            if rec.online and rec.last_seen is not None and rec.last_seen < now:
                rec.last_seen = now
                rec.view = None
                excused += 1
        return excused

    def expire(self, now: float) -> int:
        """Turn every vehicle silent for longer than the heartbeat timeout offline, and
        every vehicle whose Last Will has waited out its grace (:data:`WILL_GRACE_S`, or a
        heartbeat timeout from fleetd's return for a will delivered on it)."""
        expired = 0
        for vid, at in list(self._wills.items()):
            will_of = self._by_id.get(vid)
            if now < self._will_due(at, will_of):
                continue
            del self._wills[vid]
            if will_of is not None and will_of.online:
                self.went_offline(will_of, OfflineReason.CONNECTION_BROKEN, now)
                self._changed(will_of, now)
                expired += 1
        for rec in self._by_id.values():
            if rec.online and not is_fresh(rec.last_seen, now, self.timeout_for(rec)):
                self.went_offline(rec, OfflineReason.HEARTBEAT_TIMEOUT, now)
                expired += 1
        return expired

    def _will_due(self, arrived_at: float, rec: VehicleRecord | None) -> float:
        """When a Last Will that arrived at ``arrived_at`` takes its vehicle offline.

        Normally after :data:`WILL_GRACE_S`. A will that reaches fleetd in the first
        heartbeat timeout after its return from a cut-off was most likely queued for its
        persistent session while it was away, and a broker shutting down publishes every
        client's will as it goes (measured in the soak: 20 robots with riders on board
        held after a 2 s broker restart, each back online seconds later). Of unknown age
        then, like a retained one: the vehicle is judged by its heartbeat from fleetd's
        return, and the will applies only if nothing live is heard from it until then.
        """
        due = arrived_at + self._will_grace
        back = self._returned_at
        if rec is not None and back is not None:
            window = self.timeout_for(rec)
            # Also a will that came after the cut-off but before fleetd noticed its return
            # (the queue is delivered the moment the session is up; liveness polls).
            if arrived_at < back + window:
                due = max(due, back + window)
        return due

    def _heard_from(self, rec: VehicleRecord, heard: Heard) -> None:
        """Note a sign of life; a fresh one brings an offline vehicle online.

        A retained message of unknown age proves nothing and changes nothing.
        """
        now = heard.received_at
        at = seen_at(now, heard.sent_at, heard.retained)
        if at is None:
            return
        if not heard.retained and self._wills:
            # Heard live after its Last Will: the vehicle is connected again, the will void.
            self._wills.pop(rec.id, None)
        if rec.last_seen is None or at > rec.last_seen:
            rec.last_seen = at
            rec.view = None
        if not rec.online and is_fresh(rec.last_seen, now, self.timeout_for(rec)):
            rec.online = True
            rec.offline_reason = None
            self._liveness(rec, ChangeKind.WENT_ONLINE, None, now)

    def _liveness(
        self, rec: VehicleRecord, change: ChangeKind, reason: OfflineReason | None, now: float
    ) -> None:
        details: dict[str, Any] = {}
        if reason is not None:
            details["reason"] = reason.value
        if rec.last_seen is not None:
            details["last_seen_age_s"] = round(max(0.0, now - rec.last_seen), 3)
        self._emit(rec, change, details, at=now)
        log.info(
            f"vehicle.{change.value}",
            vehicle_id=str(rec.id),
            vehicle=rec.key.label,
            kind=rec.key.kind.value,
            **details,
        )
        self._changed(rec, now)
        self._mark(rec, _GEO)  # an offline vehicle leaves the look-ups at once

    # --- record updates ---------------------------------------------------------------

    def _changed(self, rec: VehicleRecord, now: float) -> None:
        """After a record's fields changed: re-derive status, schedule the writes."""
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
            self._mark(rec, _ALERTS)
            return
        rec.status_inputs = inputs
        status = self._derive(rec)
        if status is not rec.status:
            old, rec.status = rec.status, status
            self._emit(rec, ChangeKind.STATUS_CHANGED, {"from": old.value, "to": status.value}, now)
        self._mark(rec, _VEHICLES)
        self._mark(rec, _ALERTS)

    def _set_errors(self, rec: VehicleRecord, errors: tuple[VehicleError, ...], now: float) -> None:
        """Replace the vehicle's error list, recording errors raised and cleared."""
        if errors == rec.errors:
            return
        old = {(e.type, e.level) for e in rec.errors}
        new = {(e.type, e.level) for e in errors}
        for etype, level in sorted(new - old):
            self._emit(rec, ChangeKind.ERROR_RAISED, {"type": etype, "level": level}, now)
        for etype, level in sorted(old - new):
            self._emit(rec, ChangeKind.ERROR_CLEARED, {"type": etype, "level": level}, now)
        rec.errors = errors

    def _set_map_pose(self, rec: VehicleRecord, pose: MapPose, at: float) -> None:
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
            if not rec.pose_pending:
                rec.pose_pending = True
                self._pending_poses.append(rec)
        self._mark(rec, _GEO)
        self._mark(rec, _POSITIONS)

    def _set_geo_position(self, rec: VehicleRecord, position: GeoPosition, at: float) -> None:
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

    def subscribe(self, listener: ChangeListener) -> None:
        """Call ``listener`` with every change as it happens (the edges count metrics so)."""
        self._feed.subscribe(listener)

    def drain_changes(self, limit: int = 10_000) -> list[FleetChange]:
        """Take up to ``limit`` changes for the writer, oldest first."""
        return self._feed.drain(limit)

    def requeue_changes(self, changes: list[FleetChange]) -> None:
        """Return changes a failed write took, ahead of newer ones."""
        self._feed.requeue(changes)

    @property
    def pending_changes(self) -> int:
        return len(self._feed)

    @property
    def changes_dropped(self) -> int:
        """Changes dropped because the writer could not keep up."""
        return self._feed.dropped

    # --- internals --------------------------------------------------------------------

    def _mark(self, rec: VehicleRecord, bit: int) -> None:
        # Plain ints: IntFlag arithmetic costs microseconds, and this runs per message.
        if not rec.dirty & bit:
            rec.dirty |= bit
            self._dirty[bit].append(rec)

    def _emit(
        self, rec: VehicleRecord, kind: ChangeKind, details: dict[str, Any], at: float | None = None
    ) -> None:
        change = FleetChange(
            rec.id, rec.facility_id, kind, details, self._clock() if at is None else at
        )
        record = kind is ChangeKind.REGISTERED or self._take_token(rec, change.at)
        if not record:
            # One vehicle flapping (errors raised and cleared on every message) must not
            # grow vehicle_events without bound; its live state stays exact regardless,
            # and listeners (metrics) still see the change.
            self.events_suppressed += 1
            if self._on_suppressed is not None:
                self._on_suppressed(change)
        self._feed.append(change, record=record)

    def _take_token(self, rec: VehicleRecord, now: float) -> bool:
        """Token bucket per vehicle: ``events_per_minute`` tokens, refilled continuously."""
        cap = self._events_per_minute
        if rec.event_tokens < 0:
            tokens = cap
        else:
            elapsed = max(0.0, now - rec.event_tokens_at)
            tokens = min(cap, rec.event_tokens + elapsed * cap / 60.0)
        rec.event_tokens_at = now
        if tokens < 1.0:
            rec.event_tokens = tokens
            return False
        rec.event_tokens = tokens - 1.0
        return True

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

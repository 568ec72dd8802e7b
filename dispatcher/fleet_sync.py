"""Tasks that carry the live registry to Redis and Postgres, in batches, off the hot path.

- ``run_liveness``: turns silent vehicles offline (heartbeat timeout).
- ``GeoSync``: writes changed live positions to Redis GEO; prunes stale ones.
- ``FleetWriter``: writes changed vehicles (status, battery, liveness), last-known
  positions and vehicle events to Postgres; with active/standby, only for the
  facilities whose lease this daemon holds (:mod:`dispatcher.leadership.gap`).

A failed batch is put back and goes with the next one: nothing is lost while a service is
briefly away, and the links never wait for it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime

import asyncpg
import structlog

from dispatcher.config import Settings
from dispatcher.fleet_metrics import publish_online
from dispatcher.leadership.gap import SAME_CHANGE_WITHIN_S, TakeoverGap, not_stored
from dispatcher.metrics import DB_FLUSH_FAILURES, DB_FLUSH_SECONDS
from dispatcher.storage import fleet_store
from dispatcher.storage.live_positions import LivePositions
from fleet.changes import FleetChange
from fleet.model import Capabilities, VehicleKey, VehicleKind
from fleet.record import Consumer, VehicleRecord
from fleet.registry import FleetRegistry

log = structlog.get_logger(__name__)


def record_from_row(row: fleet_store.VehicleRow) -> VehicleRecord:
    """A registry record for a vehicle loaded from storage: offline until it speaks."""
    caps = row.capabilities or {}
    kind = VehicleKind(row.kind)
    return VehicleRecord(
        id=row.id,
        facility_id=row.facility_id,
        key=VehicleKey(kind, row.manufacturer, row.serial),
        name=row.name,
        capabilities=Capabilities(
            wheelchair_types=tuple(caps.get("wheelchair_types") or ()),
            max_payload_kg=caps.get("max_payload_kg"),
            seats=caps.get("seats"),
        ),
        battery_pct=row.battery_pct,
        last_seen=row.last_seen.timestamp() if row.last_seen else None,
        maintenance=row.maintenance,
        facility_pinned=True,  # placed when first stored; only configuration moves it
    )


def add_configured_vehicles(registry: FleetRegistry, settings: Settings) -> None:
    """Make the vehicles of ``fleet.vehicles`` known, each pinned to its facility.

    Configuration is authoritative: a stored vehicle is moved to its configured facility.
    A configured vehicle not stored yet is registered now, so it is let in even while
    ``fleet.unknown_vehicles = "reject"``.
    """
    for v in settings.fleet.vehicles:
        key = VehicleKey(VehicleKind(v.kind), v.manufacturer, v.serial)
        facility_id = settings.facility_for_key(v.facility).id
        rec = registry.record_by_key(key)
        if rec is None:
            registry.register(key, facility_id=facility_id, name=v.name or None, pinned=True)
        else:
            registry.pin(rec, facility_id)


def _ts(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


async def run_liveness(
    registry: FleetRegistry,
    *,
    interval_s: float,
    cut_off: Callable[[], bool] = lambda: False,
) -> None:
    """Check heartbeats every ``interval_s``; offline is seen within timeout + interval.

    While ``cut_off()`` (fleetd's own broker session is down) nobody is expired: silence
    then says nothing about the vehicles. When the session is back, the vehicles online
    before are judged from that moment (:meth:`FleetRegistry.excuse_silence`).
    """
    cut_off_at: float | None = None  # when fleetd found itself cut off
    while True:
        if cut_off():
            if cut_off_at is None:
                cut_off_at = time.time()
        else:
            if cut_off_at is not None:
                excused = registry.excuse_silence(time.time(), cut_off_at)
                log.info("liveness.resumed_after_broker_outage", vehicles=excused)
                cut_off_at = None
            registry.expire(time.time())
            publish_online(registry)
        await asyncio.sleep(interval_s)


class GeoSync:
    """Keeps Redis GEO in step with the registry."""

    def __init__(
        self,
        registry: FleetRegistry,
        positions: LivePositions,
        *,
        interval_s: float,
        prune_every_s: float = 5.0,
    ) -> None:
        self._registry = registry
        self._positions = positions
        self._interval = interval_s
        self._prune_every = prune_every_s

    async def flush(self) -> int:
        recs = self._registry.take_dirty(Consumer.GEO)
        if not recs:
            return 0
        try:
            return await self._positions.write(recs)
        except Exception as exc:
            self._registry.mark_dirty(Consumer.GEO, recs)
            DB_FLUSH_FAILURES.labels("redis_geo").inc()
            log.warning("live_positions.write_failed", error=str(exc), vehicles=len(recs))
            return 0

    async def rebuild_if_lost(self) -> bool:
        """If Redis lost the live index (flushed, restarted), write every vehicle again
        from the registry at the next flush; True when it did."""
        try:
            lost = await self._positions.lost_since_last_check()
        except Exception as exc:
            log.warning("live_positions.check_failed", error=str(exc))
            return False
        if lost:
            recs = list(self._registry.records())
            self._registry.mark_dirty(Consumer.GEO, recs)
            log.warning("live_positions.rebuilding", vehicles=len(recs))
        return lost

    async def run(self) -> None:
        last_prune = last_check = time.monotonic()
        await self.rebuild_if_lost()
        while True:
            await asyncio.sleep(self._interval)
            if time.monotonic() - last_check >= 1.0:
                last_check = time.monotonic()
                await self.rebuild_if_lost()
            await self.flush()
            if time.monotonic() - last_prune >= self._prune_every:
                last_prune = time.monotonic()
                facilities = list({r.facility_id for r in self._registry.records()})
                try:
                    await self._positions.prune(facilities)
                except Exception as exc:
                    log.warning("live_positions.prune_failed", error=str(exc))


class FleetWriter:
    """Batched writes of vehicle state, last-known positions and vehicle events.

    ``holds``: with active/standby, whether this daemon holds a facility's lease. Only
    the holder writes a facility's vehicles: a standby keeps their newest changes for
    ``gap_keep_s`` instead and, when it takes the facility over, writes those newer than
    the last vehicle event stored, then every vehicle's state and position afresh.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        registry: FleetRegistry,
        *,
        interval_s: float,
        holds: Callable[[uuid.UUID], bool] | None = None,
        gap_keep_s: float = 30.0,
        facilities: Iterable[uuid.UUID] = (),
    ) -> None:
        self._pool = pool
        self._registry = registry
        self._interval = interval_s
        self._holds = holds
        #: Facilities this daemon writes (caught up since it took the lease).
        self._writing: set[uuid.UUID] = set()
        #: The facilities whose leases are followed: the configured ones (taken before the
        #: first vehicle speaks, so its first changes are written, not kept as standby),
        #: every record's at the first flush, then those of the records that changed (a
        #: new vehicle, one moved), not the whole fleet every flush.
        self._configured = frozenset(facilities)
        self._facilities: set[uuid.UUID] | None = None
        self.gap: TakeoverGap[FleetChange] = TakeoverGap(keep_s=gap_keep_s)

    def _writes(self, facility_id: uuid.UUID) -> bool:
        return self._holds is None or facility_id in self._writing

    def _mine(self, records: Sequence[VehicleRecord]) -> list[VehicleRecord]:
        if self._holds is None:
            return list(records)
        return [r for r in records if r.facility_id in self._writing]

    async def _missed(self, facility_id: uuid.UUID) -> list[FleetChange]:
        """The changes kept as standby that the old leader did not store."""
        kept = self.gap.take(facility_id)
        if not kept:
            return []
        try:
            since = datetime.fromtimestamp(kept[0][0] - SAME_CHANGE_WITHIN_S, UTC)
            stored = await fleet_store.vehicle_events_since(self._pool, facility_id, since)
        except BaseException:
            for at, change in kept:  # tried again at the next flush
                self.gap.keep(facility_id, at, change)
            raise
        return not_stored(
            kept,
            (((vid, event), at.timestamp()) for vid, event, at in stored),
            key=lambda c: (c.vehicle_id, c.kind.value),
        )

    async def _follow_leases(self) -> None:
        """Start writing the facilities whose lease this daemon took since the last flush
        (catching up on what the old leader may not have stored), stop for those it lost."""
        holds = self._holds
        if holds is None:
            return
        if self._facilities is None:
            self._facilities = {r.facility_id for r in self._registry.records()}
            self._facilities |= self._configured
        for fid in self._facilities | self._writing:
            held = holds(fid)
            if not held:
                self._writing.discard(fid)
                continue
            if fid in self._writing:
                continue
            try:
                missed = await self._missed(fid)
            except Exception as exc:
                log.warning("fleet_writer.catch_up_failed", facility_id=str(fid), error=str(exc))
                continue
            if missed:
                self._registry.requeue_changes(missed)
            mine = [r for r in self._registry.records() if r.facility_id == fid]
            self._registry.mark_dirty(Consumer.VEHICLES, mine)
            self._registry.mark_dirty(Consumer.POSITIONS, mine)
            self._writing.add(fid)
            log.info("fleet_writer.writing", facility_id=str(fid), missed_changes=len(missed))

    @staticmethod
    def _vehicle_row(rec: VehicleRecord) -> fleet_store.VehicleRow:
        caps = rec.capabilities
        return fleet_store.VehicleRow(
            id=rec.id,
            facility_id=rec.facility_id,
            kind=rec.key.kind.value,
            manufacturer=rec.key.manufacturer,
            serial=rec.key.serial,
            name=rec.name,
            capabilities={
                "wheelchair_types": list(caps.wheelchair_types),
                "max_payload_kg": caps.max_payload_kg,
                "seats": caps.seats,
            },
            status=rec.status.value,
            online=rec.online,
            maintenance=rec.maintenance,
            battery_pct=rec.battery_pct,
            last_seen=_ts(rec.last_seen),
        )

    @staticmethod
    def _position_row(rec: VehicleRecord) -> fleet_store.PositionRow | None:
        if rec.lat is None or rec.lon is None or rec.position_time is None:
            return None
        pose = rec.map_pose
        at = _ts(rec.position_time)
        assert at is not None
        return fleet_store.PositionRow(
            vehicle_id=rec.id,
            facility_id=rec.facility_id,
            lat=rec.lat,
            lon=rec.lon,
            heading_deg=rec.heading_deg,
            accuracy_m=rec.accuracy_m,
            map_id=pose.map_id if pose else None,
            x=pose.x if pose else None,
            y=pose.y if pose else None,
            theta=pose.theta if pose else None,
            at=at,
        )

    @staticmethod
    async def _timed(batch: str, write: Awaitable[None]) -> None:
        started = time.perf_counter()
        await write
        DB_FLUSH_SECONDS.labels(batch).observe(time.perf_counter() - started)

    async def flush(self) -> None:
        """Write everything changed since the last flush; failures are re-queued."""
        await self._follow_leases()
        # Vehicles first: positions and events refer to them.
        changed = self._registry.take_dirty(Consumer.VEHICLES)
        if self._facilities is not None:
            self._facilities.update({r.facility_id for r in changed})
        vehicles = self._mine(changed)
        if vehicles:
            try:
                await self._timed(
                    "vehicles",
                    fleet_store.upsert_vehicles(
                        self._pool, [self._vehicle_row(r) for r in vehicles]
                    ),
                )
            except Exception as exc:
                self._registry.mark_dirty(Consumer.VEHICLES, vehicles)
                DB_FLUSH_FAILURES.labels("vehicles").inc()
                log.warning("fleet_writer.vehicles_failed", error=str(exc), rows=len(vehicles))
                # Positions and events would fail on the same missing rows: try again later.
                return
        positions = self._mine(self._registry.take_dirty(Consumer.POSITIONS))
        rows = [p for r in positions if (p := self._position_row(r)) is not None]
        if rows:
            try:
                await self._timed("positions", fleet_store.upsert_positions(self._pool, rows))
            except Exception as exc:
                self._registry.mark_dirty(Consumer.POSITIONS, positions)
                DB_FLUSH_FAILURES.labels("positions").inc()
                log.warning("fleet_writer.positions_failed", error=str(exc), rows=len(rows))
        changes = self._registry.drain_changes()
        if self._holds is not None:
            for c in changes:
                if c.facility_id not in self._writing:
                    self.gap.keep(c.facility_id, c.at, c)
            changes = [c for c in changes if c.facility_id in self._writing]
        if changes:
            events = [
                fleet_store.VehicleEventRow(
                    vehicle_id=c.vehicle_id,
                    facility_id=c.facility_id,
                    event=c.kind.value,
                    details=c.details,
                    at=datetime.fromtimestamp(c.at, UTC),
                )
                for c in changes
            ]
            try:
                await self._timed(
                    "vehicle_events", fleet_store.insert_vehicle_events(self._pool, events)
                )
            except Exception as exc:
                self._registry.requeue_changes(changes)
                DB_FLUSH_FAILURES.labels("vehicle_events").inc()
                log.warning("fleet_writer.events_failed", error=str(exc), rows=len(events))

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()

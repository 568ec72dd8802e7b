"""Only the daemon holding a facility's lease writes its vehicles (active/standby).

The soak of 2026-12-03 ran two daemons that both wrote the same 1,000 vehicles: every
vehicle event was stored twice and their batches deadlocked each other. A standby now
keeps the newest changes instead, and writes what the old leader did not store when it
takes over.
"""

from __future__ import annotations

import time
import uuid

import asyncpg

from dispatcher.config import FacilitySettings
from dispatcher.fleet_sync import FleetWriter
from fleet.model import ConnectionState, VehicleKey, VehicleKind
from fleet.registry import FleetRegistry
from fleet.reports import Heard
from geo.facility_maps import FacilityMaps

KEY = VehicleKey(kind=VehicleKind.ROBOT, manufacturer="acme", serial="r1")


def _registry(facility: FacilitySettings) -> FleetRegistry:
    return FleetRegistry(
        maps=FacilityMaps([facility.spec]),
        default_facility_id=facility.id,
        heartbeat_timeout_s=3600,
    )


async def _events(pool: asyncpg.Pool) -> list[str]:
    """The stored liveness events (status changes, which follow them, left out)."""
    rows = await pool.fetch(
        "SELECT event FROM vehicle_events WHERE event <> 'status_changed' ORDER BY seq"
    )
    return [r["event"] for r in rows]


async def test_the_standby_writes_nothing_then_catches_up_on_takeover(
    pg_pool: asyncpg.Pool, facility_in_db: FacilitySettings
) -> None:
    fid = facility_in_db.id
    holders: dict[str, set[uuid.UUID]] = {"a": {fid}, "b": set()}
    a, b = _registry(facility_in_db), _registry(facility_in_db)
    wa = FleetWriter(pg_pool, a, interval_s=1.0, holds=lambda f: f in holders["a"])
    wb = FleetWriter(pg_pool, b, interval_s=1.0, holds=lambda f: f in holders["b"])
    ra, rb = a.register(KEY, facility_id=fid), b.register(KEY, facility_id=fid)
    t0 = time.time()
    for reg, rec, at in ((a, ra, t0), (b, rb, t0 + 0.3)):  # b hears it a little later
        reg.apply_connection(rec, ConnectionState.ONLINE, Heard(at, None, False))
    await wa.flush()
    await wb.flush()
    assert await _events(pg_pool) == ["registered", "went_online"]  # a's alone
    # Both hear the robot's goodbye; a dies before its next flush.
    a.apply_connection(ra, ConnectionState.OFFLINE, Heard(t0 + 5.0, None, False))
    b.apply_connection(rb, ConnectionState.OFFLINE, Heard(t0 + 5.2, None, False))
    await wb.flush()
    assert await _events(pg_pool) == ["registered", "went_online"]
    assert len(wb.gap) >= 3  # registered, went_online, went_offline (+ status)
    holders["a"], holders["b"] = set(), {fid}  # b takes the facility over
    await wb.flush()
    assert await _events(pg_pool) == ["registered", "went_online", "went_offline"]
    online = await pg_pool.fetchval("SELECT online FROM vehicles WHERE id = $1", rb.id)
    assert online is False  # b wrote the vehicle's state afresh
    assert len(wb.gap) == 0


async def test_a_daemon_without_leadership_writes_everything(
    pg_pool: asyncpg.Pool, facility_in_db: FacilitySettings
) -> None:
    reg = _registry(facility_in_db)
    reg.register(KEY, facility_id=facility_in_db.id)
    await FleetWriter(pg_pool, reg, interval_s=1.0).flush()
    assert await _events(pg_pool) == ["registered"]

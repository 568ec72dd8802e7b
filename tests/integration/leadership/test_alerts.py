"""Alerts with two daemons: each looks after the facilities it leads and no other.

A standby does not know the held missions or stuck robots the active daemon sees; had it
evaluated every facility, it would clear the active daemon's alerts each round (and the
active raise them again), so the alert stream would flap.
"""

from __future__ import annotations

import asyncpg

from dispatcher.alerting.watch import AlertWatch
from dispatcher.config import AlertSettings
from dispatcher.storage.fleet_store import sync_facilities
from tests.integration.ops.conftest import NORTH
from tests.unit.api.fakes import StaticFleet, make_vehicle


async def _open(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch("SELECT kind FROM alerts WHERE cleared_at IS NULL")
    return [r["kind"] for r in rows]


async def test_a_standby_neither_raises_nor_clears_the_facilitys_alerts(
    pg_pool: asyncpg.Pool,
) -> None:
    await sync_facilities(pg_pool, [NORTH])
    gone = make_vehicle(NORTH.id, "gone", online=False)
    await pg_pool.execute(
        "INSERT INTO vehicles (id, facility_id, kind, manufacturer, serial) "
        "VALUES ($1, $2, 'robot', 'acme', 'gone')",
        gone.id,
        NORTH.id,
    )
    fleet = StaticFleet([gone])
    standby = AlertWatch(pg_pool, fleet, AlertSettings(), leads=lambda _f: False)
    active = AlertWatch(pg_pool, fleet, AlertSettings(), leads=lambda f: f == NORTH.id)

    assert await standby.check() == (0, 0)
    assert await _open(pg_pool) == []
    assert await active.check() == (1, 0)
    assert await _open(pg_pool) == ["vehicle_offline"]

    # Back online as the standby sees it (its own view of the fleet): not its to clear.
    fleet.vehicles = {gone.id: make_vehicle(NORTH.id, "gone", online=True)}
    assert await standby.check() == (0, 0)
    assert await _open(pg_pool) == ["vehicle_offline"]
    assert await active.check() == (0, 1)
    assert await _open(pg_pool) == []

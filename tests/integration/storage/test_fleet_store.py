"""Batched fleet writes against the real PostgreSQL + PostGIS."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg

from dispatcher.config import FacilitySettings
from dispatcher.storage.fleet_store import (
    PositionRow,
    VehicleEventRow,
    VehicleRow,
    insert_vehicle_events,
    load_vehicles,
    set_maintenance,
    sync_facilities,
    upsert_positions,
    upsert_vehicles,
)
from fleet.model import VehicleKind, vehicle_id

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def robot(facility: FacilitySettings, serial: str, **kw: object) -> VehicleRow:
    row = VehicleRow(
        id=vehicle_id(VehicleKind.ROBOT, "acme", serial),
        facility_id=facility.id,
        kind="robot",
        manufacturer="acme",
        serial=serial,
        name=f"Robot {serial}",
        capabilities={"wheelchair_types": ["manual"], "seats": 1},
        status="idle",
        online=True,
        maintenance=False,
        battery_pct=80.0,
        last_seen=NOW,
    )
    return replace(row, **kw)  # type: ignore[arg-type]


def position(v: VehicleRow, lat: float, lon: float, at: datetime = NOW) -> PositionRow:
    return PositionRow(v.id, v.facility_id, lat, lon, 90.0, 0.5, "ground", 1.0, 2.0, 0.1, at)


class TestFacilities:
    async def test_sync_inserts_then_updates(
        self, pg_pool: asyncpg.Pool, facility: FacilitySettings
    ) -> None:
        """Configured facilities land by their uuid5 id with maps and places as JSON."""
        await sync_facilities(pg_pool, [facility])
        renamed = facility.model_copy(update={"name": "St Mary's Hospital"})
        await sync_facilities(pg_pool, [renamed])
        row = await pg_pool.fetchrow("SELECT * FROM facilities WHERE id = $1", facility.id)
        assert row is not None
        assert row["key"] == "st-mary"
        assert row["name"] == "St Mary's Hospital"
        assert row["timezone"] == "Europe/London"
        assert row["maps"][0]["map_id"] == "ground"
        assert row["places"] == [
            {"name": "Ward 3", "lat": 51.5001, "lon": -0.1201, "node_id": "n3"}
        ]

    async def test_sync_restores_soft_deleted(
        self, pg_pool: asyncpg.Pool, facility_in_db: FacilitySettings
    ) -> None:
        """Configuration is authoritative: a configured facility is live again."""
        await pg_pool.execute("UPDATE facilities SET deleted_at = now()")
        await sync_facilities(pg_pool, [facility_in_db])
        assert await pg_pool.fetchval("SELECT deleted_at FROM facilities") is None

    async def test_unchanged_sync_does_not_touch_updated_at(
        self, pg_pool: asyncpg.Pool, facility_in_db: FacilitySettings
    ) -> None:
        """updated_at means "last changed", not "last started"."""
        before = await pg_pool.fetchval("SELECT updated_at FROM facilities")
        await sync_facilities(pg_pool, [facility_in_db])
        assert await pg_pool.fetchval("SELECT updated_at FROM facilities") == before


class TestVehicles:
    async def test_upsert_round_trips(
        self, pg_pool: asyncpg.Pool, facility_in_db: FacilitySettings
    ) -> None:
        """What is written is what load_vehicles returns, timestamps aware UTC."""
        rows = [robot(facility_in_db, "r1"), robot(facility_in_db, "r2", battery_pct=None)]
        await upsert_vehicles(pg_pool, rows)
        loaded = await load_vehicles(pg_pool)
        assert sorted(loaded, key=lambda r: r.serial) == rows
        assert all(
            r.last_seen is not None and r.last_seen.utcoffset() == timedelta(0) for r in loaded
        )

    async def test_upsert_updates_live_fields(
        self, pg_pool: asyncpg.Pool, facility_in_db: FacilitySettings
    ) -> None:
        """A second upsert changes status, online, battery, last_seen, name, capabilities."""
        v = robot(facility_in_db, "r1")
        await upsert_vehicles(pg_pool, [v])
        later = replace(
            v,
            status="charging",
            online=False,
            battery_pct=12.5,
            last_seen=NOW + timedelta(seconds=5),
            name="Robbie",
            capabilities={"seats": 2},
        )
        await upsert_vehicles(pg_pool, [later])
        assert await load_vehicles(pg_pool) == [later]

    async def test_older_batch_does_not_overwrite_newer(
        self, pg_pool: asyncpg.Pool, facility_in_db: FacilitySettings
    ) -> None:
        """State never moves back in time."""
        v = robot(facility_in_db, "r1", status="driving")
        await upsert_vehicles(pg_pool, [v])
        await upsert_vehicles(pg_pool, [replace(v, status="idle", last_seen=NOW - timedelta(1))])
        assert (await load_vehicles(pg_pool))[0].status == "driving"

    async def test_duplicate_ids_in_one_batch_keep_the_newest(
        self, pg_pool: asyncpg.Pool, facility_in_db: FacilitySettings
    ) -> None:
        """Two states of one vehicle in a batch: the newer is stored, no error."""
        v = robot(facility_in_db, "r1")
        newer = replace(v, status="busy", last_seen=NOW + timedelta(seconds=1))
        await upsert_vehicles(pg_pool, [newer, v])
        assert (await load_vehicles(pg_pool))[0].status == "busy"

    async def test_soft_deleted_not_loaded_nor_resurrected(
        self, pg_pool: asyncpg.Pool, facility_in_db: FacilitySettings
    ) -> None:
        """A decommissioned vehicle stays so even if it keeps broadcasting."""
        v = robot(facility_in_db, "r1")
        await upsert_vehicles(pg_pool, [v])
        await pg_pool.execute("UPDATE vehicles SET deleted_at = now() WHERE id = $1", v.id)
        await upsert_vehicles(pg_pool, [replace(v, last_seen=NOW + timedelta(seconds=1))])
        assert await load_vehicles(pg_pool) == []
        assert await pg_pool.fetchval("SELECT deleted_at IS NOT NULL FROM vehicles") is True

    async def test_maintenance_is_not_overwritten_by_upserts(
        self, pg_pool: asyncpg.Pool, facility_in_db: FacilitySettings
    ) -> None:
        """An operator's maintenance switch survives the periodic live-state flush."""
        v = robot(facility_in_db, "r1")
        await upsert_vehicles(pg_pool, [v])
        assert await set_maintenance(pg_pool, v.id, True)
        await upsert_vehicles(pg_pool, [replace(v, last_seen=NOW + timedelta(seconds=1))])
        assert (await load_vehicles(pg_pool))[0].maintenance is True
        assert not await set_maintenance(pg_pool, uuid.uuid4(), True)

    async def test_vehicle_follows_its_facility(
        self, pg_pool: asyncpg.Pool, facility_in_db: FacilitySettings
    ) -> None:
        """The id does not depend on the facility, so a move updates facility_id in place."""
        other = FacilitySettings(key="annex", name="Annex")
        await sync_facilities(pg_pool, [other])
        v = robot(facility_in_db, "r1")
        await upsert_vehicles(pg_pool, [v])
        moved = replace(v, facility_id=other.id, last_seen=NOW + timedelta(seconds=1))
        await upsert_vehicles(pg_pool, [moved])
        assert await load_vehicles(pg_pool) == [moved]

    async def test_load_filters_by_facility(
        self, pg_pool: asyncpg.Pool, facility_in_db: FacilitySettings
    ) -> None:
        """facility_id narrows the list."""
        await upsert_vehicles(pg_pool, [robot(facility_in_db, "r1")])
        assert len(await load_vehicles(pg_pool, facility_id=facility_in_db.id)) == 1
        assert await load_vehicles(pg_pool, facility_id=uuid.uuid4()) == []


class TestPositions:
    async def test_positions_queryable_with_st_dwithin(
        self, pg_pool: asyncpg.Pool, facility_in_db: FacilitySettings
    ) -> None:
        """Points are geography from lon/lat: "within 100 m of Ward 3" finds the near robot."""
        near, far = robot(facility_in_db, "near"), robot(facility_in_db, "far")
        await upsert_vehicles(pg_pool, [near, far])
        await upsert_positions(
            pg_pool, [position(near, 51.5002, -0.1201), position(far, 51.51, -0.12)]
        )
        found = await pg_pool.fetch(
            "SELECT vehicle_id FROM vehicle_positions "
            "WHERE ST_DWithin(position, ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography, 100)",
            -0.1201,
            51.5001,
        )
        assert [r["vehicle_id"] for r in found] == [near.id]
        got = await pg_pool.fetchrow(
            "SELECT ST_Y(position::geometry), ST_X(position::geometry) FROM vehicle_positions "
            "WHERE vehicle_id = $1",
            near.id,
        )
        assert got is not None
        assert tuple(got) == (51.5002, -0.1201)

    async def test_newest_position_wins(
        self, pg_pool: asyncpg.Pool, facility_in_db: FacilitySettings
    ) -> None:
        """Within a batch and across batches, an older position never replaces a newer one."""
        v = robot(facility_in_db, "r1")
        await upsert_vehicles(pg_pool, [v])
        t1 = NOW + timedelta(seconds=1)
        await upsert_positions(pg_pool, [position(v, 1.0, 1.0, t1), position(v, 0.0, 0.0, NOW)])
        await upsert_positions(pg_pool, [position(v, 2.0, 2.0, NOW - timedelta(seconds=1))])
        row = await pg_pool.fetchrow(
            "SELECT ST_Y(position::geometry) AS lat, at FROM vehicle_positions"
        )
        assert row is not None
        assert (row["lat"], row["at"]) == (1.0, t1)

    async def test_map_pose_only(
        self, pg_pool: asyncpg.Pool, facility_in_db: FacilitySettings
    ) -> None:
        """Without lat/lon the map pose is kept and position is NULL."""
        v = robot(facility_in_db, "r1")
        await upsert_vehicles(pg_pool, [v])
        await upsert_positions(pg_pool, [replace(position(v, 0, 0), lat=None, lon=None)])
        row = await pg_pool.fetchrow("SELECT position, map_id, x FROM vehicle_positions")
        assert row is not None
        assert (row["position"], row["map_id"], row["x"]) == (None, "ground", 1.0)


class TestTwoWriters:
    """Two daemons (active and standby) hear the same fleet and write the same rows at once:
    the soak's 1,000 vehicles made their batches deadlock each other ("deadlock detected",
    fleet_writer.vehicles_failed) when each locked the rows in its own order."""

    async def test_same_rows_in_opposite_orders_do_not_deadlock(
        self, pg_pool: asyncpg.Pool, facility_in_db: FacilitySettings
    ) -> None:
        """Batches of the same 400 vehicles (and their positions), one in reverse order,
        written concurrently several times: every statement succeeds."""
        fleet = [robot(facility_in_db, f"r{i:03d}") for i in range(400)]
        await upsert_vehicles(pg_pool, fleet)
        for round_ in range(1, 6):
            seen = NOW + timedelta(seconds=round_)
            a = [replace(v, battery_pct=50.0 + round_, last_seen=seen) for v in fleet]
            b = [replace(v, battery_pct=60.0 + round_, last_seen=seen) for v in fleet[::-1]]
            await asyncio.gather(upsert_vehicles(pg_pool, a), upsert_vehicles(pg_pool, b))
            pa = [position(v, 1.0, float(round_), seen) for v in fleet]
            pb = [position(v, 2.0, float(round_), seen) for v in fleet[::-1]]
            await asyncio.gather(upsert_positions(pg_pool, pa), upsert_positions(pg_pool, pb))


class TestEvents:
    async def test_events_appended_in_batch_order(
        self, pg_pool: asyncpg.Pool, facility_in_db: FacilitySettings
    ) -> None:
        """One round trip; seq follows the batch order; details are JSON; at defaults to now."""
        v = robot(facility_in_db, "r1")
        await upsert_vehicles(pg_pool, [v])
        events = [
            VehicleEventRow(v.id, v.facility_id, "registered", {}, NOW),
            VehicleEventRow(v.id, v.facility_id, "went_online", {"reason": "state"}, NOW),
            VehicleEventRow(v.id, v.facility_id, "error_raised", {"errors": [{"type": "x"}]}),
        ]
        await insert_vehicle_events(pg_pool, events)
        rows = await pg_pool.fetch("SELECT event, details, at FROM vehicle_events ORDER BY seq")
        assert [r["event"] for r in rows] == ["registered", "went_online", "error_raised"]
        assert rows[2]["details"] == {"errors": [{"type": "x"}]}
        assert rows[2]["at"] > NOW

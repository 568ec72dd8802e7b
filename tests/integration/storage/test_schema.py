"""Schema guarantees of 0001_core (and the append-only rule later migrations reuse)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from dispatcher.config import FacilitySettings
from dispatcher.storage.fleet_store import (
    VehicleEventRow,
    VehicleRow,
    insert_vehicle_events,
    upsert_vehicles,
)
from fleet.model import VehicleKind, VehicleStatus, vehicle_id


def robot(facility: FacilitySettings, serial: str = "r1") -> VehicleRow:
    return VehicleRow(
        id=vehicle_id(VehicleKind.ROBOT, "acme", serial),
        facility_id=facility.id,
        kind="robot",
        manufacturer="acme",
        serial=serial,
        name=f"Robot {serial}",
        capabilities={},
        status="idle",
        online=True,
        maintenance=False,
        battery_pct=80.0,
        last_seen=datetime.now(UTC),
    )


class TestVehicleEventsAppendOnly:
    @pytest.fixture
    async def event_seq(self, pg_pool: asyncpg.Pool, facility_in_db: FacilitySettings) -> int:
        v = robot(facility_in_db)
        await upsert_vehicles(pg_pool, [v])
        await insert_vehicle_events(pg_pool, [VehicleEventRow(v.id, v.facility_id, "registered")])
        seq: int = await pg_pool.fetchval("SELECT max(seq) FROM vehicle_events")
        return seq

    async def test_update_rejected(self, pg_pool: asyncpg.Pool, event_seq: int) -> None:
        """History cannot be rewritten."""
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await pg_pool.execute(
                "UPDATE vehicle_events SET event = 'went_online' WHERE seq = $1", event_seq
            )

    async def test_delete_rejected(self, pg_pool: asyncpg.Pool, event_seq: int) -> None:
        """History cannot be erased row by row."""
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await pg_pool.execute("DELETE FROM vehicle_events WHERE seq = $1", event_seq)

    async def test_truncate_rejected(self, pg_pool: asyncpg.Pool, event_seq: int) -> None:
        """Nor wholesale."""
        with pytest.raises(asyncpg.RestrictViolationError):
            await pg_pool.execute("TRUNCATE vehicle_events CASCADE")
        assert await pg_pool.fetchval("SELECT count(*) FROM vehicle_events") == 1


class TestMissionEventsAppendOnly:
    async def test_update_delete_truncate_guarded(self, pg_pool: asyncpg.Pool) -> None:
        """mission_events (0003) uses the same trigger function for UPDATE, DELETE, TRUNCATE."""
        if await pg_pool.fetchval("SELECT to_regclass('mission_events')") is None:
            pytest.skip("mission_events not created by any migration yet")
        ops = await pg_pool.fetchval(
            """
            SELECT bit_or(t.tgtype::int) FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
            WHERE t.tgrelid = 'mission_events'::regclass AND p.proname = 'fleet_append_only'
            """
        )
        # pg_trigger.tgtype bits: 8 DELETE, 16 UPDATE, 32 TRUNCATE.
        assert ops is not None
        assert ops & (8 | 16 | 32) == 8 | 16 | 32
        with pytest.raises(asyncpg.RestrictViolationError):
            await pg_pool.execute("TRUNCATE mission_events CASCADE")


class TestSharedSequence:
    async def test_vehicle_events_take_seq_from_fleet_event_seq(
        self, pg_pool: asyncpg.Pool, facility_in_db: FacilitySettings
    ) -> None:
        """seq comes from fleet_event_seq, so mission and vehicle events interleave in order."""
        v = robot(facility_in_db)
        await upsert_vehicles(pg_pool, [v])
        await pg_pool.fetchval("SELECT nextval('fleet_event_seq')")
        last = await pg_pool.fetchval("SELECT last_value FROM fleet_event_seq")
        await insert_vehicle_events(pg_pool, [VehicleEventRow(v.id, v.facility_id, "went_online")])
        assert await pg_pool.fetchval("SELECT max(seq) FROM vehicle_events") == last + 1


class TestConstraints:
    def test_status_check_matches_the_model(self) -> None:
        """vehicles.status allows exactly fleet.model.VehicleStatus."""
        from importlib import resources

        sql = resources.files("dispatcher.storage").joinpath("migrations/0001_core.sql").read_text()
        for status in VehicleStatus:
            assert f"'{status.value}'" in sql

    @pytest.mark.parametrize(
        ("column", "value"),
        [("status", "flying"), ("kind", "drone"), ("battery_pct", 101.0)],
    )
    async def test_bad_vehicle_values_refused(
        self, pg_pool: asyncpg.Pool, facility_in_db: FacilitySettings, column: str, value: object
    ) -> None:
        """Statuses, kinds and battery levels are CHECK-constrained."""
        v = robot(facility_in_db)
        await upsert_vehicles(pg_pool, [v])
        with pytest.raises(asyncpg.CheckViolationError):
            await pg_pool.execute(f"UPDATE vehicles SET {column} = $1 WHERE id = $2", value, v.id)

    async def test_driver_has_no_manufacturer(
        self, pg_pool: asyncpg.Pool, facility_in_db: FacilitySettings
    ) -> None:
        """Drivers are named by their id alone (manufacturer '')."""
        with pytest.raises(asyncpg.CheckViolationError):
            await pg_pool.execute(
                "INSERT INTO vehicles (id, facility_id, kind, manufacturer, serial) "
                "VALUES ($1, $2, 'driver', 'acme', 'd1')",
                uuid.uuid4(),
                facility_in_db.id,
            )

    async def test_zone_takes_polygons_and_multipolygons_only(
        self, pg_pool: asyncpg.Pool, facility_in_db: FacilitySettings
    ) -> None:
        """A zone's area is a Polygon or MultiPolygon; a point is refused."""
        insert = (
            "INSERT INTO zones (facility_id, name, kind, area) "
            "VALUES ($1, $2, 'no_go', ST_GeogFromText($3))"
        )
        square = "POLYGON((0 0, 0 0.001, 0.001 0.001, 0.001 0, 0 0))"
        await pg_pool.execute(insert, facility_in_db.id, "a", f"SRID=4326;{square}")
        await pg_pool.execute(
            insert, facility_in_db.id, "b", f"SRID=4326;MULTIPOLYGON(({square[8:-1]}))"
        )
        with pytest.raises(asyncpg.CheckViolationError):
            await pg_pool.execute(insert, facility_in_db.id, "c", "SRID=4326;POINT(0 0)")

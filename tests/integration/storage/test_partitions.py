"""Partition maintenance against the real catalog."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from dispatcher.config import DatabaseSettings, FacilitySettings
from dispatcher.storage import partitions
from dispatcher.storage.fleet_store import VehicleEventRow, insert_vehicle_events, upsert_vehicles
from dispatcher.storage.partitions import (
    VEHICLE_EVENTS,
    day_bounds,
    drop_expired_partitions,
    ensure_partitions,
    ensure_partitions_for_days,
    list_partitions,
    partition_name,
    run_partition_maintenance,
)
from tests.integration.storage.test_schema import robot
from tests.unit.storage.conftest import wait_until


async def names(pool: asyncpg.Pool) -> set[str]:
    async with pool.acquire() as conn:
        return {p.name for p in await list_partitions(conn)}


class TestMigrationPartitions:
    async def test_fresh_database_accepts_telemetry_today(self, pg_pool: asyncpg.Pool) -> None:
        """The migration itself creates partitions around today (the template's build day)."""
        today = datetime.now(UTC).date()
        assert partition_name(today) in await names(pg_pool)


class TestEnsure:
    async def test_creates_range_and_is_idempotent(self, pg_pool: asyncpg.Pool) -> None:
        """Yesterday through today+ahead exist afterwards; a second run creates nothing."""
        today = date(2031, 7, 1)  # far from the migration's partitions
        async with pg_pool.acquire() as conn:
            created = await ensure_partitions(conn, today, 2)
            assert created == [partition_name(today + timedelta(days=d)) for d in range(-1, 3)]
            assert await ensure_partitions(conn, today, 2) == []
            bounds = {p.name: (p.lower, p.upper) for p in await list_partitions(conn)}
        assert bounds[partition_name(today)] == (
            datetime(2031, 7, 1, tzinfo=UTC),
            datetime(2031, 7, 2, tzinfo=UTC),
        )

    async def test_bounds_are_utc_whatever_the_session_timezone(
        self, pg_pool: asyncpg.Pool
    ) -> None:
        """Bounds are read back as instants even when the session is not in UTC."""
        async with pg_pool.acquire() as conn:
            await conn.execute("SET TIME ZONE 'America/New_York'")
            try:
                await ensure_partitions(conn, date(2031, 1, 10), 0)
                parts = {p.name: p for p in await list_partitions(conn)}
            finally:
                await conn.execute("RESET TIME ZONE")
        assert parts[partition_name(date(2031, 1, 10))].lower == datetime(2031, 1, 10, tzinfo=UTC)

    async def test_an_overlapping_partition_counts_as_existing(self, pg_pool: asyncpg.Pool) -> None:
        """A hand-made partition covering the day is respected, not fought."""
        await pg_pool.execute(
            "CREATE TABLE telemetry_handmade PARTITION OF telemetry "
            "FOR VALUES FROM ('2032-01-01 00:00+00') TO ('2032-02-01 00:00+00')"
        )
        async with pg_pool.acquire() as conn:
            assert await ensure_partitions(conn, date(2032, 1, 15), 1) == []


class TestDrop:
    async def test_drops_by_bounds_not_names(self, pg_pool: asyncpg.Pool) -> None:
        """Expired partitions go whatever their name; recent ones stay whatever theirs."""
        today = datetime.now(UTC).date()
        old = today - timedelta(days=40)
        await pg_pool.execute(
            "CREATE TABLE telemetry_archive_odd PARTITION OF telemetry FOR VALUES "
            f"FROM ('{old} 00:00+00') TO ('{old + timedelta(1)} 00:00+00')"
        )
        future = today + timedelta(days=30)
        # Named like an ancient day, holding a future one: must survive.
        await pg_pool.execute(
            "CREATE TABLE telemetry_p20000101 PARTITION OF telemetry FOR VALUES "
            f"FROM ('{future} 00:00+00') TO ('{future + timedelta(1)} 00:00+00')"
        )
        async with pg_pool.acquire() as conn:
            dropped = await drop_expired_partitions(conn, today, 30)
        assert dropped == ["telemetry_archive_odd"]
        left = await names(pg_pool)
        assert "telemetry_p20000101" in left
        assert partition_name(today) in left

    async def test_retention_boundary(self, pg_pool: asyncpg.Pool) -> None:
        """With retention N, the partition of today-N stays and today-N-1 goes."""
        today = datetime.now(UTC).date()
        async with pg_pool.acquire() as conn:
            await ensure_partitions(conn, today - timedelta(days=5), 0)  # creates today-6, -5
            dropped = await drop_expired_partitions(conn, today, 5)
        assert dropped == [partition_name(today - timedelta(days=6))]
        assert partition_name(today - timedelta(days=5)) in await names(pg_pool)


class TestMaintenanceLoop:
    async def test_loop_creates_ahead_and_keeps_running(self, pg_pool: asyncpg.Pool) -> None:
        """One round creates the partitions ahead; the task then sleeps until cancelled."""
        settings = DatabaseSettings(telemetry_partitions_ahead_days=6)
        task = asyncio.create_task(run_partition_maintenance(pg_pool, settings, interval_s=60))
        target = partition_name(datetime.now(UTC).date() + timedelta(days=6))

        async def created() -> bool:
            return target in await names(pg_pool)

        await wait_until(created)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    async def test_errors_are_logged_and_retried(self, captured_logs: Any) -> None:
        """Postgres away: each round logs the failure, the loop does not die."""
        from dispatcher.storage.db import create_pool

        pool = await create_pool("postgresql://postgres@127.0.0.1:1/x", min_size=0, max_size=1)
        try:
            logs = captured_logs(partitions)
            task = asyncio.create_task(
                run_partition_maintenance(pool, DatabaseSettings(), interval_s=0.01)
            )
            failed = "telemetry.partition_maintenance_failed"
            await wait_until(lambda: sum(e["event"] == failed for e in logs) >= 2)
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            await pool.close()


class TestVehicleEventsRetention:
    """vehicle_events is partitioned by day and kept for a retention (issue 13 item 9)."""

    async def _events_at(
        self, pool: asyncpg.Pool, facility: FacilitySettings, days: list[date]
    ) -> None:
        row = robot(facility, f"ret-{uuid.uuid4().hex[:6]}")
        await upsert_vehicles(pool, [row])
        await insert_vehicle_events(
            pool,
            [
                VehicleEventRow(row.id, facility.id, "status_changed", {"n": i}, day_bounds(d)[0])
                for i, d in enumerate(days)
            ],
        )

    async def test_migration_partitions_vehicle_events(self, pg_pool: asyncpg.Pool) -> None:
        """Rows before the migration sit in vehicle_events_legacy; days ahead exist."""
        today = datetime.now(UTC).date()
        async with pg_pool.acquire() as conn:
            parts = {p.name: p for p in await list_partitions(conn, VEHICLE_EVENTS)}
        assert "vehicle_events_legacy" in parts
        assert parts["vehicle_events_legacy"].lower is None
        assert partition_name(today + timedelta(days=2), VEHICLE_EVENTS) in parts

    async def test_old_days_are_dropped_and_recent_ones_kept(
        self, pg_pool: asyncpg.Pool, facility_in_db: FacilitySettings
    ) -> None:
        """maintain() drops vehicle_events days past the retention; rows of kept days stay."""
        today = datetime.now(UTC).date() + timedelta(days=400)  # past the legacy partition
        old, kept = today - timedelta(days=8), today - timedelta(days=2)
        async with pg_pool.acquire() as conn:
            await ensure_partitions_for_days(conn, [old, kept], VEHICLE_EVENTS)
        await self._events_at(pg_pool, facility_in_db, [old, old, kept])
        settings = DatabaseSettings(vehicle_events_retention_days=5)
        async with pg_pool.acquire() as conn:
            await partitions.maintain(conn, settings, today)
            left = {p.name for p in await list_partitions(conn, VEHICLE_EVENTS)}
        assert partition_name(old, VEHICLE_EVENTS) not in left
        assert partition_name(kept, VEHICLE_EVENTS) in left
        assert "vehicle_events_legacy" not in left  # everything before the migration is old too
        rows = await pg_pool.fetch("SELECT at FROM vehicle_events")
        assert [r["at"] for r in rows] == [day_bounds(kept)[0]]

    async def test_rows_stay_append_only(
        self, pg_pool: asyncpg.Pool, facility_in_db: FacilitySettings
    ) -> None:
        """Partitioning did not open a way to delete history row by row."""
        await self._events_at(pg_pool, facility_in_db, [datetime.now(UTC).date()])
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await pg_pool.execute("DELETE FROM vehicle_events")
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await pg_pool.execute("UPDATE vehicle_events SET details = '{}'")
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await pg_pool.execute("TRUNCATE vehicle_events")

"""Partition maintenance against the real catalog."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from dispatcher.config import DatabaseSettings
from dispatcher.storage import partitions
from dispatcher.storage.partitions import (
    drop_expired_partitions,
    ensure_partitions,
    list_partitions,
    partition_name,
    run_partition_maintenance,
)
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

"""Telemetry COPY into the partitioned table, and the writer when Postgres is away."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY

from dispatcher.storage import telemetry
from dispatcher.storage.db import create_pool
from dispatcher.storage.partitions import partition_name
from dispatcher.storage.telemetry import TelemetryRow, TelemetryWriter
from tests.unit.storage.conftest import wait_until

VID = uuid.UUID(int=7)
FID = uuid.UUID(int=8)


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def row(at: datetime, n: int = 0, **kw: Any) -> TelemetryRow:
    r = TelemetryRow(
        at, VID, FID, "state", 51.5, -0.12, "ground", float(n), 2.0, 0.3, 77.5, 1.5
    )  # reals exact in float4
    return r._replace(**kw)


async def where(pool: asyncpg.Pool) -> list[tuple[str, float]]:
    rows = await pool.fetch("SELECT tableoid::regclass::text AS part, x FROM telemetry ORDER BY x")
    return [(r["part"], r["x"]) for r in rows]


class TestCopy:
    async def test_rows_land_in_their_days_partition(self, pg_pool: asyncpg.Pool) -> None:
        """Each row goes to the partition of its UTC day, columns intact."""
        now = datetime.now(UTC)
        today, yesterday = now.date(), now.date() - timedelta(days=1)
        w = TelemetryWriter(pg_pool, max_rows=1000, flush_interval_s=0.05)
        w.add(row(now, 1))
        w.add(
            row(now - timedelta(days=1), 2, source="driver", lat=None, lon=None, battery_pct=None)
        )
        assert await w.flush() == 2
        assert await where(pg_pool) == [
            (partition_name(today), 1.0),
            (partition_name(yesterday), 2.0),
        ]
        got = await pg_pool.fetchrow("SELECT * FROM telemetry WHERE x = 1")
        assert got is not None
        assert tuple(got.values()) == tuple(row(now, 1))

    async def test_run_loop_writes(self, pg_pool: asyncpg.Pool) -> None:
        """The flush task COPYs what add() buffered, and the written counter rises."""
        before = sample("fleetd_telemetry_rows_written_total")
        w = TelemetryWriter(pg_pool, max_rows=10_000, flush_interval_s=0.02, batch_rows=100)
        now = datetime.now(UTC)
        for n in range(250):
            w.add(row(now, n))
        task = asyncio.create_task(w.run())
        try:
            await wait_until(lambda: w.buffered == 0)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert await pg_pool.fetchval("SELECT count(*) FROM telemetry") == 250
        assert sample("fleetd_telemetry_rows_written_total") - before == 250

    async def test_missing_partition_is_created_near_today(self, pg_pool: asyncpg.Pool) -> None:
        """A row for a day without a partition (maintenance behind) still lands."""
        now = datetime.now(UTC)
        await pg_pool.execute(f'DROP TABLE "{partition_name(now.date())}"')
        w = TelemetryWriter(pg_pool, max_rows=1000, flush_interval_s=0.05)
        w.add(row(now, 1))
        assert await w.flush() == 1
        assert await where(pg_pool) == [(partition_name(now.date()), 1.0)]

    async def test_unplaceable_rows_rejected_not_blocking(self, pg_pool: asyncpg.Pool) -> None:
        """Rows outside every partition, or malformed, are logged and given up; the rest land."""
        now = datetime.now(UTC)
        w = TelemetryWriter(pg_pool, max_rows=1000, flush_interval_s=0.05)
        w.add(row(now, 1))
        w.add(row(datetime(2001, 1, 1, tzinfo=UTC), 2))  # a vehicle clock gone wrong
        w.add(row(now, 3, source="bogus"))
        w.add(row(now, 4))
        assert await w.flush() == 2
        assert [x for _, x in await where(pg_pool)] == [1.0, 4.0]
        assert w.rejected == 2
        assert w.buffered == 0


class TestUnreachable:
    async def test_buffer_drops_oldest_counts_and_never_raises_from_run(
        self, captured_logs: Any
    ) -> None:
        """Postgres away: rows are held up to capacity, the oldest dropped and counted."""
        pool = await create_pool("postgresql://postgres@127.0.0.1:1/fleetd", min_size=0, max_size=1)
        try:
            w = TelemetryWriter(
                pool, max_rows=100, flush_interval_s=0.01, batch_rows=40, max_backoff_s=0.02
            )
            dropped_before = sample("fleetd_telemetry_rows_dropped_total")
            failures_before = sample("fleetd_db_flush_failures_total", {"batch": "telemetry"})
            now = datetime.now(UTC)
            logs = captured_logs(telemetry)
            task = asyncio.create_task(w.run())
            for n in range(250):
                w.add(row(now, n))
                if n % 50 == 0:
                    await asyncio.sleep(0.03)  # let the flush task fail a few times
            # The loop has failed a few more times since: had a failure escaped, the
            # task would be done (a bare sleep here could pass before any flush ran).
            seen = sample("fleetd_db_flush_failures_total", {"batch": "telemetry"})
            await wait_until(
                lambda: sample("fleetd_db_flush_failures_total", {"batch": "telemetry"}) >= seen + 3
            )
            assert not task.done()  # no exception escaped the loop
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert w.buffered == 100
            assert w.dropped == 150
            assert [r.x for r in w._buf] == [float(n) for n in range(150, 250)]
            assert sample("fleetd_telemetry_rows_dropped_total") - dropped_before == 150
            assert (
                sample("fleetd_db_flush_failures_total", {"batch": "telemetry"}) > failures_before
            )
            events = {e["event"] for e in logs}
            assert {"telemetry.rows_dropped", "telemetry.flush_failed"} <= events
        finally:
            await pool.close()

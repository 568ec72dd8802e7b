"""The telemetry writer's bounded buffer, against a fake pool (no database)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dispatcher.storage import telemetry
from dispatcher.storage.telemetry import COLUMNS, TelemetryRow, TelemetryWriter, row_is_valid
from tests.unit.storage.conftest import sample, wait_until

DROPPED = "fleetd_telemetry_rows_dropped_total"
WRITTEN = "fleetd_telemetry_rows_written_total"
FAILURES = "fleetd_db_flush_failures_total"
VID = uuid.UUID(int=1)
BASE = datetime(2026, 1, 1, tzinfo=UTC)


def row(n: int) -> TelemetryRow:
    """A valid row whose ``x`` is ``n``, to follow rows through the buffer."""
    return TelemetryRow(
        BASE + timedelta(milliseconds=n), VID, VID, "state", 1.0, 2.0, "m", float(n), 0.0, 0.0,
        50.0, 0.5,
    )  # fmt: skip


class FakePool:
    """Records COPY calls; fails while ``fail`` is set; can hold a COPY open on ``gate``."""

    def __init__(self) -> None:
        self.copied: list[TelemetryRow] = []
        self.calls = 0
        self.fail: BaseException | None = None
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()

    async def copy_records_to_table(
        self,
        table_name: str,
        *,
        records: Iterable[Sequence[object]],
        columns: Iterable[str] | None = None,
        timeout: float | None = None,
    ) -> str:
        assert table_name == "telemetry"
        assert tuple(columns or ()) == COLUMNS
        self.calls += 1
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        recs = list(records)
        self.copied.extend(recs)  # type: ignore[arg-type]
        return f"COPY {len(recs)}"


def writer(pool: FakePool, **kw: Any) -> TelemetryWriter:
    opts: dict[str, Any] = {"max_rows": 5, "flush_interval_s": 0.01, "batch_rows": 3}
    opts.update(kw)
    return TelemetryWriter(pool, **opts)  # type: ignore[arg-type]


class TestAdd:
    def test_add_is_synchronous(self) -> None:
        """add() is a plain function: the MQTT callback cannot await."""
        assert not asyncio.iscoroutinefunction(TelemetryWriter.add)

    def test_a_standby_keeps_no_row_of_a_facility_it_does_not_hold(self) -> None:
        """Active/standby: the active daemon stores the samples; a standby's copy of the
        same messages would store each twice."""
        held: set[uuid.UUID] = set()
        w = writer(FakePool(), holds=lambda fid: fid in held)
        w.add(row(0))
        held.add(VID)
        w.add(row(1))
        assert (w.buffered, w.not_held, w.dropped) == (1, 1, 0)

    def test_within_capacity_nothing_dropped(self) -> None:
        """Rows up to capacity are all held."""
        w = writer(FakePool())
        for n in range(5):
            w.add(row(n))
        assert (w.buffered, w.dropped) == (5, 0)

    def test_full_buffer_drops_oldest_and_counts(self, captured_logs: Any) -> None:
        """Beyond capacity the oldest rows go, the counter rises by as many, and we warn."""
        logs = captured_logs(telemetry)
        w = writer(FakePool())
        before = sample(DROPPED)
        for n in range(8):
            w.add(row(n))
        assert w.buffered == 5
        assert w.dropped == 3
        assert sample(DROPPED) - before == 3
        assert [r.x for r in w._buf] == [3.0, 4.0, 5.0, 6.0, 7.0]
        warnings = [e for e in logs if e["event"] == "telemetry.rows_dropped"]
        assert warnings
        assert warnings[0]["log_level"] == "warning"

    def test_drop_warning_is_rate_limited(self, captured_logs: Any) -> None:
        """A flood of drops gives one warning per interval, not one per row."""
        logs = captured_logs(telemetry)
        w = writer(FakePool(), warn_interval_s=3600)
        for n in range(1000):
            w.add(row(n))
        assert len([e for e in logs if e["event"] == "telemetry.rows_dropped"]) == 1
        assert w.dropped == 995


class TestFlush:
    async def test_rows_written_in_order_in_batches(self) -> None:
        """flush() COPYs everything buffered, oldest first, ``batch_rows`` at a time."""
        pool = FakePool()
        w = writer(pool)
        before = sample(WRITTEN)
        for n in range(5):
            w.add(row(n))
        assert await w.flush() == 5
        assert [r.x for r in pool.copied] == [0.0, 1.0, 2.0, 3.0, 4.0]
        assert pool.calls == 2
        assert w.buffered == 0
        assert sample(WRITTEN) - before == 5

    async def test_failed_batch_is_kept_in_front(self) -> None:
        """A failed COPY keeps its rows, before newer ones, and counts a failure."""
        pool = FakePool()
        pool.fail = ConnectionRefusedError("down")
        w = writer(pool)
        before = sample(FAILURES, {"batch": "telemetry"})
        for n in range(4):
            w.add(row(n))
        with pytest.raises(ConnectionRefusedError):
            await w.flush()
        assert [r.x for r in w._buf] == [0.0, 1.0, 2.0, 3.0]
        assert sample(FAILURES, {"batch": "telemetry"}) - before == 1
        pool.fail = None
        assert await w.flush() == 4
        assert [r.x for r in pool.copied] == [0.0, 1.0, 2.0, 3.0]

    async def test_rows_in_flight_count_against_capacity(self) -> None:
        """While a batch is being written, new rows evict the oldest waiting ones only."""
        pool = FakePool()
        pool.gate = asyncio.Event()
        w = writer(pool)
        for n in range(3):
            w.add(row(n))
        task = asyncio.create_task(w.flush())
        await pool.started.wait()
        for n in range(3, 8):  # 3 in flight + 2 waiting fit; 3 more evict waiting rows
            w.add(row(n))
        assert w.buffered == 5
        assert w.dropped == 3
        pool.fail = OSError("lost")
        pool.gate.set()
        with pytest.raises(OSError, match="lost"):
            await task
        # The in-flight batch came back in front of the survivors; still within capacity.
        assert [r.x for r in w._buf] == [0.0, 1.0, 2.0, 6.0, 7.0]

    async def test_cancelled_flush_keeps_rows(self) -> None:
        """Cancelling mid-COPY puts the batch back; it is not a failure."""
        pool = FakePool()
        pool.gate = asyncio.Event()
        w = writer(pool)
        w.add(row(0))
        before = sample(FAILURES, {"batch": "telemetry"})
        task = asyncio.create_task(w.flush())
        await pool.started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert [r.x for r in w._buf] == [0.0]
        assert sample(FAILURES, {"batch": "telemetry"}) == before


class TestRun:
    async def test_run_survives_failures_and_recovers(self, captured_logs: Any) -> None:
        """run() logs failures, backs off, and writes once the database is back."""
        logs = captured_logs(telemetry)
        pool = FakePool()
        pool.fail = OSError("down")
        w = writer(pool, max_backoff_s=0.02)
        w.add(row(0))
        task = asyncio.create_task(w.run())
        await wait_until(lambda: pool.calls >= 3)
        assert not task.done()
        pool.fail = None
        await wait_until(lambda: bool(pool.copied))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert [r.x for r in pool.copied] == [0.0]
        assert any(e["event"] == "telemetry.flush_failed" for e in logs)


class TestClose:
    async def test_close_flushes(self) -> None:
        """close() writes what is buffered."""
        pool = FakePool()
        w = writer(pool)
        w.add(row(0))
        await w.close()
        assert len(pool.copied) == 1

    async def test_close_counts_what_it_could_not_write(self) -> None:
        """If the last flush fails, the remaining rows are counted as dropped; no exception."""
        pool = FakePool()
        pool.fail = OSError("down")
        w = writer(pool)
        for n in range(4):
            w.add(row(n))
        before = sample(DROPPED)
        await w.close(timeout_s=0.5)
        assert sample(DROPPED) - before == 4
        assert w.buffered == 0

    async def test_close_is_bounded_by_timeout(self) -> None:
        """A hanging database cannot hold shutdown longer than the timeout."""
        pool = FakePool()
        pool.gate = asyncio.Event()  # never set
        w = writer(pool)
        w.add(row(0))
        async with asyncio.timeout(2):
            await w.close(timeout_s=0.05)
        assert w.dropped == 1

    async def test_rows_after_close_are_dropped_and_counted(self) -> None:
        """Nothing is silently lost after close()."""
        w = writer(FakePool())
        await w.close()
        w.add(row(1))
        assert (w.buffered, w.dropped) == (0, 1)


class TestRowValidation:
    @pytest.mark.parametrize(
        ("change", "ok"),
        [
            ({}, True),
            ({"at": datetime(2026, 1, 1)}, False),  # naive
            ({"source": "gps"}, False),
            ({"vehicle_id": "not-a-uuid"}, False),
            ({"battery_pct": 101.0}, False),
            ({"x": "1.0"}, False),
            ({"x": True}, False),
            ({"lat": None, "lon": None, "map_id": None}, True),
        ],
    )
    def test_row_is_valid(self, change: dict[str, Any], ok: bool) -> None:
        """Rows that would be refused by the encoder or the table's checks are spotted."""
        assert row_is_valid(row(0)._replace(**change)) is ok

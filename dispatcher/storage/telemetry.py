"""Telemetry: a bounded in-memory buffer filled by the MQTT callback, COPYed in batches.

:meth:`TelemetryWriter.add` is called for every vehicle message (>10k/s), synchronously on
the event loop, so it only appends to a deque. :meth:`TelemetryWriter.run` COPYs batches
into the partitioned ``telemetry`` parent. When Postgres is slow or away the buffer holds
at most ``max_rows``; beyond that the oldest rows go, counted in
``fleetd_telemetry_rows_dropped_total`` and reported by a rate-limited warning.

Delivery is at-least-once per row: a COPY that fails ambiguously (cancelled or timed out
mid-flight) is retried, so a row may rarely be written twice. Telemetry tolerates that.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import NamedTuple

import asyncpg
import structlog

from dispatcher.metrics import (
    DB_FLUSH_FAILURES,
    DB_FLUSH_SECONDS,
    TELEMETRY_BUFFERED,
    TELEMETRY_ROWS_DROPPED,
    TELEMETRY_ROWS_REJECTED,
    TELEMETRY_ROWS_WRITTEN,
)
from dispatcher.retry import Backoff, BackoffPolicy
from dispatcher.storage.partitions import (
    Partition,
    day_bounds,
    ensure_partitions_for_days,
    list_partitions,
)

log = structlog.get_logger(__name__)

TABLE = "telemetry"
SOURCES = frozenset({"state", "visualization", "driver"})
_BATCH_LABEL = "telemetry"


class TelemetryRow(NamedTuple):
    """One telemetry sample; fields in the order of the ``telemetry`` table's columns.

    ``at`` must be timezone-aware; fleetd uses the receive time, so rows land in the
    partitions kept ahead rather than wherever a vehicle's clock says.
    """

    at: datetime
    vehicle_id: uuid.UUID
    facility_id: uuid.UUID
    source: str  # state | visualization | driver
    lat: float | None
    lon: float | None
    map_id: str | None
    x: float | None
    y: float | None
    theta: float | None
    battery_pct: float | None
    speed_mps: float | None


COLUMNS: tuple[str, ...] = TelemetryRow._fields


_NUMBER_FIELDS = ("lat", "lon", "x", "y", "theta", "battery_pct", "speed_mps")

#: Errors that mean "this batch's data is refused", as opposed to "Postgres is away":
#: server-side data/constraint errors, and asyncpg's client-side encoding errors.
_DATA_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    ValueError,
    TypeError,
)


def row_is_valid(row: TelemetryRow) -> bool:
    """Whether a row can be encoded and passes the table's constraints (partitions aside).

    Only run on a batch Postgres refused: the hot path trusts the links' validation.
    """
    # Typed as object: a row from a buggy caller may hold anything, whatever the hints say.
    at: object = row.at
    ids: tuple[object, ...] = (row.vehicle_id, row.facility_id)
    map_id: object = row.map_id
    if not (isinstance(at, datetime) and at.utcoffset() is not None):
        return False
    if not all(isinstance(i, uuid.UUID) for i in ids):
        return False
    if row.source not in SOURCES or not (map_id is None or isinstance(map_id, str)):
        return False
    for name in _NUMBER_FIELDS:
        value: object = getattr(row, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            return False
    return row.battery_pct is None or 0 <= row.battery_pct <= 100


def _covered_days(partitions: Sequence[Partition], days: set[date]) -> set[date]:
    covered: set[date] = set()
    for day in days:
        start, end = day_bounds(day)
        for p in partitions:
            if p.is_default:
                continue
            if (p.lower is None or p.lower <= start) and (p.upper is None or p.upper >= end):
                covered.add(day)
                break
    return covered


class TelemetryWriter:
    """Buffers telemetry rows and writes them with COPY; drops the oldest when full.

    Not thread-safe: call :meth:`add` on the event loop (the MQTT callback runs there).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        max_rows: int,
        flush_interval_s: float,
        batch_rows: int = 20_000,
        copy_timeout_s: float = 30.0,
        max_backoff_s: float = 10.0,
        warn_interval_s: float = 10.0,
        holds: Callable[[uuid.UUID], bool] | None = None,
    ) -> None:
        """``holds``: with active/standby, whether this daemon holds a facility's lease;
        rows of the others are not buffered (the active daemon stores them; samples of
        a takeover's few seconds are not kept, unlike vehicle events)."""
        if max_rows < 1 or batch_rows < 1:
            raise ValueError("max_rows and batch_rows must be positive")
        self._pool = pool
        self._max_rows = max_rows
        self._flush_interval_s = flush_interval_s
        self._batch_rows = batch_rows
        self._copy_timeout_s = copy_timeout_s
        self._warn_interval_s = warn_interval_s
        # No maxlen: a failed batch goes back to the *front*, and a maxlen deque would then
        # evict the newest rows. The bound is enforced in add() instead.
        self._buf: deque[TelemetryRow] = deque()
        self._inflight = 0  # rows taken out for the COPY in progress; still count as held
        self._lock = asyncio.Lock()  # one COPY at a time (run() and flush()/close())
        self._closed = False
        # After a failed flush: wait the flush interval at least, up to max_backoff_s.
        self._backoff = Backoff(
            BackoffPolicy(
                base_s=flush_interval_s * 2,
                cap_s=max(max_backoff_s, flush_interval_s),
                floor_s=flush_interval_s,
            )
        )
        self._holds = holds
        self.written = 0
        self.not_held = 0
        self.dropped = 0
        self.rejected = 0
        self._dropped_unreported = 0
        self._next_warn_at = 0.0

    # Hot path -------------------------------------------------------------------------------

    def add(self, row: TelemetryRow) -> None:
        """Buffer one row. O(1), never blocks; drops (and counts) the oldest when full."""
        if self._holds is not None and not self._holds(row.facility_id):
            self.not_held += 1
            return
        buf = self._buf
        if len(buf) + self._inflight >= self._max_rows or self._closed:
            if buf and not self._closed:
                buf.popleft()  # the oldest row not already on its way to Postgres
                buf.append(row)
            # Otherwise the in-flight batch fills the buffer (or we are closed): the new row
            # itself is the one that goes.
            self._count_drop()
            return
        buf.append(row)

    def _count_drop(self, n: int = 1) -> None:
        self.dropped += n
        self._dropped_unreported += n
        TELEMETRY_ROWS_DROPPED.inc(n)
        self._maybe_warn()

    def _maybe_warn(self) -> None:
        if not self._dropped_unreported:
            return
        now = time.monotonic()
        if now < self._next_warn_at:
            return
        self._next_warn_at = now + self._warn_interval_s
        log.warning(
            "telemetry.rows_dropped",
            dropped=self._dropped_unreported,
            dropped_total=self.dropped,
            buffered=self.buffered,
            capacity=self._max_rows,
        )
        self._dropped_unreported = 0

    # State ----------------------------------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Rows held: waiting in the buffer or being written."""
        return len(self._buf) + self._inflight

    @property
    def capacity(self) -> int:
        """Most rows held before the oldest are dropped."""
        return self._max_rows

    # Writing --------------------------------------------------------------------------------

    async def flush(self) -> int:
        """Write what is buffered at the call, batch by batch; return the rows written.

        Rows added meanwhile wait for the next flush, so a steady stream cannot keep this
        going forever. Raises the database error if a batch fails; its rows stay buffered
        (oldest first).
        """
        total = 0
        async with self._lock:
            batches = -(-len(self._buf) // self._batch_rows)  # ceiling division
            for _ in range(batches):
                if not self._buf:
                    break
                total += await self._write_batch()
        return total

    async def _write_batch(self) -> int:
        n = min(self._batch_rows, len(self._buf))
        popleft = self._buf.popleft
        batch = [popleft() for _ in range(n)]
        self._inflight = n
        try:
            written = await self._copy(batch)
        except BaseException as exc:
            # Put the rows back in front: they are older than anything added meanwhile, and
            # add() kept buffered + in-flight within capacity, so nothing needs evicting.
            self._buf.extendleft(reversed(batch))
            if not isinstance(exc, asyncio.CancelledError):
                DB_FLUSH_FAILURES.labels(batch=_BATCH_LABEL).inc()
            raise
        finally:
            self._inflight = 0
            TELEMETRY_BUFFERED.set(self.buffered)
        self.written += written
        TELEMETRY_ROWS_WRITTEN.inc(written)
        return written

    async def _copy(self, batch: list[TelemetryRow]) -> int:
        start = time.perf_counter()
        try:
            await self._copy_records(batch)
        except _DATA_ERRORS as exc:
            # Usually "no partition for row" (a clock far off, or maintenance behind), else
            # a malformed row. Either would fail forever: repair what we can, retry once.
            batch = await self._repair(batch, exc)
            if batch:
                try:
                    await self._copy_records(batch)
                except _DATA_ERRORS as exc2:
                    # Still refused: retrying cannot help, and holding it would block all
                    # telemetry behind it. Give the batch up, loudly.
                    self.rejected += len(batch)
                    TELEMETRY_ROWS_REJECTED.inc(len(batch))
                    log.error("telemetry.batch_rejected", rows=len(batch), error=repr(exc2))
                    return 0
        DB_FLUSH_SECONDS.labels(batch=_BATCH_LABEL).observe(time.perf_counter() - start)
        return len(batch)

    async def _copy_records(self, batch: list[TelemetryRow]) -> None:
        await self._pool.copy_records_to_table(
            TABLE, records=batch, columns=COLUMNS, timeout=self._copy_timeout_s
        )

    async def _repair(self, batch: list[TelemetryRow], exc: Exception) -> list[TelemetryRow]:
        """Drop invalid rows, create missing partitions near today, drop rows still homeless."""
        good = [r for r in batch if row_is_valid(r)]
        days = {r.at.astimezone(UTC).date() for r in good}
        today = datetime.now(UTC).date()
        near = {d for d in days if abs((d - today).days) <= 1}
        async with self._pool.acquire() as conn:
            created = await ensure_partitions_for_days(conn, near)
            covered = _covered_days(await list_partitions(conn), days)
        if created:
            log.info("telemetry.partitions_created", partitions=created)
        kept = [r for r in good if r.at.astimezone(UTC).date() in covered]
        bad = len(batch) - len(kept)
        if bad:
            self.rejected += bad
            TELEMETRY_ROWS_REJECTED.inc(bad)
            log.error(
                "telemetry.rows_rejected",
                rows=bad,
                reason="invalid or outside every partition",
                error=repr(exc),
                outside_days=sorted(str(d) for d in days - covered)[:10],
            )
        return kept

    async def run(self) -> None:
        """Flush every ``flush_interval_s`` until cancelled; failures back off and retry.

        Never raises except :class:`asyncio.CancelledError`.
        """
        delay = self._flush_interval_s
        while True:
            await asyncio.sleep(delay)
            try:
                async with self._lock:
                    if self._buf:
                        await self._write_batch()
                self._backoff.reset()
                # A backlog (after an outage) is drained batch after batch without waiting.
                delay = 0.0 if len(self._buf) >= self._batch_rows else self._flush_interval_s
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = self._backoff.next_delay()
                log.warning(
                    "telemetry.flush_failed",
                    error=repr(exc),
                    buffered=self.buffered,
                    retry_in_s=round(delay, 3),
                    consecutive_failures=self._backoff.failures,
                )
            TELEMETRY_BUFFERED.set(self.buffered)
            self._maybe_warn()

    async def close(self, timeout_s: float = 5.0) -> None:
        """Write what is buffered, within ``timeout_s``; rows left are counted as dropped.

        Never raises (shutdown must go on). Rows added afterwards are dropped and counted.
        """
        self._closed = True
        try:
            async with asyncio.timeout(timeout_s):
                await self.flush()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("telemetry.final_flush_failed", error=repr(exc), rows=self.buffered)
        left = len(self._buf)
        if left:
            self._buf.clear()
            self._next_warn_at = 0.0  # report this one now
            self._count_drop(left)
        TELEMETRY_BUFFERED.set(self.buffered)


__all__ = ["COLUMNS", "SOURCES", "TelemetryRow", "TelemetryWriter"]

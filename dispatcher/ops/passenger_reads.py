"""Audit rows for reads of passenger data (``api.audit_passenger_reads``, on by default).

A mission carries its passenger's reference and display name: health-related personal
data about who was moved where and when. Who looked at it is recorded like a change is,
one row per response that held any (``missions.read``), naming the missions; responses
with no passenger data write nothing, so dashboards polling empty pages cost no writes.

In the daemon the rows are written by :class:`PassengerReadLog` in batches, off the
reader's path: a read does not wait for a commit (and its WAL flush) of its own, which
made every ``GET`` of a passenger mission as slow as a write and, under load, ten times
slower than the read itself. What that costs and what it keeps:

- a row reaches the database within :data:`FLUSH_INTERVAL_S` of the response (one
  multi-row ``INSERT`` per batch); the rows of the last interval before a crash of the
  daemon can be lost (a clean shutdown writes them: :meth:`PassengerReadLog.close`);
- memory is bounded: with :data:`MAX_PENDING` rows waiting (the database slow or away),
  the next read waits for them to be written, and is refused (500) when they cannot be:
  passenger data is not shown without its row being on its way;
- outside the daemon's task (tests, tools) each row is written before the response.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg
import structlog

from dispatcher.audit.log import AuditEntry, append_audit_many
from dispatcher.missions.domain import MissionRecord
from dispatcher.ops import audit
from dispatcher.ops.caller import Caller

log = structlog.get_logger(__name__)

#: Mission ids named in one row (a page holds at most 200; the count is always exact).
MAX_IDS = 200
#: How long read rows gather before they are written together (seconds).
FLUSH_INTERVAL_S = 0.05
#: Read rows waiting at most; beyond, a read waits for the batch to be written.
MAX_PENDING = 2_000


def read_entry(caller: Caller, missions: Sequence[MissionRecord]) -> AuditEntry | None:
    """The row recording that ``caller`` was shown ``missions`` (None: no passenger)."""
    shown = [m for m in missions if m.passenger_ref is not None or m.passenger_name is not None]
    if not shown:
        return None
    facilities = {m.facility_id for m in shown}
    return audit.entry(
        caller,
        action="missions.read",
        resource_type="mission",
        resource_id=str(shown[0].id) if len(shown) == 1 else None,
        success=True,
        details={"passengers": len(shown), "mission_ids": [str(m.id) for m in shown[:MAX_IDS]]},
        facility_id=facilities.pop() if len(facilities) == 1 else None,
    )


async def record_passenger_read(
    pool: asyncpg.Pool, caller: Caller, missions: Sequence[MissionRecord]
) -> None:
    """Record at once that ``caller`` was shown the passengers of ``missions`` (if any had one)."""
    row = read_entry(caller, missions)
    if row is not None:
        await audit.record(pool, row)


class PassengerReadLog:
    """Writes read rows in batches while :meth:`run` (the daemon's task) runs."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        interval_s: float = FLUSH_INTERVAL_S,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self._pool = pool
        self.interval_s = interval_s
        self.max_pending = max_pending
        self._pending: list[AuditEntry] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._running = False
        #: Rows written, and batches.
        self.written = 0
        self.batches = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def record(self, caller: Caller, missions: Sequence[MissionRecord]) -> None:
        """Record that ``caller`` was shown ``missions``: queued for the next batch (at
        once when no task runs). Raises the storage error when the queue is full and
        cannot be written."""
        row = read_entry(caller, missions)
        if row is None:
            return
        if not self._running:
            await audit.record(self._pool, row)
            return
        if len(self._pending) >= self.max_pending:
            await self.flush()
        self._pending.append(row)
        self._wake.set()

    async def flush(self) -> int:
        """Write the queued rows in one transaction; their number. On a storage error
        the rows stay queued (for the next try) and the error is raised."""
        async with self._lock:
            rows, self._pending = self._pending, []
            if not rows:
                return 0
            try:
                async with audit.transaction(self._pool) as conn:
                    await append_audit_many(conn, rows)
            except audit.STORAGE_ERRORS:
                self._pending[:0] = rows
                raise
            self.written += len(rows)
            self.batches += 1
            return len(rows)

    async def run(self) -> None:
        """Write the queued rows every ``interval_s`` while there are any."""
        self._running = True
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                await asyncio.sleep(self.interval_s)
                try:
                    await self.flush()
                except audit.STORAGE_ERRORS:
                    log.exception("audit.write_failed", action="missions.read", rows=self.pending)
                    self._wake.set()
                    await asyncio.sleep(1.0)
        finally:
            self._running = False

    async def close(self) -> None:
        """Write what is queued (at shutdown); from now on each row is written at once."""
        self._running = False
        try:
            await self.flush()
        except audit.STORAGE_ERRORS:
            log.exception("audit.write_failed", action="missions.read", lost=self.pending)

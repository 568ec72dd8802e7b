"""Refused requests, audited cheaply and boundedly (issue 13, item 1).

An ``auth.denied`` row per refused request let anyone without a token grow the audit log
without limit (it refuses DELETE) while holding a pool connection per refusal. Instead,
refusals are tallied per *key* (source address, reason, route, token) and per interval:

- the first refusal of a key in an interval is written at once (``count`` 1), so a single
  refused request still shows in the audit log when it happens, at most
  :data:`DEFAULT_MAX_IMMEDIATE` such rows per interval in all;
- the refusals that follow it in the interval are counted in memory and written as one
  row per key when the interval ends (``details.count``, first and last time, a sample
  path), by the daemon's task (:meth:`DenialLog.run`), by the next refusal after the
  interval, or at shutdown (:meth:`DenialLog.close`);
- keys are bounded (:data:`DEFAULT_MAX_KEYS`); refusals beyond go to one overflow key
  per reason and route (source ``*``), so memory stays bounded under a spoofed flood;
- stored paths are cut to :data:`~dispatcher.ops.access.MAX_PATH` characters.

So a flood costs at most ``max_immediate`` + ``max_keys`` rows per interval, whatever
its size. :class:`DenialTally` is the pure bookkeeping; :class:`DenialLog` writes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import structlog

from dispatcher.audit.log import AuditEntry
from dispatcher.ops import audit
from dispatcher.ops.access import Denial, denial_entry

log = structlog.get_logger(__name__)

DEFAULT_INTERVAL_S = 60.0
DEFAULT_MAX_KEYS = 1_000
DEFAULT_MAX_IMMEDIATE = 100
#: Source of the overflow key.
OVERFLOW_SOURCE = "*"


@dataclass(frozen=True, slots=True)
class DenialKey:
    source: str | None
    reason: str
    route: str
    token_id: uuid.UUID | None


@dataclass(slots=True)
class _Count:
    first: Denial
    first_at: datetime
    last_at: datetime
    #: Refusals not written yet (the first one is when it was written at once).
    pending: int = 0


@dataclass(slots=True)
class DenialTally:
    """Per-interval counts of refusals by :class:`DenialKey`; no I/O.

    :meth:`add` says whether the refusal is to be written at once; :meth:`roll` ends the
    interval and returns the rows the counted refusals come to.
    """

    max_keys: int = DEFAULT_MAX_KEYS
    max_immediate: int = DEFAULT_MAX_IMMEDIATE
    _counts: dict[DenialKey, _Count] = field(default_factory=dict)
    _immediate: int = 0

    def add(self, denial: Denial, at: datetime) -> bool:
        """Count ``denial``; True when it is the first of its key and to be written now."""
        key = _key(denial)
        known = self._counts.get(key)
        if known is None and len(self._counts) >= self.max_keys:
            key = DenialKey(OVERFLOW_SOURCE, denial.reason, denial.route, None)
            known = self._counts.get(key)
        if known is not None:
            known.pending += 1
            known.last_at = at
            return False
        now_too = self._immediate < self.max_immediate and key.source != OVERFLOW_SOURCE
        self._counts[key] = _Count(denial, at, at, pending=0 if now_too else 1)
        self._immediate += now_too
        return now_too

    def roll(self) -> list[AuditEntry]:
        """End the interval: one summary row per key with refusals not yet written."""
        rows = [summary_entry(key, c) for key, c in self._counts.items() if c.pending]
        self._counts.clear()
        self._immediate = 0
        return rows

    def __len__(self) -> int:
        return len(self._counts)


def single_entry(denial: Denial) -> AuditEntry:
    """The row of one refusal written when it happens (``count`` 1, path cut)."""
    row = denial_entry(denial)
    return dataclasses.replace(row, details={**row.details, "count": 1})


def summary_entry(key: DenialKey, count: _Count) -> AuditEntry:
    """The row of the refusals of ``key`` counted in one interval."""
    row = denial_entry(count.first)
    details = {
        **row.details,
        "count": count.pending,
        "first_at": count.first_at.isoformat(),
        "last_at": count.last_at.isoformat(),
        "aggregated": True,
    }
    source = OVERFLOW_SOURCE if key.source == OVERFLOW_SOURCE else row.source
    return dataclasses.replace(row, details=details, source=source)


def _key(denial: Denial) -> DenialKey:
    caller = denial.caller
    token = caller.token_id if caller is not None else denial.token_id
    return DenialKey(denial.source, denial.reason, denial.route, token)


class DenialLog:
    """Writes :class:`DenialTally`'s rows: at once for first refusals, per interval else."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        max_keys: int = DEFAULT_MAX_KEYS,
        max_immediate: int = DEFAULT_MAX_IMMEDIATE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self.interval_s = interval_s
        self._tally = DenialTally(max_keys=max_keys, max_immediate=max_immediate)
        self._clock = clock
        self._ends = clock() + interval_s

    async def record(self, denial: Denial) -> None:
        """Count a refusal; write what is due (its own row, the last interval's summary)."""
        rows = self._roll_if_due()
        if self._tally.add(denial, datetime.now(UTC)):
            rows.append(single_entry(denial))
        if rows:
            await self._write(rows)

    async def flush(self) -> int:
        """End the interval now and write its summary rows; their number."""
        rows = self._roll()
        if rows:
            await self._write(rows)
        return len(rows)

    async def run(self) -> None:
        """Write each interval's summary when it ends; the daemon's task."""
        # Interval 0 (a row per refusal) leaves nothing to summarise: poll lazily then.
        least = 1.0 if self.interval_s <= 0 else 0.0
        while True:
            await asyncio.sleep(max(self._ends - self._clock(), least))
            if self._clock() >= self._ends:
                await self.flush()

    async def close(self) -> None:
        """Write what is counted (at shutdown)."""
        await self.flush()

    def _roll_if_due(self) -> list[AuditEntry]:
        return self._roll() if self._clock() >= self._ends else []

    def _roll(self) -> list[AuditEntry]:
        self._ends = self._clock() + self.interval_s
        return self._tally.roll()

    async def _write(self, rows: list[AuditEntry]) -> None:
        try:
            async with audit.transaction(self._pool) as conn:
                for row in rows:
                    await audit.append(conn, row)
        except audit.STORAGE_ERRORS:  # the refusals stand even when they cannot be recorded
            log.exception("audit.write_failed", action="auth.denied", rows=len(rows))

"""The write path's way round a PostgreSQL outage: spool, then flush in order.

This is the one place where mission events and audit rows leave for the spool and come
back from it (the active/standby lease's fencing token, when it comes, belongs here and
in :mod:`dispatcher.ops.missions`, the two places writes go through):

- :meth:`DurableWrites.audit` writes an audit row in a transaction of its own, or spools
  it when PostgreSQL cannot be reached (:data:`~dispatcher.storage.db.CONNECT_ERRORS`).
- :meth:`DurableWrites.spool_transition` keeps a dispatch engine's mission event (the
  engine carries on from its memory of the mission; the lifecycle is applied in memory
  with :func:`~dispatcher.missions.changes.plan_change`, so an illegal step is refused
  before it is spooled).
- :meth:`DurableWrites.run` (the task ``fleetd.spool``) flushes the spool when the
  database answers again: oldest row first, each in one transaction together with its id
  in ``spool_applied`` (a row seen there already is skipped: flushed twice, stored once).
  A mission event goes through :meth:`MissionOps.transition` again, so the row, its event
  and the lifecycle check are exactly those of a live write; audit rows are plain inserts,
  sealed into the hash chain by the sealer like any other.

A full spool (:class:`~dispatcher.storage.spool.SpoolFull`) is the caller's to handle:
mission creation answers 503; a vehicle command's audit row is logged instead.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg
import structlog

from dispatcher.audit.log import AuditEntry, append_audit
from dispatcher.metrics import SPOOL_FLUSHED
from dispatcher.missions.changes import check_arguments, plan_change
from dispatcher.missions.domain import MissionRecord
from dispatcher.missions.lifecycle import MissionEvent
from dispatcher.ops.caller import Caller
from dispatcher.retry import Backoff, BackoffPolicy
from dispatcher.storage.db import CONNECT_ERRORS, Conn
from dispatcher.storage.spool import Spool, SpooledRow

if TYPE_CHECKING:
    from dispatcher.ops.missions import MissionOps

log = structlog.get_logger(__name__)

AUDIT = "audit"
MISSION_EVENT = "mission_event"

#: What tells "PostgreSQL is away" from "PostgreSQL refused this": only the former spools.
UNREACHABLE: tuple[type[BaseException], ...] = (
    *CONNECT_ERRORS,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
)

_MARK_SQL = """
INSERT INTO spool_applied (id, kind, spooled_at) VALUES ($1, $2, $3)
ON CONFLICT (id) DO NOTHING RETURNING id
"""


def audit_body(row: AuditEntry) -> dict[str, Any]:
    """An audit entry as spooled JSON."""
    body = dataclasses.asdict(row)
    for key in ("facility_id", "actor_token_id"):
        body[key] = str(body[key]) if body[key] is not None else None
    body["details"] = dict(row.details)
    return body


def audit_from_body(body: Mapping[str, Any], spooled_at: str) -> AuditEntry:
    data = dict(body)
    for key in ("facility_id", "actor_token_id"):
        data[key] = uuid.UUID(data[key]) if data.get(key) else None
    # The row's own time is the insert's; when it really happened travels in details.
    data["details"] = {**data.get("details", {}), "spooled_at": spooled_at}
    return AuditEntry(**data)


async def mark_applied(conn: Conn, row: SpooledRow) -> bool:
    """Record ``row`` as written, in ``conn``'s transaction; False when it already was."""
    at = datetime.fromisoformat(row.at)
    return await conn.fetchval(_MARK_SQL, row.id, row.kind, at) is not None


class DurableWrites:
    """PostgreSQL when it answers, the spool while it does not; one per daemon."""

    def __init__(self, pool: asyncpg.Pool, spool: Spool, *, flush_interval_s: float) -> None:
        self.pool = pool
        self.spool = spool
        self._interval = flush_interval_s
        self._wake = asyncio.Event()
        self._ops: MissionOps | None = None
        #: Set while PostgreSQL is believed away (a write failed, no flush succeeded since).
        self.db_away = False

    def attach(self, ops: MissionOps) -> None:
        """The mission operations the flusher replays mission events through."""
        self._ops = ops

    @property
    def degraded(self) -> bool:
        """Rows wait in the spool, or the database was away at the last write."""
        return self.db_away or not self.spool.empty

    # Writes -------------------------------------------------------------------------------

    async def audit(self, row: AuditEntry) -> None:
        """Write ``row`` on its own, or spool it; raises SpoolFull when neither works."""
        if not self.spool.empty:
            await self._keep(AUDIT, audit_body(row))  # keep the order: behind what waits
            return
        try:
            async with self.pool.acquire() as conn:
                await append_audit(conn, row)
        except UNREACHABLE as exc:
            log.warning("spool.db_unreachable", error=type(exc).__name__, action=row.action)
            await self._keep(AUDIT, audit_body(row))

    async def spool_transition(
        self,
        caller: Caller,
        before: MissionRecord,
        event: MissionEvent,
        *,
        vehicle_id: uuid.UUID | None = None,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> MissionRecord | None:
        """Keep a mission event the database could not take; the mission as it now is in
        memory (None when the lifecycle refuses the step: nothing is kept).

        Raises :class:`IllegalTransition` and the other refusals of ``plan_change`` as the
        store would, and :class:`SpoolFull`.
        """
        check_arguments(event, vehicle_id=vehicle_id, priority=None)
        change = plan_change(before, event, vehicle_id=vehicle_id, reason=reason, details=details)
        if change is None:
            return before
        body = {
            "mission_id": str(before.id),
            "event": event.value,
            "vehicle_id": str(vehicle_id) if vehicle_id else None,
            "reason": reason,
            "details": dict(details or {}),
            "subject": caller.subject,
            "audited": caller.audited,
        }
        await self._keep(MISSION_EVENT, body)
        step = change.step
        return dataclasses.replace(
            before,
            status=step.to_status,
            priority=change.priority,
            vehicle_id=change.vehicle_id,
            version=before.version + 1,
        )

    async def _keep(self, kind: str, body: dict[str, Any]) -> None:
        await self.spool.append(kind, body)
        self.db_away = True
        self._wake.set()

    # Flush --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Flush whenever rows wait, retrying with back-off while the database is away."""
        backoff = Backoff(BackoffPolicy(base_s=self._interval, cap_s=10.0, floor_s=0.2))
        while True:
            if self.spool.empty:
                self._wake.clear()
                try:
                    async with asyncio.timeout(self._interval):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                if self.spool.empty:
                    if self.db_away and await self._db_answers():
                        self.db_away = False
                    continue
            try:
                flushed = await self.flush()
            except UNREACHABLE as exc:
                delay = backoff.next_delay()
                log.info(
                    "spool.flush_waiting", error=type(exc).__name__, retry_in_s=round(delay, 2)
                )
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            if flushed:
                log.info("spool.flushed", rows=flushed, left=len(self.spool))

    async def _db_answers(self) -> bool:
        try:
            return bool(await self.pool.fetchval("SELECT 1") == 1)
        except UNREACHABLE:
            return False

    async def flush(self) -> int:
        """Write every spooled row, oldest first; the rows written (raises when the
        database is still away: what was written so far stays written)."""
        done = 0
        try:
            for row in self.spool.pending():
                await self._apply(row)
                done += 1
                # Forget in small groups so a crash replays little (replays are harmless).
                if done % 50 == 0:
                    await self.spool.remove_first(50)
                    done = 0
        finally:
            await self.spool.remove_first(done)
        if self.spool.empty:
            self.db_away = False
        return done

    async def _apply(self, row: SpooledRow) -> None:
        if row.kind == AUDIT:
            async with self.pool.acquire() as conn, conn.transaction():
                if not await mark_applied(conn, row):
                    SPOOL_FLUSHED.labels(row.kind, "duplicate").inc()
                    return
                await append_audit(conn, audit_from_body(row.body, row.at))
            SPOOL_FLUSHED.labels(row.kind, "applied").inc()
        elif row.kind == MISSION_EVENT:
            await self._apply_mission_event(row)
        else:
            log.error("spool.unknown_kind", kind=row.kind, spool_id=str(row.id))
            SPOOL_FLUSHED.labels(row.kind, "refused").inc()

    async def _apply_mission_event(self, row: SpooledRow) -> None:
        if self._ops is None:
            raise RuntimeError("DurableWrites.attach was not called")
        b = row.body
        caller = Caller(subject=str(b["subject"]), audited=bool(b["audited"]))
        result = await self._ops.apply_spooled(
            caller,
            uuid.UUID(b["mission_id"]),
            MissionEvent(b["event"]),
            row,
            vehicle_id=uuid.UUID(b["vehicle_id"]) if b.get("vehicle_id") else None,
            reason=b.get("reason"),
            details={**b.get("details", {}), "spooled_at": row.at},
        )
        from dispatcher.ops.missions import MissionRefused, SpoolReplay

        if isinstance(result, SpoolReplay):
            SPOOL_FLUSHED.labels(row.kind, "duplicate").inc()
        elif isinstance(result, MissionRefused):
            log.warning(
                "spool.mission_event_refused",
                spool_id=str(row.id),
                mission_id=b["mission_id"],
                mission_event=b["event"],
                reason=result.reason.value,
            )
            SPOOL_FLUSHED.labels(row.kind, "refused").inc()
        else:
            SPOOL_FLUSHED.labels(row.kind, "applied").inc()

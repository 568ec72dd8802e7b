"""The mission store: the one place mission SQL lives.

Every change follows one pattern: lock the mission row (``FOR UPDATE``), ask the pure
lifecycle (:mod:`dispatcher.missions.lifecycle`) what the event leads to, then UPDATE the
mission and INSERT its event, in ONE transaction. A refused change (illegal transition,
stale version, unknown mission) changes nothing. The store writes no audit rows: the
application layer (:mod:`dispatcher.ops.missions`) opens the transaction with
:meth:`MissionStore.transaction`, calls :meth:`~MissionStore.insert` or
:meth:`~MissionStore.lock` and :meth:`~MissionStore.apply` on it and appends the audit
row to the same transaction.

Facility isolation: every read and write takes a :class:`~dispatcher.missions.domain.Scope`
and filters by it; a mission outside the scope does not exist for the caller.

:meth:`MissionStore.create` and :meth:`MissionStore.transition` do one change in a
transaction of their own, unaudited (tests, and reads of the queue by the daemon's own
tasks); operations go through :mod:`dispatcher.ops.missions`.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from dispatcher.missions import lifecycle
from dispatcher.missions.changes import Change, check_arguments, plan_change
from dispatcher.missions.domain import (
    Actor,
    Cursor,
    EventRecord,
    MissionDraft,
    MissionRecord,
    Scope,
)
from dispatcher.missions.errors import (
    IdempotencyConflict,
    InvalidMission,
    MissionNotFound,
)
from dispatcher.missions.lifecycle import (
    MissionEvent,
    MissionStatus,
    Priority,
)
from dispatcher.missions.rows import (
    event_from_row,
    event_from_values,
    insert_args,
    jsonable,
    mission_from_row,
)
from dispatcher.storage.leases import FENCE_SQL

log = structlog.get_logger(__name__)

Conn = asyncpg.Connection | PoolConnectionProxy

#: Largest page a list returns.
MAX_PAGE = 1000

_COLS = """
    id, facility_id, status, priority, pickup, dropoff, window_start, window_end,
    requirements, passenger_ref, passenger_name, notes, created_by, vehicle_id, version,
    created_at, updated_at, completed_at, held_reason
"""
_EVENT_COLS = (
    "seq, mission_id, facility_id, event, from_status, to_status, vehicle_id, actor, details, at"
)

#: Filter by Scope: $n is the facility (NULL = all), $n+1 the creator (NULL = anyone).
_SCOPE_SQL = "($%d::uuid IS NULL OR facility_id = $%d) AND ($%d::text IS NULL OR created_by = $%d)"


def _scope_sql(first: int) -> str:
    return _SCOPE_SQL % (first, first, first + 1, first + 1)


_INSERT = f"""
INSERT INTO missions (
    facility_id, priority, pickup, pickup_point, pickup_place, dropoff, dropoff_point,
    dropoff_place, window_start, window_end, requirements, passenger_ref, passenger_name,
    notes, created_by, idempotency_key, request_hash)
VALUES (
    $1, $2, $3, ST_SetSRID(ST_MakePoint($4, $5), 4326)::geography, $6,
    $7, ST_SetSRID(ST_MakePoint($8, $9), 4326)::geography, $10,
    $11, $12, $13, $14, $15, $16, $17, $18, $19)
ON CONFLICT (facility_id, created_by, idempotency_key) WHERE idempotency_key IS NOT NULL
DO NOTHING
RETURNING {_COLS}
"""

#: The mission and its first event in one statement (one round trip instead of two); both
#: inserts commit or roll back together like any two statements of the transaction. When
#: the idempotency key was used before, the mission insert does nothing, so the event
#: insert has no row to copy and the statement returns no row. $20-$22: event, to_status,
#: actor of :func:`lifecycle.initial`. (The statement-level NOTIFY trigger of
#: mission_events fires even then, waking event streams once for nothing: harmless.)
_INSERT_WITH_EVENT = f"""
WITH m AS ({_INSERT}),
e AS (
    INSERT INTO mission_events (mission_id, facility_id, event, from_status, to_status, actor)
    SELECT id, facility_id, $20, NULL, $21, $22 FROM m
    RETURNING seq
)
SELECT m.*, e.seq AS event_seq FROM m CROSS JOIN e
"""

_BY_KEY = f"""
SELECT {_COLS}, request_hash FROM missions
WHERE facility_id = $1 AND created_by = $2 AND idempotency_key = $3
"""

_GET = f"SELECT {_COLS} FROM missions WHERE id = $1 AND deleted_at IS NULL AND {_scope_sql(2)}"

_LOCK = _GET + " FOR UPDATE"

_UPDATE = f"""
UPDATE missions
SET status = $2, priority = $3, vehicle_id = $4, version = version + 1,
    completed_at = CASE WHEN $5::boolean THEN now() ELSE NULL END, held_reason = $6
WHERE id = $1
RETURNING {_COLS}
"""

#: The mission row's update and its event in one statement (one round trip instead of
#: two); both commit or roll back together like any two statements of the transaction.
#: $1-$6 as :data:`_UPDATE`; $7-$12 the event, from_status, to_status, vehicle, actor
#: and details of the event row. The event's columns come back prefixed ``ev_``.
_UPDATE_WITH_EVENT = f"""
WITH m AS ({_UPDATE}),
e AS (
    INSERT INTO mission_events
        (mission_id, facility_id, event, from_status, to_status, vehicle_id, actor, details)
    SELECT id, facility_id, $7, $8, $9, $10::uuid, $11, $12::jsonb FROM m
    RETURNING {_EVENT_COLS}
)
SELECT m.*, {", ".join(f"e.{c.strip()} AS ev_{c.strip()}" for c in _EVENT_COLS.split(","))}
FROM m CROSS JOIN e
"""

#: :data:`_LOCK` and a fence check in one statement: the mission is locked first (in the
#: CTE), then the lease row is share-locked and its tenure judged by the database's
#: clock (PostgreSQL evaluates the sub-select, an InitPlan, when the first locked row is
#: projected), as the two statements did one after the other. No mission: no fence
#: check. $4-$6: the fence's facility, holder and token (see
#: :data:`dispatcher.storage.leases.FENCE_SQL`).
_LOCK_FENCED = f"""
WITH m AS ({_LOCK})
SELECT m.*, EXISTS ({FENCE_SQL.format(facility="$4", holder="$5", token="$6")}) AS fenced
FROM m
"""

_TIMELINE = f"SELECT {_EVENT_COLS} FROM mission_events WHERE mission_id = $1 ORDER BY seq"

#: The mission (as :data:`_GET`) with its timeline as an array of anonymous records (read
#: by :func:`~dispatcher.missions.rows.event_from_values`): one statement, so one snapshot
#: (READ COMMITTED takes one per statement) and one round trip. ``details`` travels as
#: text because asyncpg hands a record's jsonb field to the text codec in binary form.
_GET_WITH_TIMELINE = f"""
SELECT {_COLS}, ARRAY(
    SELECT ROW(seq, mission_id, facility_id, event, from_status, to_status, vehicle_id, actor,
               details::text, at)
    FROM mission_events e WHERE e.mission_id = m.id ORDER BY seq
) AS timeline
FROM missions m WHERE id = $1 AND deleted_at IS NULL AND {_scope_sql(2)}
"""

_QUEUE = f"""
SELECT {_COLS} FROM missions
WHERE status = 'pending' AND deleted_at IS NULL AND ($1::uuid IS NULL OR facility_id = $1)
ORDER BY priority_rank DESC, created_at, id
LIMIT $2
"""

_ACTIVE_FOR_VEHICLE = f"""
SELECT {_COLS} FROM missions
WHERE vehicle_id = $1 AND status IN ('assigned', 'in_progress') AND deleted_at IS NULL
ORDER BY created_at, id
"""


@dataclass(frozen=True, slots=True)
class CreateResult:
    """A created mission, or the one an earlier request with the same key created."""

    mission: MissionRecord
    #: False when this was a replay of an idempotent request (HTTP 200 rather than 201).
    created: bool
    #: The ``created`` event's seq (None for a replay).
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class TransitionResult:
    """The mission after a transition and the event recorded for it.

    ``event`` is None when nothing had to change (setting the priority it already has).
    """

    mission: MissionRecord
    event: EventRecord | None


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list; ``next_cursor`` is None on the last page."""

    items: list[MissionRecord]
    next_cursor: Cursor | None


class MissionStore:
    """Reads and writes missions and their events through one asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        """A connection in a transaction, for a change and what commits with it."""
        async with self._pool.acquire() as conn, conn.transaction():
            yield conn

    # Create -----------------------------------------------------------------------------

    async def create(self, draft: MissionDraft, actor: Actor) -> CreateResult:
        """:meth:`insert` in a transaction of its own (no audit row)."""
        async with self.transaction() as conn:
            return await self.insert(conn, draft, actor)

    async def insert(self, conn: Conn, draft: MissionDraft, actor: Actor) -> CreateResult:
        """Insert a mission and its ``created`` event, inside ``conn``'s transaction.

        With an idempotency key already used by the same creator in the same facility:
        the same request returns the existing mission (``created=False``); a different
        one raises :class:`IdempotencyConflict`. An unknown facility (not provisioned in
        the database) raises :class:`InvalidMission` on ``facility``.
        """
        first = lifecycle.initial()
        try:
            row = await conn.fetchrow(
                _INSERT_WITH_EVENT,
                *insert_args(draft),
                first.event.value,
                first.to_status.value,
                actor.subject,
            )
        except asyncpg.ForeignKeyViolationError as exc:
            raise InvalidMission(
                "facility", "this facility is not provisioned in the database"
            ) from exc
        if row is None:
            return await self._replay(conn, draft)
        return CreateResult(mission=mission_from_row(row), created=True, seq=row["event_seq"])

    async def _replay(self, conn: Conn, draft: MissionDraft) -> CreateResult:
        assert draft.idempotency_key is not None  # ON CONFLICT only fires with a key
        row = await conn.fetchrow(
            _BY_KEY, draft.facility_id, draft.created_by, draft.idempotency_key
        )
        if row is None:  # pragma: no cover - missions are never hard-deleted
            raise RuntimeError("idempotency conflict without a conflicting mission")
        mission = mission_from_row(row)
        if bytes(row["request_hash"]) != draft.request_hash:
            raise IdempotencyConflict(draft.idempotency_key, mission.id)
        log.info("mission.create_replayed", mission_id=str(mission.id))
        return CreateResult(mission=mission, created=False)

    # Read -------------------------------------------------------------------------------

    async def get(self, mission_id: uuid.UUID, scope: Scope) -> MissionRecord | None:
        """The mission, or None when it does not exist or lies outside ``scope``."""
        row = await self._pool.fetchrow(_GET, mission_id, scope.facility_id, scope.created_by)
        return None if row is None else mission_from_row(row)

    async def timeline(self, mission_id: uuid.UUID) -> list[EventRecord]:
        """Every event of a mission, oldest first (check visibility with :meth:`get`)."""
        rows = await self._pool.fetch(_TIMELINE, mission_id)
        return [event_from_row(r) for r in rows]

    async def get_with_timeline(
        self, mission_id: uuid.UUID, scope: Scope
    ) -> tuple[MissionRecord, list[EventRecord]] | None:
        """The mission and its timeline read in one snapshot; None outside ``scope``."""
        row = await self._pool.fetchrow(
            _GET_WITH_TIMELINE, mission_id, scope.facility_id, scope.created_by
        )
        if row is None:
            return None
        return mission_from_row(row), [event_from_values(v) for v in row["timeline"]]

    async def list_missions(
        self,
        scope: Scope,
        *,
        statuses: Sequence[MissionStatus] = (),
        priorities: Sequence[Priority] = (),
        vehicle_id: uuid.UUID | None = None,
        limit: int = 50,
        after: Cursor | None = None,
    ) -> Page:
        """Missions in ``scope``, newest first, filtered; keyset-paginated by ``after``."""
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be within 1..{MAX_PAGE}")
        # Built per call, so each filter is present only when used and the planner gets
        # plain equalities it can match to the (facility_id, [created_by,] created_at) indexes.
        where = ["deleted_at IS NULL"]
        args: list[Any] = []
        if scope.facility_id is not None:
            args.append(scope.facility_id)
            where.append(f"facility_id = ${len(args)}")
        if scope.created_by is not None:
            args.append(scope.created_by)
            where.append(f"created_by = ${len(args)}")
        if statuses:
            args.append([s.value for s in statuses])
            where.append(f"status = ANY(${len(args)}::text[])")
        if priorities:
            args.append([p.value for p in priorities])
            where.append(f"priority = ANY(${len(args)}::text[])")
        if vehicle_id is not None:
            args.append(vehicle_id)
            where.append(f"vehicle_id = ${len(args)}")
        if after is not None:
            args.extend([after.created_at, after.id])
            where.append(f"(created_at, id) < (${len(args) - 1}, ${len(args)})")
        args.append(limit + 1)
        sql = (
            f"SELECT {_COLS} FROM missions WHERE {' AND '.join(where)} "
            f"ORDER BY created_at DESC, id DESC LIMIT ${len(args)}"
        )
        rows = await self._pool.fetch(sql, *args)
        items = [mission_from_row(r) for r in rows[:limit]]
        more = len(rows) > limit
        next_cursor = Cursor(items[-1].created_at, items[-1].id) if more and items else None
        return Page(items=items, next_cursor=next_cursor)

    async def pending_queue(
        self, facility_id: uuid.UUID | None = None, *, limit: int = 100
    ) -> list[MissionRecord]:
        """Pending missions, most urgent first, then oldest first (the dispatch queue)."""
        rows = await self._pool.fetch(_QUEUE, facility_id, limit)
        return [mission_from_row(r) for r in rows]

    async def active_for_vehicle(self, vehicle_id: uuid.UUID) -> list[MissionRecord]:
        """Missions assigned to or in progress on ``vehicle_id``, oldest first."""
        rows = await self._pool.fetch(_ACTIVE_FOR_VEHICLE, vehicle_id)
        return [mission_from_row(r) for r in rows]

    # Change -----------------------------------------------------------------------------

    async def transition(
        self,
        mission_id: uuid.UUID,
        event: MissionEvent,
        *,
        actor: Actor,
        scope: Scope | None = None,
        vehicle_id: uuid.UUID | None = None,
        priority: Priority | None = None,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
        expected_version: int | None = None,
    ) -> TransitionResult:
        """:meth:`lock` and :meth:`apply` in a transaction of their own (no audit row).

        Raises :class:`MissionNotFound` (missing or outside ``scope``) and whatever
        :meth:`apply` raises; in every case nothing changes.
        """
        async with self.transaction() as conn:
            before = await self.lock(conn, mission_id, scope or Scope.everything())
            if before is None:
                raise MissionNotFound(mission_id)
            return await self.apply(
                conn,
                before,
                event,
                actor=actor,
                vehicle_id=vehicle_id,
                priority=priority,
                reason=reason,
                details=details,
                expected_version=expected_version,
            )

    async def lock(self, conn: Conn, mission_id: uuid.UUID, scope: Scope) -> MissionRecord | None:
        """The mission, locked until ``conn``'s transaction ends; None outside ``scope``."""
        row = await conn.fetchrow(_LOCK, mission_id, scope.facility_id, scope.created_by)
        return None if row is None else mission_from_row(row)

    async def lock_fenced(
        self,
        conn: Conn,
        mission_id: uuid.UUID,
        scope: Scope,
        *,
        facility_id: uuid.UUID,
        holder: str,
        token: int,
    ) -> tuple[MissionRecord | None, bool]:
        """:meth:`lock`, and whether ``holder`` still holds tenure ``token`` of
        ``facility_id`` (the lease row share-locked until the transaction ends, as
        :func:`dispatcher.storage.leases.fence_holds`), in one round trip. The fence is
        only judged for a mission found (None, False otherwise)."""
        row = await conn.fetchrow(
            _LOCK_FENCED, mission_id, scope.facility_id, scope.created_by,
            facility_id, holder, token,
        )  # fmt: skip
        if row is None:
            return None, False
        return mission_from_row(row), bool(row["fenced"])

    async def apply(
        self,
        conn: Conn,
        before: MissionRecord,
        event: MissionEvent,
        *,
        actor: Actor,
        vehicle_id: uuid.UUID | None = None,
        priority: Priority | None = None,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
        expected_version: int | None = None,
    ) -> TransitionResult:
        """Apply ``event`` to the :meth:`lock` ed mission ``before``: row and event.

        ``vehicle_id`` is required for ``assigned``, ``reassigned`` and ``offered`` (the
        vehicle concerned); for other events it is optional and, when the mission has a
        vehicle, must be that vehicle (else :class:`WrongVehicle`). ``priority`` is
        required for ``priority_changed``; setting the current priority changes nothing
        and records nothing. ``expected_version`` guards against concurrent changes
        (:class:`VersionConflict`).

        Raises :class:`IllegalTransition`, :class:`VersionConflict`, :class:`WrongVehicle`
        before writing anything; :class:`InvalidMission` for an unknown vehicle (the
        transaction is then aborted). ``ValueError`` for a call that misses a required
        argument (a programming error).
        """
        ev = MissionEvent(event)
        check_arguments(ev, vehicle_id=vehicle_id, priority=priority)
        change = plan_change(
            before,
            ev,
            vehicle_id=vehicle_id,
            priority=priority,
            reason=reason,
            details=details,
            expected_version=expected_version,
        )
        if change is None:
            return TransitionResult(mission=before, event=None)
        return await self._write(conn, before, ev, change, actor)

    async def _write(
        self, conn: Conn, before: MissionRecord, ev: MissionEvent, change: Change, actor: Actor
    ) -> TransitionResult:
        """Write the planned ``change``: the mission row, then its event."""
        step = change.step
        try:
            # One statement, one round trip: every round trip of a dispatch write is a
            # wait for the CPU on a loaded machine, with the engine's lock held.
            row = await conn.fetchrow(
                _UPDATE_WITH_EVENT,
                before.id,
                step.to_status.value,
                change.priority.value,
                change.vehicle_id,
                step.to_status.is_final,
                change.held_reason,
                step.event.value,
                step.from_status.value if step.from_status is not None else None,
                step.to_status.value,
                change.event_vehicle_id,
                actor.subject,
                jsonable(change.details),
            )
        except asyncpg.ForeignKeyViolationError as exc:
            vehicle = change.vehicle_id or change.event_vehicle_id
            raise InvalidMission("vehicle_id", f"unknown vehicle {vehicle}") from exc
        assert row is not None  # locked above
        recorded = event_from_row(_Prefixed(row, "ev_"))
        return TransitionResult(mission=mission_from_row(row), event=recorded)


# Helpers -------------------------------------------------------------------------------


class _Prefixed:
    """A row's columns named ``prefix + name``, read by ``name``."""

    __slots__ = ("_prefix", "_row")

    def __init__(self, row: Any, prefix: str) -> None:
        self._row = row
        self._prefix = prefix

    def __getitem__(self, key: str) -> Any:
        return self._row[self._prefix + key]

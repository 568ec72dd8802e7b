"""Mission operations: create, read, list, and every transition (cancel, prioritise, assign...).

Each change commits with its audit row in one transaction; a refusal changes nothing and
is audited in a transaction of its own, then returned as :class:`MissionRefused`. The
API's routes, and the dispatch engine with :meth:`Caller.system`, call these.

Who may do what: creating needs ``mission_create`` and the target facility in the
caller's scope; seeing needs ``mission_view_all`` (every mission of the facility) or
``mission_view_own`` (the caller's own only); cancelling ``mission_cancel_any`` or
``mission_cancel_own`` (own missions only); changing priority ``mission_prioritize``. A
mission outside the caller's scope does not exist for it (:attr:`MissionRefusal.NOT_FOUND`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog

from dispatcher.audit.log import AuditEntry
from dispatcher.auth.roles import Permission
from dispatcher.leadership.state import Fence, FencedOut
from dispatcher.missions.domain import Cursor, EventRecord, MissionDraft, MissionRecord, Scope
from dispatcher.missions.errors import (
    IdempotencyConflict,
    InvalidMission,
    MissionError,
    MissionNotFound,
    VersionConflict,
    WrongVehicle,
)
from dispatcher.missions.lifecycle import IllegalTransition, MissionEvent, MissionStatus, Priority
from dispatcher.missions.store import CreateResult, MissionStore, Page, TransitionResult
from dispatcher.ops import audit
from dispatcher.ops.caller import Caller
from dispatcher.ops.durable import UNREACHABLE, DurableWrites, mark_applied
from dispatcher.ops.mission_audit import (
    MissionRefusal,
    TransitionError,
    action_of,
    change_details,
    refusal_details,
    refusal_of,
    resource,
    snapshot,
)
from dispatcher.storage.spool import SpooledRow, SpoolFull
from geo.facility import FacilitySpec

log = structlog.get_logger(__name__)

P = Permission

__all__ = ["MissionOps", "MissionRefusal", "MissionRefused", "SpoolReplay"]


@dataclass(frozen=True, slots=True)
class SpoolReplay:
    """A spooled mission event that was written before (flushed twice): nothing changed."""

    spool_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class MissionRefused:
    """A refused mission operation: nothing changed."""

    reason: MissionRefusal
    mission_id: uuid.UUID | None = None
    #: The typed error behind the refusal, when there is one (its data for the answer).
    error: MissionError | IllegalTransition | None = None


@dataclass(frozen=True, slots=True)
class _Refusal:
    """A refusal on its way to the audit log."""

    refused: MissionRefused
    action: str
    facility_id: uuid.UUID | None
    details: Mapping[str, Any]


class MissionOps:
    """Mission operations over the mission store.

    ``on_created`` hears of each mission this process creates, once it is committed (the
    daemon's dispatch engine: it plans the mission at once rather than when the event
    stream delivers it, which waits for every older write transaction of the cluster to
    end). It must be quick and must not raise.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        durable: DurableWrites | None = None,
        *,
        on_created: Callable[[MissionRecord], None] | None = None,
    ) -> None:
        self._pool = pool
        self._store = MissionStore(pool)
        #: The spool, for the engine's mission events and refusals' audit rows while
        #: PostgreSQL is away (None: writes fail as the database does).
        self._durable = durable
        self._on_created = on_created

    # Reads ------------------------------------------------------------------------------

    @staticmethod
    def view_scope(caller: Caller) -> Scope:
        """Missions ``caller`` may see: its facility; only its own without view_all."""
        own = None if caller.can(P.MISSION_VIEW_ALL) else caller.subject
        return Scope(facility_id=caller.facility_id, created_by=own)

    async def get(
        self, caller: Caller, mission_id: uuid.UUID
    ) -> tuple[MissionRecord, list[EventRecord]] | None:
        """The mission and its timeline; None when the caller does not see it."""
        return await self._store.get_with_timeline(mission_id, self.view_scope(caller))

    async def list(
        self,
        caller: Caller,
        *,
        statuses: Sequence[MissionStatus] = (),
        priorities: Sequence[Priority] = (),
        vehicle_id: uuid.UUID | None = None,
        limit: int = 50,
        after: Cursor | None = None,
    ) -> Page:
        """Missions the caller sees, newest first, filtered; keyset-paginated by ``after``."""
        return await self._store.list_missions(
            self.view_scope(caller),
            statuses=statuses,
            priorities=priorities,
            vehicle_id=vehicle_id,
            limit=limit,
            after=after,
        )

    # Create -----------------------------------------------------------------------------

    async def create(
        self, caller: Caller, facility: FacilitySpec, build: Callable[[], MissionDraft]
    ) -> CreateResult | MissionRefused:
        """Create a mission in ``facility`` (or replay an idempotent request).

        ``build`` resolves the request into a draft (it may raise :class:`InvalidMission`);
        it runs only once the caller may create missions there, so a request for another
        facility is refused for that whatever its content.
        """
        action = "mission.create"
        if not caller.can(P.MISSION_CREATE):
            return await self._refuse(
                caller, _Refusal(MissionRefused(MissionRefusal.FORBIDDEN), action, None, {})
            )
        if not caller.sees_facility(facility.id):
            refused = MissionRefused(MissionRefusal.OTHER_FACILITY)
            return await self._refuse(
                caller, _Refusal(refused, action, None, {"facility": facility.key})
            )
        try:
            draft = build()
        except InvalidMission as exc:
            return MissionRefused(MissionRefusal.INVALID, error=exc)
        durable = self._durable
        if durable is not None and not durable.spool.has_room():
            # Nothing more could be kept if the database went away now: take no new work.
            from dispatcher.metrics import SPOOL_FULL

            SPOOL_FULL.labels("refused").inc()
            log.error("mission.create_refused_spool_full", spool_bytes=durable.spool.size)
            return MissionRefused(MissionRefusal.SPOOL_FULL)
        try:
            return await self._insert(caller, draft)
        except UNREACHABLE as exc:
            log.warning("mission.create_unavailable", error=type(exc).__name__)
            return MissionRefused(MissionRefusal.UNAVAILABLE)

    async def _insert(self, caller: Caller, draft: MissionDraft) -> CreateResult | MissionRefused:
        try:
            async with self._store.transaction() as conn:
                result = await self._store.insert(conn, draft, caller.actor())
                if result.created and caller.audited:
                    mission = result.mission
                    details = {"new": snapshot(mission), "idempotency_key": draft.idempotency_key}
                    row = audit.entry(
                        caller,
                        action="mission.create",
                        **resource(mission.id),
                        success=True,
                        facility_id=mission.facility_id,
                        details=details,
                    )
                    await audit.append(conn, row)
        except IdempotencyConflict as exc:
            refused = MissionRefused(MissionRefusal.IDEMPOTENCY_CONFLICT, exc.mission_id, exc)
            details = {"idempotency_key": draft.idempotency_key}
            return await self._refuse(
                caller, _Refusal(refused, "mission.create", draft.facility_id, details)
            )
        except InvalidMission as exc:
            return MissionRefused(MissionRefusal.INVALID, error=exc)
        if result.created:
            log.info(
                "mission.created",
                mission_id=str(result.mission.id),
                facility_id=str(result.mission.facility_id),
                priority=result.mission.priority.value,
                seq=result.seq,
            )
            if self._on_created is not None:
                self._on_created(result.mission)
        return result

    # Transitions ------------------------------------------------------------------------

    async def cancel(
        self, caller: Caller, mission_id: uuid.UUID, *, reason: str | None = None
    ) -> TransitionResult | MissionRefused:
        """Cancel a mission that is not final yet.

        A caller with ``mission_cancel_own`` only may cancel the missions it created; one
        it sees but did not create is refused with :attr:`MissionRefusal.NOT_OWNER`.
        """
        event = MissionEvent.CANCELLED
        may_cancel_any = caller.can(P.MISSION_CANCEL_ANY)
        if not may_cancel_any:
            refusal = await self._cancel_refusal(caller, mission_id)
            if refusal is not None:
                return await self._refuse(caller, refusal)
        scope = Scope(
            facility_id=caller.facility_id,
            created_by=None if may_cancel_any else caller.subject,
        )
        return await self.transition(caller, mission_id, event, scope=scope, reason=reason)

    async def _cancel_refusal(self, caller: Caller, mission_id: uuid.UUID) -> _Refusal | None:
        """Why an own-only caller may not cancel ``mission_id`` (None: it may try)."""
        action = action_of(MissionEvent.CANCELLED)
        if not caller.can(P.MISSION_CANCEL_OWN):
            return _Refusal(MissionRefused(MissionRefusal.FORBIDDEN, mission_id), action, None, {})
        seen = await self._store.get(mission_id, self.view_scope(caller))
        if seen is not None and seen.created_by != caller.subject:
            refused = MissionRefused(MissionRefusal.NOT_OWNER, mission_id)
            return _Refusal(refused, action, seen.facility_id, {})
        return None

    async def prioritize(
        self,
        caller: Caller,
        mission_id: uuid.UUID,
        priority: Priority,
        *,
        reason: str | None = None,
    ) -> TransitionResult | MissionRefused:
        """Set the priority of a mission that is not final; the current one is a no-op."""
        event = MissionEvent.PRIORITY_CHANGED
        if not caller.can(P.MISSION_PRIORITIZE):
            refused = MissionRefused(MissionRefusal.FORBIDDEN, mission_id)
            return await self._refuse(caller, _Refusal(refused, action_of(event), None, {}))
        return await self.transition(caller, mission_id, event, priority=priority, reason=reason)

    async def transition(
        self,
        caller: Caller,
        mission_id: uuid.UUID,
        event: MissionEvent,
        *,
        scope: Scope | None = None,
        vehicle_id: uuid.UUID | None = None,
        priority: Priority | None = None,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
        expected_version: int | None = None,
        known: MissionRecord | None = None,
        fence: Fence | None = None,
    ) -> TransitionResult | MissionRefused:
        """Apply ``event`` to a mission in ``scope`` (default: the caller's facility).

        The arguments are those of :meth:`MissionStore.apply`. The mission, its event and
        (for audited callers) the audit row commit together; a refusal is audited alone.

        ``known``: the caller's own copy of the mission (the dispatch engine's memory).
        With it, when PostgreSQL cannot be reached, or rows already wait in the spool
        (their order must hold), the event is checked against that copy and spooled
        (:class:`DurableWrites`); the result's mission is the copy changed, its event None.

        ``fence``: the dispatch engine's claim to lead the mission's facility. The write
        commits only if that tenure still holds, checked in the same transaction, in the
        statement that locks the mission (:meth:`MissionStore.lock_fenced`, the check of
        :func:`dispatcher.storage.leases.fence_holds`); else nothing is written and
        :class:`~dispatcher.leadership.state.FencedOut` is raised. A spooled event is
        not fenced (see :meth:`apply_spooled`).
        """
        durable = self._durable
        if known is not None and durable is not None:
            if not durable.spool.empty:
                return await self._spool(caller, known, event, vehicle_id, reason, details)
            try:
                done = await self._transition(
                    caller, mission_id, event, scope, vehicle_id, priority, reason, details,
                    expected_version, None, fence,
                )  # fmt: skip
            except UNREACHABLE as exc:
                log.warning("mission.transition_db_unreachable", error=type(exc).__name__)
                return await self._spool(caller, known, event, vehicle_id, reason, details)
        else:
            done = await self._transition(
                caller, mission_id, event, scope, vehicle_id, priority, reason, details,
                expected_version, None, fence,
            )  # fmt: skip
        assert not isinstance(done, SpoolReplay)  # only with a spooled row
        return done

    async def apply_spooled(
        self,
        caller: Caller,
        mission_id: uuid.UUID,
        event: MissionEvent,
        spooled: SpooledRow,
        *,
        vehicle_id: uuid.UUID | None,
        reason: str | None,
        details: Mapping[str, Any] | None,
    ) -> TransitionResult | MissionRefused | SpoolReplay:
        """The flusher writing a spooled mission event, as :meth:`transition` would have:
        the row's id goes into ``spool_applied`` in the same transaction, and a row
        written before returns :class:`SpoolReplay` (nothing changes twice).

        No fence check: the row was decided while this daemon led the facility (nothing
        is spooled otherwise), and is written as it was decided even if another daemon
        leads it by the time PostgreSQL is back; the lifecycle still refuses an event
        that no longer fits the mission."""
        return await self._transition(
            caller, mission_id, event, Scope.everything(), vehicle_id, None, reason, details,
            None, spooled,
        )  # fmt: skip

    async def _spool(
        self,
        caller: Caller,
        known: MissionRecord,
        event: MissionEvent,
        vehicle_id: uuid.UUID | None,
        reason: str | None,
        details: Mapping[str, Any] | None,
    ) -> TransitionResult | MissionRefused:
        assert self._durable is not None
        ev = MissionEvent(event)
        try:
            after = await self._durable.spool_transition(
                caller, known, ev, vehicle_id=vehicle_id, reason=reason, details=details
            )
        except (IllegalTransition, VersionConflict, WrongVehicle) as exc:
            return MissionRefused(refusal_of(exc), known.id, exc)
        except SpoolFull:
            from dispatcher.metrics import SPOOL_FULL

            SPOOL_FULL.labels("refused").inc()
            log.error(
                "mission.transition_lost_spool_full", mission_id=str(known.id), event=ev.value
            )
            return MissionRefused(MissionRefusal.SPOOL_FULL, known.id)
        log.info("mission.transition_spooled", mission_id=str(known.id), mission_event=ev.value)
        return TransitionResult(mission=after or known, event=None)

    async def _transition(
        self,
        caller: Caller,
        mission_id: uuid.UUID,
        event: MissionEvent,
        scope: Scope | None,
        vehicle_id: uuid.UUID | None,
        priority: Priority | None,
        reason: str | None,
        details: Mapping[str, Any] | None,
        expected_version: int | None,
        spooled: SpooledRow | None,
        fence: Fence | None = None,
    ) -> TransitionResult | MissionRefused | SpoolReplay:
        ev = MissionEvent(event)
        scope = scope or Scope(facility_id=caller.facility_id)
        changes: dict[str, Any] = dict(
            vehicle_id=vehicle_id,
            priority=priority,
            reason=reason,
            details=details,
            expected_version=expected_version,
        )
        facility_id = scope.facility_id  # the mission's, once found
        try:
            async with self._store.transaction() as conn:
                if spooled is not None and not await mark_applied(conn, spooled):
                    return SpoolReplay(spooled.id)
                if fence is None:
                    before = await self._store.lock(conn, mission_id, scope)
                    fenced = True
                else:
                    # The lock and the fence check in one round trip (the engine holds
                    # its lock meanwhile); the fence is judged after the mission's lock.
                    before, fenced = await self._store.lock_fenced(
                        conn, mission_id, scope,
                        facility_id=fence.facility_id, holder=fence.holder, token=fence.token,
                    )  # fmt: skip
                if before is None:
                    raise MissionNotFound(mission_id)
                facility_id = before.facility_id
                if fence is not None and not (fenced and fence.facility_id == facility_id):
                    raise FencedOut(fence)
                result = await self._store.apply(conn, before, ev, actor=caller.actor(), **changes)
                if result.event is not None and caller.audited:
                    await audit.append(conn, _changed_row(caller, ev, before, result, reason))
        except (MissionNotFound, IllegalTransition, VersionConflict, WrongVehicle) as exc:
            return await self._transition_refused(caller, ev, mission_id, facility_id, exc)
        except InvalidMission as exc:
            return MissionRefused(MissionRefusal.INVALID, mission_id, exc)
        if result.event is not None:
            log.info(
                "mission.transition",
                mission_id=str(mission_id),
                mission_event=ev.value,
                from_status=result.event.from_status,
                to_status=result.event.to_status.value,
                seq=result.event.seq,
            )
        return result

    async def _transition_refused(
        self,
        caller: Caller,
        event: MissionEvent,
        mission_id: uuid.UUID,
        facility_id: uuid.UUID | None,
        exc: TransitionError,
    ) -> MissionRefused:
        refused = MissionRefused(refusal_of(exc), mission_id, exc)
        log.info(
            "mission.transition_refused",
            mission_id=str(mission_id),
            mission_event=event.value,
            reason=refused.reason.value,
        )
        details = refusal_details(event, exc)
        return await self._refuse(caller, _Refusal(refused, action_of(event), facility_id, details))

    # Refusals ---------------------------------------------------------------------------

    async def _refuse(self, caller: Caller, refusal: _Refusal) -> MissionRefused:
        """Audit ``refusal`` (for audited callers) in a transaction of its own."""
        if caller.audited:
            row = audit.entry(
                caller,
                action=refusal.action,
                **resource(refusal.refused.mission_id),
                success=False,
                facility_id=refusal.facility_id,
                reason=refusal.refused.reason.value,
                details=refusal.details,
            )
            await audit.record(self._pool, row)
        return refusal.refused


def _changed_row(
    caller: Caller,
    event: MissionEvent,
    before: MissionRecord,
    result: TransitionResult,
    reason: str | None,
) -> AuditEntry:
    """The audit row of an applied transition."""
    assert result.event is not None
    return audit.entry(
        caller,
        action=action_of(event),
        **resource(before.id),
        success=True,
        facility_id=result.mission.facility_id,
        reason=reason,
        details=change_details(event, result.event.seq, before, result.mission),
    )

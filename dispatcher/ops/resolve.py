"""An operator's decision for a mission the dispatch engine holds (rider on board, vehicle
lost): fail it, complete it (delivered by hand), or reassign it (another vehicle picks the
rider up where they are). ``POST /v1/missions/{id}/resolve``.

Needs ``mission_cancel_any`` (an operator's power over any mission of the facility).
``fail`` and ``complete`` are mission transitions by the operator (audited like any); the
engine sees them on the event stream and forgets the mission. ``reassign`` asks the engine
and writes one ``mission.resolve`` audit row; the engine then records ``reassigned``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

import asyncpg

from dispatcher.auth.roles import Permission
from dispatcher.dispatch.recovery import Resolution, choices, resolution_events
from dispatcher.missions.domain import Location, MissionRecord
from dispatcher.missions.lifecycle import MissionStatus
from dispatcher.missions.store import TransitionResult
from dispatcher.ops import audit
from dispatcher.ops.caller import Caller
from dispatcher.ops.fleet_access import FleetLookup
from dispatcher.ops.mission_audit import MissionRefusal, resource
from dispatcher.ops.missions import MissionOps, MissionRefused

ACTION = "mission.resolve"


class HeldMissions(Protocol):
    """What the operation needs of the dispatch engine."""

    def resolution_choices(
        self, mission_id: uuid.UUID, status: MissionStatus
    ) -> tuple[Resolution, ...]: ...

    def held_reason(self, mission_id: uuid.UUID) -> str | None: ...

    async def reassign_held(self, mission_id: uuid.UUID, at: Location) -> bool: ...


class DispatchHandle(HeldMissions, Protocol):
    """The dispatch engine as the API sees it: held missions and the "charge" command."""

    def request_charge(self, vehicle_id: uuid.UUID) -> bool: ...


@dataclass(frozen=True, slots=True)
class NotAllowed:
    """The choice is not one the mission's situation allows (nothing changed)."""

    mission_id: uuid.UUID
    status: MissionStatus
    allowed: tuple[Resolution, ...]
    held_reason: str | None


@dataclass(frozen=True, slots=True)
class Reassigning:
    """The engine will plan another vehicle to pick the rider up at ``at``."""

    mission: MissionRecord
    at: Location


Outcome = TransitionResult | Reassigning | NotAllowed | MissionRefused


class ResolveOps:
    """Resolves held missions; ``held`` is None when no dispatch engine runs."""

    def __init__(self, pool: asyncpg.Pool, held: HeldMissions | None, fleet: FleetLookup) -> None:
        self._pool = pool
        self._missions = MissionOps(pool)
        self._held = held
        self._fleet = fleet

    async def options(self, caller: Caller, mission_id: uuid.UUID) -> NotAllowed | None:
        """The choices allowed now (as a :class:`NotAllowed` with every choice), or None
        when the caller does not see the mission."""
        found = await self._missions.get(caller, mission_id)
        if found is None:
            return None
        mission = found[0]
        return NotAllowed(mission.id, mission.status, *self._allowed(mission))

    def _allowed(self, mission: MissionRecord) -> tuple[tuple[Resolution, ...], str | None]:
        if self._held is None:
            # No engine here: the stored flag tells; fail and complete need no engine.
            held = mission.held_reason is not None
            allowed = tuple(
                c for c in choices(mission.status, held) if c is not Resolution.REASSIGN
            )
            return allowed, mission.held_reason
        return (
            self._held.resolution_choices(mission.id, mission.status),
            self._held.held_reason(mission.id),
        )

    async def resolve(
        self, caller: Caller, mission_id: uuid.UUID, choice: Resolution, reason: str | None
    ) -> Outcome:
        """Carry out ``choice`` for ``mission_id`` if its situation allows it."""
        if not caller.can(Permission.MISSION_CANCEL_ANY):
            return await self._refuse(caller, mission_id, MissionRefusal.FORBIDDEN, None)
        found = await self._missions.get(caller, mission_id)
        if found is None:
            return await self._refuse(caller, mission_id, MissionRefusal.NOT_FOUND, None)
        mission = found[0]
        allowed, why = self._allowed(mission)
        if choice not in allowed:
            await self._audit(caller, mission, choice, False, reason or "not_allowed")
            return NotAllowed(mission.id, mission.status, allowed, why)
        if choice is Resolution.REASSIGN:
            return await self._reassign(caller, mission, reason)
        result: TransitionResult | MissionRefused | None = None
        for event in resolution_events(choice):
            result = await self._missions.transition(
                caller, mission.id, event, reason=reason or f"resolve:{choice.value}"
            )
            if isinstance(result, MissionRefused):
                return result
        assert result is not None
        return result

    async def _reassign(
        self, caller: Caller, mission: MissionRecord, reason: str | None
    ) -> Reassigning | NotAllowed:
        assert self._held is not None  # REASSIGN is only allowed with an engine
        view = self._fleet.get(mission.vehicle_id) if mission.vehicle_id else None
        at = mission.pickup
        if view is not None and view.position is not None:
            at = Location(view.position.lat, view.position.lon, f"vehicle:{view.name}")
        if not await self._held.reassign_held(mission.id, at):
            allowed, why = self._allowed(mission)
            return NotAllowed(mission.id, mission.status, allowed, why)
        await self._audit(caller, mission, Resolution.REASSIGN, True, reason)
        return Reassigning(mission, at)

    async def _audit(
        self,
        caller: Caller,
        mission: MissionRecord,
        choice: Resolution,
        success: bool,
        reason: str | None,
    ) -> None:
        if not caller.audited:
            return
        row = audit.entry(
            caller,
            action=ACTION,
            **resource(mission.id),
            success=success,
            facility_id=mission.facility_id,
            reason=reason,
            details={"choice": choice.value, "status": mission.status.value},
        )
        await audit.record(self._pool, row)

    async def _refuse(
        self,
        caller: Caller,
        mission_id: uuid.UUID,
        why: MissionRefusal,
        facility_id: uuid.UUID | None,
    ) -> MissionRefused:
        if caller.audited:
            row = audit.entry(
                caller,
                action=ACTION,
                **resource(mission_id),
                success=False,
                facility_id=facility_id,
                reason=why.value,
            )
            await audit.record(self._pool, row)
        return MissionRefused(why, mission_id)

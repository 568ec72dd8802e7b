"""The emergency stop of every online vehicle inside a zone.

Positions come from the live registry; containment is PostGIS ``ST_Covers`` on the zone's
geography (points on the edge count as inside). Only vehicles the caller may command are
considered (a facility token: its own facility's). Online vehicles of the zone's facility
whose position is unknown are reported as ``unlocated``: they may be inside and were not
stopped.

Audit: one ``vehicle.emergency_stop`` row per vehicle and one ``zone.emergency_stop`` row,
in one transaction (a failure to write them is logged: the e-stops went out). A refusal
(no vehicle links, unknown zone) writes one ``zone.emergency_stop`` row.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from enum import StrEnum

import asyncpg
import structlog

from dispatcher.audit.log import AuditEntry
from dispatcher.auth.roles import Permission
from dispatcher.links.commander import CommandOutcome, CommandResult, VehicleCommand
from dispatcher.ops import audit
from dispatcher.ops.caller import Caller
from dispatcher.ops.fleet_access import Commander, FleetLookup
from dispatcher.ops.vehicles import action_of, command_details, failure_reason
from dispatcher.storage.zones_store import ZoneRecord, ZoneStore
from fleet.model import VehicleView

log = structlog.get_logger(__name__)

ACTION = "zone.emergency_stop"


class ZoneStopRefusal(StrEnum):
    """Why a zone e-stop was not attempted (the audit ``reason``)."""

    NO_LINKS = "commander_unavailable"
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"


@dataclass(frozen=True, slots=True)
class ZoneStopRefused:
    reason: ZoneStopRefusal
    zone_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class ZoneStopped:
    """The e-stops sent to the vehicles found inside a zone."""

    zone_id: uuid.UUID
    facility_id: uuid.UUID
    results: tuple[CommandResult, ...]
    #: Online vehicles of the facility with no known position (not stopped).
    unlocated: tuple[uuid.UUID, ...]

    @property
    def stopped(self) -> int:
        return sum(1 for r in self.results if r.ok)

    @property
    def not_stopped(self) -> int:
        return len(self.results) - self.stopped

    @property
    def retry(self) -> bool:
        """Whether some e-stop could not be sent now (stopping again is harmless)."""
        return any(r.outcome is CommandOutcome.RETRY for r in self.results)


def unlocated_in(
    fleet: tuple[VehicleView, ...], caller: Caller, facility_id: uuid.UUID
) -> tuple[uuid.UUID, ...]:
    """Online vehicles of ``facility_id`` the caller sees whose position is unknown."""
    return tuple(
        sorted(
            v.id
            for v in fleet
            if v.online
            and v.position is None
            and v.facility_id == facility_id
            and caller.sees_facility(v.facility_id)
        )
    )


def candidates_in(
    fleet: tuple[VehicleView, ...], caller: Caller, facility_id: uuid.UUID
) -> tuple[VehicleView, ...]:
    """Online, located vehicles of ``facility_id`` the caller sees: those a zone may hold.

    Filtered by the zone's facility as well as by the caller's view: an admin sees every
    facility, and a polygon drawn for one campus must not stop another's vehicles that
    happen to be inside it (facilities may share coordinates, issue 13 item 19).
    """
    return tuple(
        v
        for v in fleet
        if v.online
        and v.position is not None
        and v.facility_id == facility_id
        and caller.sees_facility(v.facility_id)
    )


class ZoneStopOps:
    """E-stops every vehicle the caller may command inside a zone."""

    def __init__(self, pool: asyncpg.Pool, fleet: FleetLookup, commander: Commander | None) -> None:
        self._pool = pool
        self._fleet = fleet
        self._commander = commander
        self._zones = ZoneStore(pool)

    async def emergency_stop(
        self, caller: Caller, zone_id: uuid.UUID, *, reason: str | None = None
    ) -> ZoneStopped | ZoneStopRefused:
        """E-stop every online vehicle whose live position lies inside the zone."""
        commander = self._commander
        zone: ZoneRecord | None = None
        if not caller.can(Permission.VEHICLE_COMMAND):
            refusal = ZoneStopRefusal.FORBIDDEN
        elif commander is None:
            refusal = ZoneStopRefusal.NO_LINKS
        else:
            zone = await self._zones.get(zone_id, caller.facility_id)
            refusal = ZoneStopRefusal.NOT_FOUND
        if commander is None or zone is None:
            return await self._refuse(caller, ZoneStopRefused(refusal, zone_id))
        inside = await self._inside(caller, zone)
        # Listed before stopping: a vehicle fleetd cannot place might be inside.
        unlocated = unlocated_in(self._fleet.snapshot(), caller, zone.facility_id)
        results = await asyncio.gather(*(self._estop(commander, v) for v in inside))
        done = ZoneStopped(zone.id, zone.facility_id, tuple(results), unlocated)
        log.info(
            "zone.emergency_stop",
            facility_id=str(zone.facility_id),
            vehicles=len(results),
            stopped=done.stopped,
            unlocated=len(done.unlocated),
        )
        await self._audit(caller, done, reason)
        return done

    async def _inside(self, caller: Caller, zone: ZoneRecord) -> list[VehicleView]:
        """Online, located vehicles the caller sees inside ``zone``, by name."""
        fleet = self._fleet.snapshot()
        candidates = {v.id: v for v in candidates_in(fleet, caller, zone.facility_id)}
        inside_ids = await self._zones.covering(
            zone.id,
            [(v.id, v.position.lon, v.position.lat) for v in candidates.values() if v.position],
        )
        return sorted((candidates[i] for i in inside_ids), key=lambda v: (v.name, str(v.id)))

    @staticmethod
    async def _estop(commander: Commander, vehicle: VehicleView) -> CommandResult:
        with structlog.contextvars.bound_contextvars(vehicle_id=str(vehicle.id)):
            return await commander.command(vehicle.id, VehicleCommand.EMERGENCY_STOP)

    async def _refuse(self, caller: Caller, refused: ZoneStopRefused) -> ZoneStopRefused:
        if caller.audited:
            row = audit.entry(
                caller,
                action=ACTION,
                resource_type="zone",
                resource_id=str(refused.zone_id),
                success=False,
                reason=refused.reason.value,
            )
            await audit.record(self._pool, row)
        return refused

    async def _audit(self, caller: Caller, done: ZoneStopped, reason: str | None) -> None:
        """One row per vehicle and one for the zone, in one transaction (logged on failure)."""
        if not caller.audited:
            return
        rows = [self._vehicle_row(caller, done, r, reason) for r in done.results]
        rows.append(
            audit.entry(
                caller,
                action=ACTION,
                resource_type="zone",
                resource_id=str(done.zone_id),
                success=all(r.ok for r in done.results),
                facility_id=done.facility_id,
                details={
                    "reason": reason,
                    "vehicles": [
                        {
                            "vehicle_id": str(r.vehicle_id),
                            "outcome": r.outcome.value,
                            "correlation_id": r.correlation_id,
                        }
                        for r in done.results
                    ],
                    "unlocated": [str(v) for v in done.unlocated],
                },
            )
        )
        try:
            async with audit.transaction(self._pool) as conn:
                for row in rows:
                    await audit.append(conn, row)
        except audit.STORAGE_ERRORS:
            log.exception("audit.write_failed", action=ACTION)

    def _vehicle_row(
        self, caller: Caller, done: ZoneStopped, result: CommandResult, reason: str | None
    ) -> AuditEntry:
        view = self._fleet.get(result.vehicle_id)
        return audit.entry(
            caller,
            action=action_of(VehicleCommand.EMERGENCY_STOP),
            resource_type="vehicle",
            resource_id=str(result.vehicle_id),
            success=result.ok,
            facility_id=view.facility_id if view is not None else done.facility_id,
            details=command_details(result, reason, zone_id=str(done.zone_id)),
            reason=failure_reason(result),
        )

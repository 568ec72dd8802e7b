"""Vehicle operations: pause, resume, cancel order, charge, e-stop, and maintenance mode.

Every call is audited, refused ones included: ``vehicle.<command>`` (``vehicle.pause``,
``vehicle.cancel_order``, ``vehicle.maintenance``...) on resource type ``vehicle`` with
``{command, outcome, correlation_id, header_id, topic, detail, reason}``. A command that
went out is not undone when its audit row cannot be written (that failure is logged).

A vehicle of a facility the caller does not see is refused as :attr:`NOT_FOUND`, as if it
did not exist.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import asyncpg
import structlog

from dispatcher.audit.log import AuditEntry
from dispatcher.auth.roles import Permission
from dispatcher.links.commander import CommandOutcome, CommandResult, VehicleCommand
from dispatcher.links.commands import CommandReason
from dispatcher.ops import audit
from dispatcher.ops.caller import Caller
from dispatcher.ops.fleet_access import Commander, FleetLookup
from dispatcher.storage import fleet_store
from fleet.model import VehicleView

log = structlog.get_logger(__name__)

MAINTENANCE_ACTION = "vehicle.maintenance"


class VehicleRefusal(StrEnum):
    """Why a vehicle operation did not reach the vehicle (the audit ``reason``)."""

    #: No vehicle links run in this process: nothing can be sent.
    NO_LINKS = "commander_unavailable"
    #: No such vehicle, or one of a facility the caller does not see.
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    #: Maintenance mode was switched in the daemon but could not be stored.
    STORAGE_FAILED = "storage_failed"


class Verdict(StrEnum):
    """What became of a command that reached the commander."""

    #: Handed to the broker session at QoS 1; the vehicle's next state tells the rest.
    SENT = "sent"
    #: Not sent now (broker or header store away): retry later; the server's trouble.
    UNREACHABLE = "unreachable"
    #: Not sent: the vehicle is offline; retry when it is back (its state, not ours).
    OFFLINE = "offline"
    #: The command does not apply to this vehicle.
    NOT_APPLICABLE = "not_applicable"
    #: The vehicle left the fleet between the check and the command.
    VEHICLE_GONE = "vehicle_gone"


@dataclass(frozen=True, slots=True)
class VehicleRefused:
    """A vehicle operation refused before (or, for storage, after) the command."""

    reason: VehicleRefusal
    vehicle_id: uuid.UUID
    #: The maintenance flag now set in the daemon (maintenance operations only).
    maintenance: bool | None = None


@dataclass(frozen=True, slots=True)
class CommandAttempt:
    """A command the commander tried: its result and the verdict on it."""

    result: CommandResult
    verdict: Verdict
    #: The maintenance flag now set (maintenance operations only).
    maintenance: bool | None = None

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.SENT


def action_of(command: VehicleCommand) -> str:
    """The audit action of a command (both maintenance commands are ``vehicle.maintenance``)."""
    if command in (VehicleCommand.MAINTENANCE_ON, VehicleCommand.MAINTENANCE_OFF):
        return MAINTENANCE_ACTION
    return f"vehicle.{command.value}"


def command_details(result: CommandResult, reason: str | None, **extra: Any) -> dict[str, Any]:
    """Audit details of a command that reached the commander."""
    return {
        "command": result.command.value,
        "outcome": result.outcome.value,
        "correlation_id": result.correlation_id,
        "header_id": result.sent.get("header_id"),
        "topic": result.sent.get("topic"),
        "detail": result.detail,
        "reason": reason,
        **extra,
    }


def failure_reason(result: CommandResult) -> str | None:
    """The audit ``reason`` of a command result (None when it went out)."""
    return None if result.ok else f"{result.outcome.value}: {result.detail}"


def verdict_of(result: CommandResult, *, still_known: bool) -> Verdict:
    """The verdict on ``result``; ``still_known``: the vehicle is still in the fleet."""
    if result.outcome is CommandOutcome.DONE:
        return Verdict.SENT
    if result.reason is CommandReason.VEHICLE_OFFLINE:
        return Verdict.OFFLINE
    if result.outcome is CommandOutcome.RETRY:
        return Verdict.UNREACHABLE
    return Verdict.NOT_APPLICABLE if still_known else Verdict.VEHICLE_GONE


class VehicleOps:
    """Commands to single vehicles, checked, sent and audited."""

    def __init__(self, pool: asyncpg.Pool, fleet: FleetLookup, commander: Commander | None) -> None:
        self._pool = pool
        self._fleet = fleet
        self._commander = commander

    async def command(
        self,
        caller: Caller,
        vehicle_id: uuid.UUID,
        command: VehicleCommand,
        *,
        reason: str | None = None,
    ) -> CommandAttempt | VehicleRefused:
        """Send ``command`` (pause, resume, cancel_order, charge, emergency_stop)."""
        action = action_of(command)
        found = await self._reachable(caller, Permission.VEHICLE_COMMAND, vehicle_id, action)
        if isinstance(found, VehicleRefused):
            return found
        commander, view = found
        result = await commander.command(vehicle_id, command)
        log.info(
            "vehicle.command",
            command=result.command.value,
            outcome=result.outcome.value,
            correlation_id=result.correlation_id,
        )
        await self._audit(caller, action, result, view, command_details(result, reason))
        return CommandAttempt(result, self._verdict(result))

    async def set_maintenance(
        self, caller: Caller, vehicle_id: uuid.UUID, enabled: bool, *, reason: str | None = None
    ) -> CommandAttempt | VehicleRefused:
        """Set or clear maintenance mode, in the daemon at once and stored for restarts.

        Robots get no message (VDA 5050 has no such mode); an online driver's app is told.
        """
        found = await self._reachable(
            caller, Permission.VEHICLE_MAINTENANCE, vehicle_id, MAINTENANCE_ACTION
        )
        if isinstance(found, VehicleRefused):
            return found
        commander, view = found
        before = view.maintenance
        on_off = VehicleCommand.MAINTENANCE_ON if enabled else VehicleCommand.MAINTENANCE_OFF
        result = await commander.command(vehicle_id, on_off)
        after = self._fleet.get(vehicle_id)
        now = after.maintenance if after is not None else before
        log.info(
            "vehicle.maintenance",
            enabled=enabled,
            outcome=result.outcome.value,
            correlation_id=result.correlation_id,
        )
        details = command_details(
            result, reason, old={"maintenance": before}, new={"maintenance": now}
        )
        if now != before and not await self._store_maintenance(vehicle_id, now):
            if caller.audited:
                failed = VehicleRefusal.STORAGE_FAILED.value
                row = self._row(
                    caller,
                    MAINTENANCE_ACTION,
                    vehicle_id,
                    view,
                    details,
                    success=False,
                    reason=failed,
                )
                await audit.record_quietly(self._pool, row, correlation_id=result.correlation_id)
            return VehicleRefused(VehicleRefusal.STORAGE_FAILED, vehicle_id, maintenance=now)
        await self._audit(caller, MAINTENANCE_ACTION, result, view, details)
        return CommandAttempt(result, self._verdict(result), maintenance=now)

    # Steps ------------------------------------------------------------------------------

    async def _reachable(
        self, caller: Caller, permission: Permission, vehicle_id: uuid.UUID, action: str
    ) -> tuple[Commander, VehicleView] | VehicleRefused:
        """The commander and the vehicle, or the (audited) refusal."""
        view = self._fleet.get(vehicle_id)
        commander = self._commander
        if not caller.can(permission):
            reason = VehicleRefusal.FORBIDDEN
        elif commander is None:
            reason = VehicleRefusal.NO_LINKS
        elif view is None or not caller.sees_facility(view.facility_id):
            reason = VehicleRefusal.NOT_FOUND
        else:
            return commander, view
        if caller.audited:
            row = audit.entry(
                caller,
                action=action,
                resource_type="vehicle",
                resource_id=str(vehicle_id),
                success=False,
                reason=reason.value,
            )
            await audit.record(self._pool, row)
        return VehicleRefused(reason, vehicle_id)

    def _verdict(self, result: CommandResult) -> Verdict:
        return verdict_of(result, still_known=self._fleet.get(result.vehicle_id) is not None)

    async def _store_maintenance(self, vehicle_id: uuid.UUID, on: bool) -> bool:
        """Store the flag; False (logged) when the database could not be written."""
        try:
            await fleet_store.set_maintenance(self._pool, vehicle_id, on)
        except audit.STORAGE_ERRORS:
            log.exception("vehicle.maintenance_store_failed")
            return False
        return True

    def _row(
        self,
        caller: Caller,
        action: str,
        vehicle_id: uuid.UUID,
        view: VehicleView,
        details: dict[str, Any],
        *,
        success: bool,
        reason: str | None,
    ) -> AuditEntry:
        return audit.entry(
            caller,
            action=action,
            resource_type="vehicle",
            resource_id=str(vehicle_id),
            success=success,
            facility_id=view.facility_id,
            details=details,
            reason=reason,
        )

    async def _audit(
        self,
        caller: Caller,
        action: str,
        result: CommandResult,
        view: VehicleView,
        details: dict[str, Any],
    ) -> None:
        """Audit a command that reached the commander (a failure to write is logged)."""
        if not caller.audited:
            return
        row = self._row(
            caller,
            action,
            result.vehicle_id,
            view,
            details,
            success=result.ok,
            reason=failure_reason(result),
        )
        await audit.record_quietly(self._pool, row, correlation_id=result.correlation_id)

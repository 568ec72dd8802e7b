"""Vehicle command endpoints under ``/v1``: pause, resume, cancel order, charge, e-stop,
maintenance mode, and the emergency stop of every vehicle inside a zone.

Every command goes through ``services.commander`` (:class:`VehicleCommander`), which turns
it into the VDA 5050 instant action of a robot or the command message of a driver's app.
Its outcome maps onto HTTP:

==========  ==============================================================================
done        202 ``{vehicle_id, command, outcome, correlation_id, detail}``: handed to the
            broker session at QoS 1; the vehicle's next state shows whether it obeyed.
retry       503 problem with ``Retry-After``: not sent now (vehicle offline, broker away).
impossible  409 problem (the command does not apply to this vehicle); 404 if the vehicle
            vanished meanwhile.
==========  ==============================================================================

A vehicle the caller's facility does not see answers 404 as if it did not exist; without
vehicle links in this process (``commander`` is None) every command answers 503.

Permissions: ``vehicle_command`` for the commands and the zone e-stop,
``vehicle_maintenance`` for maintenance mode.

Audit: every call, refused ones included, writes an audit row: ``vehicle.<command>``
(``vehicle.pause``, ``vehicle.cancel_order``, ``vehicle.maintenance``...) on resource type
``vehicle`` with ``{outcome, correlation_id, header_id, topic, detail}``; the zone e-stop
writes one ``vehicle.emergency_stop`` row per vehicle and a ``zone.emergency_stop`` row,
in one transaction. A command that went out is not undone if its audit row cannot be
written (that failure is logged).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from enum import StrEnum
from typing import Annotated, Any

import asyncpg
import structlog
from fastapi import APIRouter, Body, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from dispatcher.api.deps import Principal, audit_fields, get_services, record_audit, require
from dispatcher.api.problems import (
    CONFLICT,
    NOT_FOUND,
    UNAVAILABLE,
    ProblemError,
    problem_responses,
)
from dispatcher.api.routes.zones import not_found as zone_not_found
from dispatcher.api.routes.zones import zone_store
from dispatcher.api.schemas import IN_MODEL_CONFIG
from dispatcher.audit.log import AuditEntry, append_audit
from dispatcher.auth.roles import Permission
from dispatcher.links.commander import CommandOutcome, CommandResult, VehicleCommander
from dispatcher.storage import fleet_store
from dispatcher.storage.db import CONNECT_ERRORS
from fleet.model import VehicleView

log = structlog.get_logger(__name__)

router = APIRouter(tags=["vehicle commands"])

#: Seconds a client should wait before retrying a command that could not be sent.
RETRY_AFTER_S = 5

_STORAGE_ERRORS: tuple[type[BaseException], ...] = (asyncpg.PostgresError, *CONNECT_ERRORS)


class CommandName(StrEnum):
    """Operator commands (the last path segment)."""

    PAUSE = "pause"
    RESUME = "resume"
    CANCEL_ORDER = "cancel-order"
    CHARGE = "charge"
    EMERGENCY_STOP = "emergency-stop"


_SEND: dict[CommandName, Callable[[VehicleCommander, uuid.UUID], Awaitable[CommandResult]]] = {
    CommandName.PAUSE: VehicleCommander.pause,
    CommandName.RESUME: VehicleCommander.resume,
    CommandName.CANCEL_ORDER: VehicleCommander.cancel_order,
    CommandName.CHARGE: VehicleCommander.send_to_charge,
    CommandName.EMERGENCY_STOP: VehicleCommander.emergency_stop,
}

_ACTIONS: dict[CommandName, str] = {
    CommandName.PAUSE: "vehicle.pause",
    CommandName.RESUME: "vehicle.resume",
    CommandName.CANCEL_ORDER: "vehicle.cancel_order",
    CommandName.CHARGE: "vehicle.charge",
    CommandName.EMERGENCY_STOP: "vehicle.emergency_stop",
}

MAINTENANCE_ACTION = "vehicle.maintenance"


# Models --------------------------------------------------------------------------------

Reason = Annotated[str, Field(min_length=1, max_length=500, pattern=r"^[^\x00]*$")]


class CommandRequest(BaseModel):
    """Optional body of a command: why (kept in the audit trail)."""

    model_config = IN_MODEL_CONFIG

    reason: Reason | None = None


class MaintenanceRequest(BaseModel):
    """Body of ``POST /v1/vehicles/{id}/maintenance``."""

    model_config = IN_MODEL_CONFIG

    enabled: StrictBool = Field(description="true takes the vehicle out of service")
    reason: Reason | None = None


class CommandOut(BaseModel):
    """What became of one command."""

    model_config = ConfigDict(frozen=True)

    vehicle_id: uuid.UUID
    command: str = Field(description="pause, resume, cancel_order, charge, emergency_stop, ...")
    outcome: CommandOutcome
    correlation_id: str = Field(description="VDA 5050 actionId / driver correlationId")
    detail: str

    @classmethod
    def from_result(cls, result: CommandResult) -> CommandOut:
        return cls(
            vehicle_id=result.vehicle_id,
            command=result.command.value,
            outcome=result.outcome,
            correlation_id=result.correlation_id,
            detail=result.detail,
        )


class MaintenanceOut(CommandOut):
    """A maintenance switch: the flag now set."""

    maintenance: bool


class ZoneStopOut(BaseModel):
    """The emergency stop of a zone: one result per online vehicle found inside it."""

    model_config = ConfigDict(frozen=True)

    zone_id: uuid.UUID
    facility_id: uuid.UUID
    vehicles: list[CommandOut]
    stopped: int = Field(description="Vehicles whose e-stop was handed to the broker")
    not_stopped: int = Field(description="Vehicles whose e-stop could not be sent")
    unlocated: list[uuid.UUID] = Field(
        default_factory=list,
        description="Online vehicles of the zone's facility whose position is unknown (map "
        "not configured, localisation lost): they may be inside and were NOT stopped; "
        "check them on site or stop them one by one",
    )


# Helpers -------------------------------------------------------------------------------


def _commander(request: Request) -> VehicleCommander | None:
    return get_services(request).commander


def _details(result: CommandResult, reason: str | None, **extra: Any) -> dict[str, Any]:
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


async def _refuse(
    request: Request,
    principal: Principal,
    action: str,
    vehicle_id: uuid.UUID,
    reason: str,
    problem: ProblemError,
    *,
    facility_id: uuid.UUID | None = None,
    details: Mapping[str, Any] | None = None,
) -> ProblemError:
    """Audit a refused command; returns ``problem`` for the caller to raise."""
    await record_audit(
        request,
        principal,
        action=action,
        resource_type="vehicle",
        resource_id=str(vehicle_id),
        success=False,
        reason=reason,
        details=details,
        facility_id=facility_id,
    )
    return problem


def _no_links() -> ProblemError:
    return ProblemError(
        503,
        "Service Unavailable",
        "Vehicle links are not running in this process; no command can be sent.",
        type=UNAVAILABLE,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def _vehicle_not_found(vehicle_id: uuid.UUID) -> ProblemError:
    return ProblemError(404, "Not Found", f"No vehicle {vehicle_id}.", type=NOT_FOUND)


async def _visible_vehicle(
    request: Request, principal: Principal, vehicle_id: uuid.UUID, action: str
) -> tuple[VehicleCommander, VehicleView]:
    """The commander and the vehicle, or the (audited) 503 / 404."""
    commander = _commander(request)
    if commander is None:
        raise await _refuse(
            request, principal, action, vehicle_id, "commander_unavailable", _no_links()
        )
    view = get_services(request).fleet.get(vehicle_id)
    if view is None or not principal.sees_facility(view.facility_id):
        raise await _refuse(
            request, principal, action, vehicle_id, "not_found", _vehicle_not_found(vehicle_id)
        )
    return commander, view


def _problem_for(result: CommandResult, **extra: Any) -> ProblemError | None:
    """The problem document a command outcome maps to (None for done)."""
    members = {
        "vehicle_id": str(result.vehicle_id),
        "command": result.command.value,
        "outcome": result.outcome.value,
        "correlation_id": result.correlation_id,
        **extra,
    }
    if result.outcome is CommandOutcome.DONE:
        return None
    if result.outcome is CommandOutcome.RETRY:
        return ProblemError(
            503,
            "Vehicle unreachable",
            f"The command was not sent ({result.detail}); retry later.",
            type=UNAVAILABLE,
            headers={"Retry-After": str(RETRY_AFTER_S)},
            extra=members,
        )
    if result.detail == "unknown vehicle":
        return ProblemError(
            404, "Not Found", f"No vehicle {result.vehicle_id}.", type=NOT_FOUND, extra=members
        )
    return ProblemError(
        409,
        "Command does not apply",
        f"The command cannot be sent to this vehicle: {result.detail}.",
        type=CONFLICT,
        extra=members,
    )


async def _audit_result(
    request: Request,
    principal: Principal,
    action: str,
    result: CommandResult,
    facility_id: uuid.UUID,
    details: Mapping[str, Any],
) -> None:
    """Audit a command that reached the commander; a failure to write is logged, not raised."""
    try:
        await record_audit(
            request,
            principal,
            action=action,
            resource_type="vehicle",
            resource_id=str(result.vehicle_id),
            success=result.ok,
            reason=None if result.ok else f"{result.outcome.value}: {result.detail}",
            details=details,
            facility_id=facility_id,
        )
    except _STORAGE_ERRORS:
        log.exception("audit.write_failed", action=action, correlation_id=result.correlation_id)


# Routes --------------------------------------------------------------------------------


@router.post(
    "/vehicles/{vehicle_id}/commands/{command}",
    status_code=202,
    response_model=CommandOut,
    summary="Pause, resume, cancel the order of, send to charge or e-stop one vehicle",
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 503),
)
async def command_vehicle(
    request: Request,
    vehicle_id: Annotated[uuid.UUID, Path(description="Vehicle id")],
    command: Annotated[CommandName, Path(description="The command")],
    body: Annotated[CommandRequest | None, Body()] = None,
    principal: Principal = Depends(require(Permission.VEHICLE_COMMAND)),
) -> CommandOut:
    """Send one command (202 once handed to the broker); 503 + ``Retry-After`` when the
    vehicle is offline or the broker away.

    Robots get VDA 5050 instant actions (``startPause``, ``stopPause``, ``cancelOrder``,
    ``startCharging``; e-stop is a HARD-blocking ``startPause``); drivers get the matching
    command message.
    """
    action = _ACTIONS[command]
    reason = body.reason if body is not None else None
    with structlog.contextvars.bound_contextvars(vehicle_id=str(vehicle_id)):
        commander, view = await _visible_vehicle(request, principal, vehicle_id, action)
        result = await _SEND[command](commander, vehicle_id)
        log.info(
            "api.vehicle_command",
            command=result.command.value,
            outcome=result.outcome.value,
            correlation_id=result.correlation_id,
        )
        await _audit_result(
            request, principal, action, result, view.facility_id, _details(result, reason)
        )
        problem = _problem_for(result)
        if problem is not None:
            raise problem
        return CommandOut.from_result(result)


@router.post(
    "/vehicles/{vehicle_id}/maintenance",
    status_code=202,
    response_model=MaintenanceOut,
    summary="Take a vehicle out of service, or back into it",
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 503),
)
async def set_maintenance(
    request: Request,
    vehicle_id: Annotated[uuid.UUID, Path(description="Vehicle id")],
    body: MaintenanceRequest,
    principal: Principal = Depends(require(Permission.VEHICLE_MAINTENANCE)),
) -> MaintenanceOut:
    """Set or clear maintenance mode: the planner skips the vehicle at once, online or not.

    Robots get no message (VDA 5050 has no such mode); an online driver's app is told. The
    flag is stored, so it survives a daemon restart. 503 when the driver could not be told
    (the flag is set all the same; the problem says so).
    """
    action = MAINTENANCE_ACTION
    with structlog.contextvars.bound_contextvars(vehicle_id=str(vehicle_id)):
        commander, view = await _visible_vehicle(request, principal, vehicle_id, action)
        before = view.maintenance
        result = await commander.set_maintenance(vehicle_id, body.enabled)
        after_view = get_services(request).fleet.get(vehicle_id)
        now = after_view.maintenance if after_view is not None else before
        log.info(
            "api.vehicle_maintenance",
            enabled=body.enabled,
            outcome=result.outcome.value,
            correlation_id=result.correlation_id,
        )
        if now != before:
            try:
                await fleet_store.set_maintenance(get_services(request).pool, vehicle_id, now)
            except _STORAGE_ERRORS as exc:
                log.exception("vehicle.maintenance_store_failed")
                raise ProblemError(
                    503,
                    "Storage unavailable",
                    "Maintenance mode is set in the running daemon but could not be stored; "
                    "repeat the request.",
                    type=UNAVAILABLE,
                    headers={"Retry-After": str(RETRY_AFTER_S)},
                ) from exc
        details = _details(
            result, body.reason, old={"maintenance": before}, new={"maintenance": now}
        )
        await _audit_result(request, principal, action, result, view.facility_id, details)
        problem = _problem_for(result, maintenance=now)
        if problem is not None:
            raise problem
        out = CommandOut.from_result(result)
        return MaintenanceOut(**out.model_dump(), maintenance=now)


@router.post(
    "/zones/{zone_id}/emergency-stop",
    status_code=202,
    response_model=ZoneStopOut,
    summary="Emergency-stop every online vehicle inside a zone",
    responses=problem_responses(400, 401, 403, 404, 413, 422, 503),
)
async def emergency_stop_zone(
    request: Request,
    zone_id: Annotated[uuid.UUID, Path(description="Zone id")],
    body: Annotated[CommandRequest | None, Body()] = None,
    principal: Principal = Depends(require(Permission.VEHICLE_COMMAND)),
) -> ZoneStopOut:
    """E-stop every online vehicle whose live position lies inside the zone (or on its edge).

    Positions come from the live registry; containment is PostGIS ``ST_Covers`` on the
    zone's geography. Only vehicles the caller may command are considered (a facility
    token: its own facility's). 202 when every e-stop was handed to the broker (also when
    the zone is empty); 503 + ``Retry-After`` when some could not be sent, with the
    per-vehicle results in ``vehicles`` of the problem document.
    """
    reason = body.reason if body is not None else None
    services = get_services(request)
    with structlog.contextvars.bound_contextvars(zone_id=str(zone_id)):
        commander = services.commander
        if commander is None:
            await record_audit(
                request,
                principal,
                action="zone.emergency_stop",
                resource_type="zone",
                resource_id=str(zone_id),
                success=False,
                reason="commander_unavailable",
            )
            raise _no_links()
        store = zone_store(request)
        zone = await store.get(zone_id, principal.facility_id)
        if zone is None:
            await record_audit(
                request,
                principal,
                action="zone.emergency_stop",
                resource_type="zone",
                resource_id=str(zone_id),
                success=False,
                reason="not_found",
            )
            raise zone_not_found(zone_id)
        candidates = {
            v.id: v
            for v in services.fleet.snapshot()
            if v.online and v.position is not None and principal.sees_facility(v.facility_id)
        }
        inside_ids = await store.covering(
            zone.id,
            [(v.id, v.position.lon, v.position.lat) for v in candidates.values() if v.position],
        )
        inside = sorted((candidates[i] for i in inside_ids), key=lambda v: (v.name, str(v.id)))
        # A vehicle fleetd cannot place might be inside: say so rather than pass over it.
        unlocated = sorted(
            v.id
            for v in services.fleet.snapshot()
            if v.online
            and v.position is None
            and v.facility_id == zone.facility_id
            and principal.sees_facility(v.facility_id)
        )
        results = await asyncio.gather(*(_estop(commander, v) for v in inside))
        stopped = sum(1 for r in results if r.ok)
        log.info(
            "api.zone_emergency_stop",
            facility_id=str(zone.facility_id),
            vehicles=len(results),
            stopped=stopped,
            unlocated=len(unlocated),
        )
        await _audit_zone_stop(
            request, principal, zone.id, zone.facility_id, results, reason, unlocated
        )
        out = ZoneStopOut(
            zone_id=zone.id,
            facility_id=zone.facility_id,
            vehicles=[CommandOut.from_result(r) for r in results],
            stopped=stopped,
            not_stopped=len(results) - stopped,
            unlocated=unlocated,
        )
        if any(r.outcome is CommandOutcome.RETRY for r in results):
            raise ProblemError(
                503,
                "Not every vehicle could be stopped",
                f"{out.not_stopped} of {len(results)} e-stops could not be sent; "
                "retry (stopping a stopped vehicle again is harmless).",
                type=UNAVAILABLE,
                headers={"Retry-After": str(RETRY_AFTER_S)},
                extra=out.model_dump(mode="json"),
            )
        return out


async def _estop(commander: VehicleCommander, vehicle: VehicleView) -> CommandResult:
    with structlog.contextvars.bound_contextvars(vehicle_id=str(vehicle.id)):
        return await commander.emergency_stop(vehicle.id)


async def _audit_zone_stop(
    request: Request,
    principal: Principal,
    zone_id: uuid.UUID,
    facility_id: uuid.UUID,
    results: list[CommandResult],
    reason: str | None,
    unlocated: list[uuid.UUID],
) -> None:
    """One row per vehicle and one for the zone, in one transaction (logged on failure)."""
    action = _ACTIONS[CommandName.EMERGENCY_STOP]
    views = get_services(request).fleet
    try:
        async with get_services(request).pool.acquire() as conn, conn.transaction():
            for r in results:
                view = views.get(r.vehicle_id)
                await append_audit(
                    conn,
                    AuditEntry(
                        action=action,
                        resource_type="vehicle",
                        resource_id=str(r.vehicle_id),
                        success=r.ok,
                        reason=None if r.ok else f"{r.outcome.value}: {r.detail}",
                        details=_details(r, reason, zone_id=str(zone_id)),
                        **audit_fields(
                            principal,
                            request,
                            facility_id=view.facility_id if view is not None else facility_id,
                        ),
                    ),
                )
            await append_audit(
                conn,
                AuditEntry(
                    action="zone.emergency_stop",
                    resource_type="zone",
                    resource_id=str(zone_id),
                    success=all(r.ok for r in results),
                    details={
                        "reason": reason,
                        "vehicles": [
                            {
                                "vehicle_id": str(r.vehicle_id),
                                "outcome": r.outcome.value,
                                "correlation_id": r.correlation_id,
                            }
                            for r in results
                        ],
                        "unlocated": [str(v) for v in unlocated],
                    },
                    **audit_fields(principal, request, facility_id=facility_id),
                ),
            )
    except _STORAGE_ERRORS:
        log.exception("audit.write_failed", action="zone.emergency_stop")

"""Vehicle command endpoints under ``/v1``: pause, resume, cancel order, charge, e-stop,
maintenance mode, and the emergency stop of every vehicle inside a zone.

Each route calls one operation (:mod:`dispatcher.ops.vehicles`,
:mod:`dispatcher.ops.zone_stop`), which checks, sends through the commander (the VDA 5050
instant action of a robot or the command message of a driver's app) and audits. The
outcome maps onto HTTP:

==========  ==============================================================================
done        202 ``{vehicle_id, command, outcome, correlation_id, detail}``: handed to the
            broker session at QoS 1; the vehicle's next state shows whether it obeyed.
retry       409 problem (type ``vehicle-offline``) with ``Retry-After`` when the vehicle is
            offline (its state, not the server's); 503 with ``Retry-After`` when the
            broker or Redis is away.
impossible  409 problem (the command does not apply to this vehicle); 404 if the vehicle
            vanished meanwhile.
==========  ==============================================================================

A vehicle the caller's facility does not see answers 404 as if it did not exist; without
vehicle links in this process (``commander`` is None) every command answers 503.

Permissions: ``vehicle_command`` for the commands and the zone e-stop,
``vehicle_maintenance`` for maintenance mode.

Audit: every call, refused ones included, writes audit rows (see the operations).
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated

import structlog
from fastapi import APIRouter, Body, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from dispatcher.api.deps import Principal, caller, require, vehicle_ops, zone_stop_ops
from dispatcher.api.problems import (
    CONFLICT,
    NOT_FOUND,
    UNAVAILABLE,
    ProblemError,
    problem_responses,
)
from dispatcher.api.routes.zones import not_found as zone_not_found
from dispatcher.api.schemas import IN_MODEL_CONFIG
from dispatcher.auth.roles import Permission
from dispatcher.links.commander import CommandOutcome, CommandResult, VehicleCommand
from dispatcher.ops.vehicles import CommandAttempt, VehicleRefusal, VehicleRefused, Verdict
from dispatcher.ops.zone_stop import ZoneStopRefusal, ZoneStopRefused

log = structlog.get_logger(__name__)

router = APIRouter(tags=["vehicle commands"])

#: Seconds a client should wait before retrying a command that could not be sent.
RETRY_AFTER_S = 5
#: Problem type of a command to an offline vehicle (409).
VEHICLE_OFFLINE = "urn:fleetd:problem:vehicle-offline"


class CommandName(StrEnum):
    """Operator commands (the last path segment)."""

    PAUSE = "pause"
    RESUME = "resume"
    CANCEL_ORDER = "cancel-order"
    CHARGE = "charge"
    EMERGENCY_STOP = "emergency-stop"


_COMMANDS: dict[CommandName, VehicleCommand] = {
    CommandName.PAUSE: VehicleCommand.PAUSE,
    CommandName.RESUME: VehicleCommand.RESUME,
    CommandName.CANCEL_ORDER: VehicleCommand.CANCEL_ORDER,
    CommandName.CHARGE: VehicleCommand.CHARGE,
    CommandName.EMERGENCY_STOP: VehicleCommand.EMERGENCY_STOP,
}


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


# Outcomes to HTTP ----------------------------------------------------------------------


def _no_links() -> ProblemError:
    return ProblemError(
        503,
        "Service Unavailable",
        "Vehicle links are not running in this process; no command can be sent.",
        type=UNAVAILABLE,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def _vehicle_refused(refused: VehicleRefused) -> ProblemError:
    if refused.reason is VehicleRefusal.NO_LINKS:
        return _no_links()
    if refused.reason is VehicleRefusal.STORAGE_FAILED:
        return ProblemError(
            503,
            "Storage unavailable",
            "Maintenance mode is set in the running daemon but could not be stored; "
            "repeat the request.",
            type=UNAVAILABLE,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    return ProblemError(404, "Not Found", f"No vehicle {refused.vehicle_id}.", type=NOT_FOUND)


def _attempt_problem(attempt: CommandAttempt, **extra: object) -> ProblemError | None:
    """The problem document a command that was not sent maps to (None when it was)."""
    result = attempt.result
    members = {
        "vehicle_id": str(result.vehicle_id),
        "command": result.command.value,
        "outcome": result.outcome.value,
        "correlation_id": result.correlation_id,
        **extra,
    }
    if attempt.verdict is Verdict.SENT:
        return None
    if attempt.verdict is Verdict.OFFLINE:
        return ProblemError(
            409,
            "Vehicle offline",
            f"The command was not sent: the vehicle is offline ({result.detail}); "
            "retry when it is back online.",
            type=VEHICLE_OFFLINE,
            headers={"Retry-After": str(RETRY_AFTER_S)},
            extra=members,
        )
    if attempt.verdict is Verdict.UNREACHABLE:
        return ProblemError(
            503,
            "Vehicle unreachable",
            f"The command was not sent ({result.detail}); retry later.",
            type=UNAVAILABLE,
            headers={"Retry-After": str(RETRY_AFTER_S)},
            extra=members,
        )
    if attempt.verdict is Verdict.VEHICLE_GONE:
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
    """Send one command (202 once handed to the broker); 409 + ``Retry-After`` when the
    vehicle is offline; 503 + ``Retry-After`` when the broker is away.

    Robots get VDA 5050 instant actions (``startPause``, ``stopPause``, ``cancelOrder``,
    ``startCharging``; e-stop is a HARD-blocking ``startPause``); drivers get the matching
    command message.
    """
    reason = body.reason if body is not None else None
    with structlog.contextvars.bound_contextvars(vehicle_id=str(vehicle_id)):
        outcome = await vehicle_ops(request).command(
            caller(principal, request), vehicle_id, _COMMANDS[command], reason=reason
        )
    if isinstance(outcome, VehicleRefused):
        raise _vehicle_refused(outcome)
    problem = _attempt_problem(outcome)
    if problem is not None:
        raise problem
    return CommandOut.from_result(outcome.result)


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
    with structlog.contextvars.bound_contextvars(vehicle_id=str(vehicle_id)):
        outcome = await vehicle_ops(request).set_maintenance(
            caller(principal, request), vehicle_id, body.enabled, reason=body.reason
        )
    if isinstance(outcome, VehicleRefused):
        raise _vehicle_refused(outcome)
    now = bool(outcome.maintenance)
    problem = _attempt_problem(outcome, maintenance=now)
    if problem is not None:
        raise problem
    out = CommandOut.from_result(outcome.result)
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
    with structlog.contextvars.bound_contextvars(zone_id=str(zone_id)):
        outcome = await zone_stop_ops(request).emergency_stop(
            caller(principal, request), zone_id, reason=reason
        )
    if isinstance(outcome, ZoneStopRefused):
        if outcome.reason is ZoneStopRefusal.NO_LINKS:
            raise _no_links()
        raise zone_not_found(zone_id)
    out = ZoneStopOut(
        zone_id=outcome.zone_id,
        facility_id=outcome.facility_id,
        vehicles=[CommandOut.from_result(r) for r in outcome.results],
        stopped=outcome.stopped,
        not_stopped=outcome.not_stopped,
        unlocated=list(outcome.unlocated),
    )
    if outcome.retry:
        raise ProblemError(
            503,
            "Not every vehicle could be stopped",
            f"{out.not_stopped} of {len(outcome.results)} e-stops could not be sent; "
            "retry (stopping a stopped vehicle again is harmless).",
            type=UNAVAILABLE,
            headers={"Retry-After": str(RETRY_AFTER_S)},
            extra=out.model_dump(mode="json"),
        )
    return out

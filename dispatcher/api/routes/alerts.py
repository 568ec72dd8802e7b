"""``/v1/alerts``: what facility staff must look at, and acknowledging it.

Alerts are raised and cleared by the daemon (vehicle offline, low battery, fatal error,
safety stop, mission waiting too long, mission waiting for an operator's decision; see
:mod:`dispatcher.alerting.rules`). ``GET`` lists them (``fleet_view``); ``POST
/v1/alerts/{id}/acknowledge`` marks one seen (``vehicle_command``; audited by
:mod:`dispatcher.ops.alerts`). Each change is also an ``alert.*`` event on ``/v1/events``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict

from dispatcher.alerting.store import AlertRow
from dispatcher.api.deps import Principal, caller, get_services, require
from dispatcher.api.problems import CONFLICT, FORBIDDEN, NOT_FOUND, ProblemError, problem_responses
from dispatcher.api.routes.fleet import FacilityQuery, _parse_facility
from dispatcher.auth.roles import Permission
from dispatcher.ops.alerts import AlertOps, AlertRefusal, AlertRefused

router = APIRouter(tags=["alerts"])


class AlertPublic(BaseModel):
    """One alert."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    facility_id: uuid.UUID
    kind: str
    severity: str
    subject_id: uuid.UUID
    vehicle_id: uuid.UUID | None
    mission_id: uuid.UUID | None
    message: str
    raised_at: datetime
    cleared_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None


class AlertList(BaseModel):
    items: list[AlertPublic]


def to_public(a: AlertRow) -> AlertPublic:
    return AlertPublic(
        id=a.id,
        facility_id=a.facility_id,
        kind=a.kind.value,
        severity=a.severity,
        subject_id=a.subject_id,
        vehicle_id=a.vehicle_id,
        mission_id=a.mission_id,
        message=a.message,
        raised_at=a.raised_at,
        cleared_at=a.cleared_at,
        acknowledged_at=a.acknowledged_at,
        acknowledged_by=a.acknowledged_by,
    )


def _ops(request: Request) -> AlertOps:
    return AlertOps(get_services(request).pool)


@router.get(
    "/alerts",
    response_model=AlertList,
    summary="Alerts for staff: open ones, or recent history",
    responses=problem_responses(401, 403, 422),
)
async def list_alerts(
    request: Request,
    principal: Principal = Depends(require(Permission.FLEET_VIEW)),
    facility: FacilityQuery = None,
    include_cleared: Annotated[bool, Query(description="Also cleared alerts")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> AlertList:
    """Newest first. A facility-scoped token sees its own facility's alerts only."""
    found = await _ops(request).list(
        caller(principal, request),
        facility_id=_parse_facility(facility),
        include_cleared=include_cleared,
        limit=limit,
    )
    if isinstance(found, AlertRefused):
        raise ProblemError(
            403, "Forbidden", "This token sees its own facility's alerts only.", type=FORBIDDEN
        )
    return AlertList(items=[to_public(a) for a in found])


@router.post(
    "/alerts/{alert_id}/acknowledge",
    response_model=AlertPublic,
    summary="Acknowledge an alert (audited)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def acknowledge_alert(
    alert_id: uuid.UUID,
    request: Request,
    principal: Principal = Depends(require(Permission.VEHICLE_COMMAND)),
) -> AlertPublic:
    """Mark the alert seen by this token's subject; 409 when it already was."""
    outcome = await _ops(request).acknowledge(caller(principal, request), alert_id)
    if isinstance(outcome, AlertRefused):
        if outcome.reason is AlertRefusal.NOT_FOUND:
            raise ProblemError(404, "Not found", f"No alert {alert_id}.", type=NOT_FOUND)
        if outcome.reason is AlertRefusal.FORBIDDEN:
            raise ProblemError(403, "Forbidden", "May not acknowledge alerts.", type=FORBIDDEN)
        by = outcome.alert.acknowledged_by if outcome.alert is not None else None
        raise ProblemError(
            409,
            "Already acknowledged",
            f"Alert {alert_id} was acknowledged already by {by or 'someone'}.",
            type=CONFLICT,
        )
    return to_public(outcome)

"""Mission endpoints under ``/v1``: create, list, get with timeline, cancel, prioritise.

Who may do what (``dispatcher.auth.roles``): creating needs ``mission_create``; seeing
needs ``mission_view_all`` (every mission of the facility) or ``mission_view_own`` (the
caller's own only); cancelling needs ``mission_cancel_any`` or ``mission_cancel_own``;
changing priority needs ``mission_prioritize``. A mission of another facility, or another
caller's mission for an own-only role, answers 404 as if it did not exist.

Handlers stay thin: input and output shapes are :mod:`dispatcher.api.mission_schemas`
(translated by :mod:`dispatcher.api.mission_mapping`), resolution is
:mod:`dispatcher.missions.domain`; each route calls one operation of
:mod:`dispatcher.ops.missions` (which checks, changes, stores and audits) and turns its
outcome into a response or a problem document.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import structlog
from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response

from dispatcher.api.deps import Principal, caller, get_services, mission_ops, require
from dispatcher.api.mission_mapping import build_draft, to_public, with_timeline
from dispatcher.api.mission_schemas import (
    CancelRequest,
    MissionCreate,
    MissionPage,
    MissionPublic,
    MissionWithTimeline,
    PriorityChange,
)
from dispatcher.api.passenger_reads import audit_passenger_read
from dispatcher.api.problems import (
    CONFLICT,
    FORBIDDEN,
    NOT_FOUND,
    UNAVAILABLE,
    VALIDATION,
    ProblemError,
    problem_responses,
)
from dispatcher.auth.roles import Permission
from dispatcher.config import Settings
from dispatcher.logs import log_context
from dispatcher.missions.domain import Cursor, resolve_facility
from dispatcher.missions.errors import (
    IdempotencyConflict,
    InvalidCursor,
    InvalidMission,
    VersionConflict,
)
from dispatcher.missions.lifecycle import IllegalTransition, MissionStatus, Priority
from dispatcher.missions.store import MAX_PAGE, TransitionResult
from dispatcher.ops.missions import MissionRefusal, MissionRefused
from geo.facility import FacilitySpec

log = structlog.get_logger(__name__)

router = APIRouter(tags=["missions"])

P = Permission

#: Idempotency keys: printable ASCII without spaces (UUIDs, ULIDs, client counters...).
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"


# Helpers -------------------------------------------------------------------------------


def _invalid(exc: InvalidMission | InvalidCursor, field: str | None = None) -> ProblemError:
    where = field or (f"body.{exc.field}" if isinstance(exc, InvalidMission) else "query.cursor")
    message = exc.message if isinstance(exc, InvalidMission) else str(exc)
    return ProblemError(
        422,
        "Invalid request",
        f"1 invalid value(s): {where}.",
        type=VALIDATION,
        errors=[(where, message)],
    )


def _not_found(mission_id: uuid.UUID) -> ProblemError:
    return ProblemError(404, "Not Found", f"No mission {mission_id}.", type=NOT_FOUND)


def _refused(refused: MissionRefused, principal: Principal) -> ProblemError:
    """The problem document of a refused transition, cancel or priority change."""
    exc = refused.error
    reason = refused.reason
    if reason is MissionRefusal.NOT_FOUND and refused.mission_id is not None:
        return _not_found(refused.mission_id)
    if isinstance(exc, IllegalTransition):
        return ProblemError(
            409,
            "Illegal transition",
            str(exc),
            type=CONFLICT,
            extra={
                "status_now": exc.status.value,
                "event": exc.event.value,
                "allowed_events": [e.value for e in exc.allowed],
            },
        )
    if isinstance(exc, VersionConflict):
        return ProblemError(
            409, "Version conflict", str(exc), type=CONFLICT, extra={"version": exc.actual}
        )
    if reason is MissionRefusal.WRONG_VEHICLE:
        return ProblemError(409, "Wrong vehicle", str(exc), type=CONFLICT)
    if isinstance(exc, InvalidMission):
        return _invalid(exc)
    if reason is MissionRefusal.NOT_OWNER:
        detail = f"Role {principal.role.value!r} may cancel only the missions it created."
    else:
        detail = f"Role {principal.role.value!r} may not do this."
    return ProblemError(403, "Forbidden", detail, type=FORBIDDEN)


def _changed(outcome: TransitionResult | MissionRefused, principal: Principal) -> MissionPublic:
    if isinstance(outcome, MissionRefused):
        raise _refused(outcome, principal)
    return to_public(outcome.mission)


def _mission_path(request: Request, mission_id: uuid.UUID) -> str:
    """The path of ``GET /v1/missions/{mission_id}`` (the ``Location`` of a created mission).

    The route's path is looked up once per app and kept in ``app.state``: ``url_path_for``
    walks every route of the app, about a tenth of the CPU of a create.
    """
    state = request.app.state
    template: str | None = getattr(state, "mission_path_template", None)
    if template is None:
        template = str(request.app.url_path_for("get_mission", mission_id="{mission_id}"))
        state.mission_path_template = template
    return template.format(mission_id=mission_id)


def _own_facility(settings: Settings, principal: Principal) -> FacilitySpec | None:
    if principal.facility_id is None:
        return settings.default_facility.spec
    return next((f for f in settings.facility_specs if f.id == principal.facility_id), None)


# Routes --------------------------------------------------------------------------------


@router.post(
    "/missions",
    status_code=201,
    response_model=MissionPublic,
    summary="Request a transport",
    responses={
        200: {"model": MissionPublic, "description": "Replay of an idempotent request"},
        **problem_responses(400, 401, 403, 409, 413, 422, 503),
    },
)
async def create_mission(
    body: MissionCreate,
    request: Request,
    response: Response,
    principal: Principal = Depends(require(P.MISSION_CREATE)),
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            pattern=IDEMPOTENCY_KEY_PATTERN,
            description="Retrying with the same key and body returns the same mission (200).",
        ),
    ] = None,
) -> MissionPublic:
    """Create a mission (201), or return the one an earlier call with this key created (200).

    The same ``Idempotency-Key`` with a different body is refused with 409.
    """
    services = get_services(request)
    if services.is_draining():
        raise _draining()
    settings = services.settings
    try:
        facility = resolve_facility(
            settings.facility_specs, body.facility, _own_facility(settings, principal)
        )
    except InvalidMission as exc:
        if principal.facility_id is not None and body.facility is not None:
            # Unknown looks like foreign to a scoped token (issue 13, item 18).
            raise _other_facility(body.facility) from exc
        raise _invalid(exc) from exc
    outcome = await mission_ops(request).create(
        caller(principal, request),
        facility,
        lambda: build_draft(
            body, facility, created_by=principal.subject, idempotency_key=idempotency_key
        ),
    )
    if isinstance(outcome, MissionRefused):
        raise _create_refused(outcome, principal, facility)
    mission = outcome.mission
    response.status_code = 201 if outcome.created else 200
    response.headers["Location"] = _mission_path(request, mission.id)
    if not outcome.created:
        response.headers["Idempotent-Replayed"] = "true"
    return to_public(mission)


def _create_refused(
    refused: MissionRefused, principal: Principal, facility: FacilitySpec
) -> ProblemError:
    if isinstance(refused.error, InvalidMission):
        return _invalid(refused.error)
    if isinstance(refused.error, IdempotencyConflict):
        return ProblemError(
            409,
            "Idempotency key reused",
            "This Idempotency-Key was used before with a different request body; "
            "use a new key for a new request.",
            type=CONFLICT,
            extra={"mission_id": str(refused.error.mission_id)},
        )
    if refused.reason is MissionRefusal.OTHER_FACILITY:
        return _other_facility(facility.key)
    if refused.reason in (MissionRefusal.UNAVAILABLE, MissionRefusal.SPOOL_FULL):
        return _unavailable(refused.reason)
    return _refused(refused, principal)


def _draining() -> ProblemError:
    """503: this daemon is shutting down and takes no new mission (another may)."""
    return ProblemError(
        503, "Service Unavailable",
        "fleetd is shutting down and takes no new missions; retry with the same "
        "Idempotency-Key (another instance, or this one after its restart, will take it).",
        type=UNAVAILABLE, headers={"Retry-After": "5"}, extra={"reason": "draining"},
    )  # fmt: skip


def _unavailable(reason: MissionRefusal) -> ProblemError:
    """503: the mission cannot be kept safely now (database away, or the spool full)."""
    if reason is MissionRefusal.SPOOL_FULL:
        detail = (
            "fleetd's local spool is full while the database is unreachable: no new "
            "missions are taken until it drains. Vehicle safety commands still work."
        )
    else:
        detail = "The mission database is unreachable; retry with the same Idempotency-Key."
    return ProblemError(
        503, "Service Unavailable", detail, type=UNAVAILABLE, headers={"Retry-After": "5"},
        extra={"reason": reason.value},
    )  # fmt: skip


def _other_facility(ref: str) -> ProblemError:
    return ProblemError(
        403,
        "Forbidden",
        f"This token may not create missions in facility {ref!r}.",
        type=FORBIDDEN,
    )


@router.get(
    "/missions",
    response_model=MissionPage,
    summary="List missions, newest first",
    responses=problem_responses(401, 403, 422),
)
async def list_missions(
    request: Request,
    principal: Principal = Depends(require(P.MISSION_VIEW_ALL, P.MISSION_VIEW_OWN)),
    status: Annotated[list[MissionStatus] | None, Query(description="Any of these")] = None,
    priority: Annotated[list[Priority] | None, Query(description="Any of these")] = None,
    vehicle_id: Annotated[uuid.UUID | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=512, description="next_cursor of the previous page")
    ] = None,
) -> MissionPage:
    """Missions the caller may see, filtered; follow ``next_cursor`` for the next page."""
    try:
        after = Cursor.decode(cursor) if cursor is not None else None
    except InvalidCursor as exc:
        raise _invalid(exc) from exc
    page = await mission_ops(request).list(
        caller(principal, request),
        statuses=status or (),
        priorities=priority or (),
        vehicle_id=vehicle_id,
        limit=limit,
        after=after,
    )
    await audit_passenger_read(request, principal, page.items)
    return MissionPage(
        items=[to_public(m) for m in page.items],
        next_cursor=page.next_cursor.encode() if page.next_cursor else None,
    )


@router.get(
    "/missions/{mission_id}",
    response_model=MissionWithTimeline,
    summary="A mission and its timeline",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_mission(
    mission_id: uuid.UUID,
    request: Request,
    principal: Principal = Depends(require(P.MISSION_VIEW_ALL, P.MISSION_VIEW_OWN)),
) -> MissionWithTimeline:
    """The mission with every event that happened to it, oldest first."""
    with log_context(mission_id=str(mission_id)):
        found = await mission_ops(request).get(caller(principal, request), mission_id)
        if found is None:
            raise _not_found(mission_id)
        mission, events = found
        await audit_passenger_read(request, principal, [mission])
        return with_timeline(mission, events)


@router.post(
    "/missions/{mission_id}/cancel",
    response_model=MissionPublic,
    summary="Cancel a mission",
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422),
)
async def cancel_mission(
    mission_id: uuid.UUID,
    request: Request,
    body: Annotated[CancelRequest | None, Body()] = None,
    principal: Principal = Depends(require(P.MISSION_CANCEL_ANY, P.MISSION_CANCEL_OWN)),
) -> MissionPublic:
    """Cancel a mission that is not final yet; 409 when it already is.

    Roles with ``mission_cancel_own`` only may cancel the missions they created; one they
    can see but did not create answers 403.
    """
    reason = body.reason if body is not None else None
    with log_context(mission_id=str(mission_id)):
        outcome = await mission_ops(request).cancel(
            caller(principal, request), mission_id, reason=reason
        )
        return _changed(outcome, principal)


@router.post(
    "/missions/{mission_id}/priority",
    response_model=MissionPublic,
    summary="Change a mission's priority",
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422),
)
async def change_priority(
    mission_id: uuid.UUID,
    body: PriorityChange,
    request: Request,
    principal: Principal = Depends(require(P.MISSION_PRIORITIZE)),
) -> MissionPublic:
    """Set the priority of a mission that is not final; setting the current one is a no-op."""
    with log_context(mission_id=str(mission_id)):
        outcome = await mission_ops(request).prioritize(
            caller(principal, request), mission_id, body.priority, reason=body.reason
        )
        return _changed(outcome, principal)

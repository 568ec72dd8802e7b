"""Mission endpoints under ``/v1``: create, list, get with timeline, cancel, prioritise.

Who may do what (``dispatcher.auth.roles``): creating needs ``mission_create``; seeing
needs ``mission_view_all`` (every mission of the facility) or ``mission_view_own`` (the
caller's own only); cancelling needs ``mission_cancel_any`` or ``mission_cancel_own``;
changing priority needs ``mission_prioritize``. A mission of another facility, or another
caller's mission for an own-only role, answers 404 as if it did not exist.

Handlers stay thin: input shapes are :mod:`dispatcher.missions.models`, resolution is
:mod:`dispatcher.missions.domain`, every SQL statement is in :mod:`dispatcher.missions.store`.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import structlog
from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response

from dispatcher.api.deps import Principal, client_source, get_services, record_audit, require
from dispatcher.api.passenger_reads import audit_passenger_read
from dispatcher.api.problems import (
    CONFLICT,
    FORBIDDEN,
    NOT_FOUND,
    VALIDATION,
    ProblemError,
    problem_responses,
)
from dispatcher.auth.roles import Permission
from dispatcher.config import FacilitySettings, Settings
from dispatcher.logs import log_context
from dispatcher.missions.domain import (
    Actor,
    Cursor,
    Scope,
    build_draft,
    resolve_facility,
    to_public,
    with_timeline,
)
from dispatcher.missions.errors import (
    IdempotencyConflict,
    InvalidCursor,
    InvalidMission,
    MissionNotFound,
    VersionConflict,
    WrongVehicle,
)
from dispatcher.missions.lifecycle import IllegalTransition, MissionEvent, MissionStatus, Priority
from dispatcher.missions.models import (
    CancelRequest,
    MissionCreate,
    MissionPage,
    MissionPublic,
    MissionWithTimeline,
    PriorityChange,
)
from dispatcher.missions.store import MAX_PAGE, MissionStore

log = structlog.get_logger(__name__)

router = APIRouter(tags=["missions"])

P = Permission

#: Idempotency keys: printable ASCII without spaces (UUIDs, ULIDs, client counters...).
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"


# Helpers -------------------------------------------------------------------------------


def _store(request: Request) -> MissionStore:
    return MissionStore(get_services(request).pool)


def _actor(principal: Principal, request: Request) -> Actor:
    return Actor.api(
        principal.subject, principal.token_id, principal.role.value, client_source(request)
    )


def _view_scope(principal: Principal) -> Scope:
    """Missions the principal may see: its facility; only its own without view_all."""
    own = None if principal.can(P.MISSION_VIEW_ALL) else principal.subject
    return Scope(facility_id=principal.facility_id, created_by=own)


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


def _conflict(exc: IllegalTransition | VersionConflict | WrongVehicle) -> ProblemError:
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
    return ProblemError(409, "Wrong vehicle", str(exc), type=CONFLICT)


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


def _own_facility(settings: Settings, principal: Principal) -> FacilitySettings | None:
    facilities = settings.effective_facilities
    if principal.facility_id is None:
        return settings.default_facility
    return next((f for f in facilities if f.id == principal.facility_id), None)


async def _transition(
    request: Request,
    principal: Principal,
    mission_id: uuid.UUID,
    event: MissionEvent,
    *,
    scope: Scope,
    priority: Priority | None = None,
    reason: str | None = None,
) -> MissionPublic:
    try:
        result = await _store(request).transition(
            mission_id,
            event,
            actor=_actor(principal, request),
            scope=scope,
            priority=priority,
            reason=reason,
        )
    except MissionNotFound as exc:
        raise _not_found(mission_id) from exc
    except (IllegalTransition, VersionConflict, WrongVehicle) as exc:
        raise _conflict(exc) from exc
    return to_public(result.mission)


# Routes --------------------------------------------------------------------------------


@router.post(
    "/missions",
    status_code=201,
    response_model=MissionPublic,
    summary="Request a transport",
    responses={
        200: {"model": MissionPublic, "description": "Replay of an idempotent request"},
        **problem_responses(400, 401, 403, 409, 413, 422),
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
    settings = services.settings
    try:
        facility = resolve_facility(
            settings.effective_facilities, body.facility, _own_facility(settings, principal)
        )
    except InvalidMission as exc:
        raise _invalid(exc) from exc
    if not principal.sees_facility(facility.id):
        await record_audit(
            request,
            principal,
            action="mission.create",
            resource_type="mission",
            resource_id=None,
            success=False,
            reason="other_facility",
            details={"facility": facility.key},
        )
        raise ProblemError(
            403,
            "Forbidden",
            f"This token may not create missions in facility {facility.key!r}.",
            type=FORBIDDEN,
        )
    try:
        draft = build_draft(
            body, facility, created_by=principal.subject, idempotency_key=idempotency_key
        )
        result = await _store(request).create(draft, _actor(principal, request))
    except InvalidMission as exc:
        raise _invalid(exc) from exc
    except IdempotencyConflict as exc:
        raise ProblemError(
            409,
            "Idempotency key reused",
            "This Idempotency-Key was used before with a different request body; "
            "use a new key for a new request.",
            type=CONFLICT,
            extra={"mission_id": str(exc.mission_id)},
        ) from exc
    mission = result.mission
    response.status_code = 201 if result.created else 200
    response.headers["Location"] = _mission_path(request, mission.id)
    if not result.created:
        response.headers["Idempotent-Replayed"] = "true"
    return to_public(mission)


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
    page = await _store(request).list_missions(
        _view_scope(principal),
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
        found = await _store(request).get_with_timeline(mission_id, _view_scope(principal))
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
        may_cancel_any = principal.can(P.MISSION_CANCEL_ANY)
        if not may_cancel_any:
            seen = await _store(request).get(mission_id, _view_scope(principal))
            if seen is not None and seen.created_by != principal.subject:
                await record_audit(
                    request,
                    principal,
                    action="mission.cancel",
                    resource_type="mission",
                    resource_id=str(mission_id),
                    success=False,
                    reason="not_owner",
                    facility_id=seen.facility_id,
                )
                raise ProblemError(
                    403,
                    "Forbidden",
                    f"Role {principal.role.value!r} may cancel only the missions it created.",
                    type=FORBIDDEN,
                )
        scope = Scope(
            facility_id=principal.facility_id,
            created_by=None if may_cancel_any else principal.subject,
        )
        return await _transition(
            request, principal, mission_id, MissionEvent.CANCELLED, scope=scope, reason=reason
        )


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
        return await _transition(
            request,
            principal,
            mission_id,
            MissionEvent.PRIORITY_CHANGED,
            scope=Scope(facility_id=principal.facility_id),
            priority=body.priority,
            reason=body.reason,
        )

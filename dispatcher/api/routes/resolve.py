"""``/v1/missions/{id}/resolve``: an operator's decision for a mission the dispatch engine
holds (rider on board, vehicle lost). ``GET`` lists the choices allowed now; ``POST``
carries one out (see :mod:`dispatcher.ops.resolve`). Needs ``mission_cancel_any``.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from dispatcher.api.deps import Principal, caller, require, resolve_ops
from dispatcher.api.mission_mapping import to_public
from dispatcher.api.mission_schemas import MissionPublic, Text
from dispatcher.api.problems import CONFLICT, FORBIDDEN, NOT_FOUND, ProblemError, problem_responses
from dispatcher.auth.roles import Permission
from dispatcher.dispatch.recovery import Resolution
from dispatcher.logs import log_context
from dispatcher.ops.mission_audit import MissionRefusal
from dispatcher.ops.missions import MissionRefused
from dispatcher.ops.resolve import NotAllowed, Reassigning

router = APIRouter(tags=["missions"])


class ResolveRequest(BaseModel):
    """Body of ``POST /v1/missions/{id}/resolve``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    choice: Resolution
    reason: Annotated[Text, Field(min_length=1, max_length=500)] | None = None


class ResolveOptions(BaseModel):
    """What an operator may decide for a mission now."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mission_id: uuid.UUID
    status: str
    held: bool
    held_reason: str | None
    allowed: list[Resolution]


class ResolveResult(BaseModel):
    """The mission after the decision; ``reassigning`` when another vehicle is planned."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    choice: Resolution
    reassigning: bool
    mission: MissionPublic


def _options(n: NotAllowed) -> ResolveOptions:
    return ResolveOptions(
        mission_id=n.mission_id,
        status=n.status.value,
        held=n.held_reason is not None,
        held_reason=n.held_reason,
        allowed=list(n.allowed),
    )


def _not_found(mission_id: uuid.UUID) -> ProblemError:
    return ProblemError(404, "Not found", f"No mission {mission_id}.", type=NOT_FOUND)


@router.get(
    "/missions/{mission_id}/resolve",
    response_model=ResolveOptions,
    summary="The decisions an operator may take for a mission now",
    responses=problem_responses(401, 403, 404, 422),
)
async def resolve_options(
    mission_id: uuid.UUID,
    request: Request,
    principal: Principal = Depends(require(Permission.MISSION_CANCEL_ANY)),
) -> ResolveOptions:
    """Whether the mission is held for an operator, why, and the choices allowed."""
    found = await resolve_ops(request).options(caller(principal, request), mission_id)
    if found is None:
        raise _not_found(mission_id)
    return _options(found)


@router.post(
    "/missions/{mission_id}/resolve",
    response_model=ResolveResult,
    summary="Resolve a mission held for an operator (fail, complete, reassign)",
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422),
)
async def resolve_mission(
    mission_id: uuid.UUID,
    body: ResolveRequest,
    request: Request,
    principal: Principal = Depends(require(Permission.MISSION_CANCEL_ANY)),
) -> ResolveResult:
    """Carry out the choice; 409 with the allowed choices when the situation forbids it."""
    with log_context(mission_id=str(mission_id)):
        outcome = await resolve_ops(request).resolve(
            caller(principal, request), mission_id, body.choice, body.reason
        )
    if isinstance(outcome, NotAllowed):
        options = _options(outcome)
        raise ProblemError(
            409,
            "Choice not allowed",
            f"{body.choice.value!r} is not allowed for this mission now.",
            type=CONFLICT,
            extra=options.model_dump(mode="json"),
        )
    if isinstance(outcome, MissionRefused):
        if outcome.reason is MissionRefusal.NOT_FOUND:
            raise _not_found(mission_id)
        if outcome.reason is MissionRefusal.FORBIDDEN:
            raise ProblemError(403, "Forbidden", "May not resolve missions.", type=FORBIDDEN)
        raise ProblemError(409, "Refused", outcome.reason.value, type=CONFLICT)
    if isinstance(outcome, Reassigning):
        return ResolveResult(
            choice=body.choice, reassigning=True, mission=to_public(outcome.mission)
        )
    return ResolveResult(choice=body.choice, reassigning=False, mission=to_public(outcome.mission))

"""``GET /v1/me``: what the presented token is: its role, facility and permissions.

Clients (``fleetd status``) use it to offer only the actions the token may take.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict

from dispatcher.api.deps import Principal, require
from dispatcher.api.problems import problem_responses
from dispatcher.auth.roles import ROLE_PERMISSIONS, Permission

router = APIRouter(tags=["session"])


class Me(BaseModel):
    model_config = ConfigDict(frozen=True)

    subject: str
    role: str
    facility_id: uuid.UUID | None
    permissions: list[str]


@router.get(
    "/me",
    response_model=Me,
    summary="The token's role, facility and permissions",
    responses=problem_responses(401, 403),
)
async def me(principal: Principal = Depends(require(*Permission))) -> Me:
    """Any valid token may ask (every role holds some permission)."""
    return Me(
        subject=principal.subject,
        role=principal.role.value,
        facility_id=principal.facility_id,
        permissions=sorted(p.value for p in ROLE_PERMISSIONS[principal.role]),
    )

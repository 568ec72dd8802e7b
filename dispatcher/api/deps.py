"""FastAPI dependencies: services, the authenticated :class:`Principal`, and audit helpers.

Routes declare what they need with ``require``::

    @router.post("/missions")
    async def create_mission(
        body: MissionCreate,
        request: Request,
        principal: Principal = Depends(require(Permission.MISSION_CREATE)),
    ) -> MissionPublic: ...

``require(a, b)`` passes when the principal has *any* of the permissions. A missing,
unknown, expired or revoked token gets 401 (with ``WWW-Authenticate: Bearer``), a role
without the permission 403; both are problem documents and both write an ``auth.denied``
audit row. Facility isolation is the route's job: check ``principal.sees_facility(...)``
and answer 404 (not 403) for another facility's resources, so their existence is not
revealed.

For audit rows of mutations, build the actor fields with :func:`audit_fields`::

    async with services.pool.acquire() as conn, conn.transaction():
        ...  # the change
        await append_audit(conn, AuditEntry(
            action="mission.cancel", resource_type="mission", resource_id=str(mission_id),
            success=True, details={"old": {"status": old}, "new": {"status": "cancelled"}},
            **audit_fields(principal, request, facility_id=mission.facility_id),
        ))

and :func:`record_audit` for refused mutations (the transaction rolled back) or actions
that change nothing in Postgres (vehicle commands).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypedDict

import structlog
from fastapi import Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from fastapi.security.utils import get_authorization_scheme_param
from prometheus_client import Counter
from starlette.types import Scope

from dispatcher.api.problems import FORBIDDEN, UNAUTHORIZED, ProblemError
from dispatcher.audit.log import AuditEntry, write_audit
from dispatcher.auth.principal import Principal
from dispatcher.auth.roles import Permission
from dispatcher.auth.tokens import DenyReason, TokenCache, lookup
from dispatcher.services import Services

__all__ = [
    "AuditActor",
    "Principal",
    "audit_fields",
    "client_source",
    "get_services",
    "get_token_cache",
    "record_audit",
    "require",
    "route_template",
]

log = structlog.get_logger(__name__)

AUTH_DENIED = Counter(
    "fleetd_api_auth_denied_total",
    "API calls refused by authentication (401) or authorisation (403), by reason.",
    ["reason"],
)

#: The bearer security scheme as the OpenAPI document names and describes it.
TOKEN_SCHEME = "token"
TOKEN_DESCRIPTION = "An API token from `fleetd token create` (`Authorization: Bearer fltd_...`)."


def get_services(request: Request) -> Services:
    """The daemon's :class:`Services`, set by ``create_app``."""
    services: Services = request.app.state.services
    return services


def get_token_cache(request: Request) -> TokenCache:
    """The app's token cache (pass it to ``revoke_token`` for an immediate revocation)."""
    cache: TokenCache = request.app.state.token_cache
    return cache


def client_source(request: Request) -> str | None:
    """The client address recorded as the audit ``source``.

    Behind a reverse proxy, run uvicorn with ``proxy_headers`` and ``forwarded_allow_ips``
    so this is the real client rather than the proxy.
    """
    return request.client.host if request.client is not None else None


class AuditActor(TypedDict):
    """The who/where fields of an :class:`AuditEntry`, from :func:`audit_fields`."""

    actor_token_id: uuid.UUID
    actor_role: str
    source: str | None
    facility_id: uuid.UUID | None


def audit_fields(
    principal: Principal, request: Request, *, facility_id: uuid.UUID | None = None
) -> AuditActor:
    """Actor fields for ``AuditEntry(**audit_fields(...), action=..., ...)``.

    ``facility_id`` should be the affected resource's facility; it defaults to the
    principal's (None for an admin token).
    """
    return AuditActor(
        actor_token_id=principal.token_id,
        actor_role=principal.role.value,
        source=client_source(request),
        facility_id=facility_id if facility_id is not None else principal.facility_id,
    )


async def record_audit(
    request: Request,
    principal: Principal,
    *,
    action: str,
    resource_type: str,
    resource_id: str | None,
    success: bool,
    details: Mapping[str, Any] | None = None,
    reason: str | None = None,
    facility_id: uuid.UUID | None = None,
) -> int:
    """Write one audit row in a transaction of its own and return its id."""
    entry = AuditEntry(
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        success=success,
        details=dict(details or {}),
        reason=reason,
        **audit_fields(principal, request, facility_id=facility_id),
    )
    return await write_audit(get_services(request).pool, entry)


def route_template(scope: Scope) -> str | None:
    """The full path template of the matched route (``/v1/vehicles/{vehicle_id}``), or None.

    FastAPI >= 0.16x keeps included routers' routes unprefixed in ``scope["route"]``; the
    full template is in its effective route context. Where that is missing, the prefix is
    recovered from the request path with the route's own pattern.
    """
    context = scope.get("fastapi", {}).get("effective_route_context")
    full = getattr(context, "path_format", None)
    if isinstance(full, str) and full:
        return full
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(template, str):
        return None
    regex = getattr(route, "path_regex", None)
    path = scope.get("path", "")
    if regex is not None and isinstance(path, str):
        unanchored = re.compile(regex.pattern.removeprefix("^"))
        for match in unanchored.finditer(path):
            if match.end() == len(path):
                return path[: match.start()] + template
    return template


def _route_label(request: Request) -> str:
    return f"{request.method} {route_template(request.scope) or request.url.path}"


async def _audit_denied(
    request: Request,
    *,
    reason: str,
    required: frozenset[Permission],
    token_id: uuid.UUID | None = None,
    principal: Principal | None = None,
) -> None:
    AUTH_DENIED.labels(reason).inc()
    entry = AuditEntry(
        action="auth.denied",
        resource_type="route",
        resource_id=_route_label(request),
        success=False,
        reason=reason,
        facility_id=principal.facility_id if principal else None,
        actor_token_id=principal.token_id if principal else token_id,
        actor_role=principal.role.value if principal else None,
        source=client_source(request),
        details={"method": request.method, "path": request.url.path, "required": sorted(required)},
    )
    log.info(
        "auth.denied",
        reason=reason,
        route=entry.resource_id,
        token_id=str(entry.actor_token_id) if entry.actor_token_id else None,
        source=entry.source,
    )
    try:
        await write_audit(get_services(request).pool, entry)
    except Exception:  # the refusal stands even when it cannot be recorded
        log.exception("audit.write_failed", action=entry.action, reason=reason)


def _unauthorized(reason: DenyReason) -> ProblemError:
    if reason in (DenyReason.MISSING,):
        detail = "This endpoint needs an API token: send 'Authorization: Bearer <token>'."
        challenge = 'Bearer realm="fleetd"'
    else:
        detail = "The API token is invalid, expired or revoked."
        challenge = 'Bearer realm="fleetd", error="invalid_token"'
    return ProblemError(
        401, "Unauthorized", detail, type=UNAUTHORIZED, headers={"WWW-Authenticate": challenge}
    )


def require(*permissions: Permission) -> Callable[..., Awaitable[Principal]]:
    """Dependency factory: the caller's :class:`Principal` if it holds any of ``permissions``.

    Answers 401 / 403 problem documents otherwise, each audited as ``auth.denied``.
    The principal is also left in ``request.state.principal``.
    """
    if not permissions:
        raise ValueError("require() needs at least one permission")
    return _Authorize(frozenset(Permission(p) for p in permissions))


class _Authorize(SecurityBase):
    """The dependency :func:`require` returns: reads the bearer token, authenticates, authorises.

    A security scheme itself (``HTTPBearer``'s OpenAPI model and name), rather than a
    function depending on ``Security(HTTPBearer(...))``: the OpenAPI document is the same,
    and FastAPI resolves one dependency less per request (each level re-reads parameters,
    cache keys and exit stacks), which was about 5% of the CPU of a ``GET``.
    """

    def __init__(self, needed: frozenset[Permission]) -> None:
        self.model = HTTPBearerModel(description=TOKEN_DESCRIPTION)
        self.scheme_name = TOKEN_SCHEME
        self.needed = needed

    async def __call__(self, request: Request) -> Principal:
        needed = self.needed
        authorization = request.headers.get("authorization")
        scheme, secret = get_authorization_scheme_param(authorization)
        if not (authorization and scheme and secret) or scheme.lower() != "bearer":
            reason = DenyReason.MALFORMED if authorization else DenyReason.MISSING
            await _audit_denied(request, reason=reason.value, required=needed)
            raise _unauthorized(reason)
        result = await lookup(get_services(request).pool, secret, cache=get_token_cache(request))
        principal = result.principal
        if principal is None:
            reason = result.reason or DenyReason.UNKNOWN
            await _audit_denied(
                request, reason=reason.value, required=needed, token_id=result.token_id
            )
            raise _unauthorized(reason)
        if not any(principal.can(p) for p in needed):
            await _audit_denied(request, reason="forbidden", required=needed, principal=principal)
            raise ProblemError(
                403,
                "Forbidden",
                f"Role {principal.role.value!r} may not do this "
                f"(needs one of: {', '.join(sorted(needed))}).",
                type=FORBIDDEN,
            )
        request.state.principal = principal
        return principal

"""FastAPI dependencies: services, the authenticated :class:`Principal`, and the operations.

Routes declare what they need with ``require``::

    @router.post("/missions")
    async def create_mission(
        body: MissionCreate,
        request: Request,
        principal: Principal = Depends(require(Permission.MISSION_CREATE)),
    ) -> MissionPublic: ...

``require(a, b)`` passes when the principal has *any* of the permissions. A missing,
unknown, expired or revoked token gets 401 (with ``WWW-Authenticate: Bearer``), a role
without the permission 403; both are problem documents and both are audited as
``auth.denied`` (through :class:`dispatcher.ops.access.AccessOps`, tallied per source,
reason and interval by :class:`dispatcher.ops.denials.DenialLog`).

A route then calls one operation of :mod:`dispatcher.ops` with :func:`caller` (the
principal and the client address) and turns its outcome into a response. Facility
isolation, permissions in detail and every audit row are the operation's business.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from fastapi.security.utils import get_authorization_scheme_param
from prometheus_client import Counter
from starlette.types import Scope

from dispatcher.api.problems import FORBIDDEN, UNAUTHORIZED, ProblemError
from dispatcher.auth.principal import Principal
from dispatcher.auth.roles import Permission
from dispatcher.auth.tokens import DenyReason, KnownTokens, TokenCache, hash_token, lookup
from dispatcher.ops.access import AccessOps, Denial
from dispatcher.ops.caller import Caller
from dispatcher.ops.charge_routing import ChargeRoutingCommander
from dispatcher.ops.denials import DenialLog
from dispatcher.ops.fleet_access import Commander
from dispatcher.ops.missions import MissionOps
from dispatcher.ops.resolve import ResolveOps
from dispatcher.ops.vehicles import VehicleOps
from dispatcher.ops.zone_stop import ZoneStopOps
from dispatcher.ops.zones import ZoneOps
from dispatcher.services import Services

__all__ = [
    "Principal",
    "access_ops",
    "bearer_secret",
    "caller",
    "client_source",
    "get_services",
    "get_token_cache",
    "mission_ops",
    "require",
    "resolve_ops",
    "route_template",
    "vehicle_ops",
    "zone_ops",
    "zone_stop_ops",
]


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


def bearer_secret(request: Request) -> str:
    """The bearer token of an authenticated request (what :func:`require` checked)."""
    _, secret = get_authorization_scheme_param(request.headers.get("authorization"))
    return secret


def caller(principal: Principal, request: Request) -> Caller:
    """The operations' :class:`Caller` for an authenticated request."""
    return Caller.api(principal, client_source(request))


def mission_ops(request: Request) -> MissionOps:
    services = get_services(request)
    return MissionOps(services.pool, services.durable, on_created=services.mission_created)


def resolve_ops(request: Request) -> ResolveOps:
    services = get_services(request)
    return ResolveOps(services.pool, services.dispatch, services.fleet)


def zone_ops(request: Request) -> ZoneOps:
    services = get_services(request)
    return ZoneOps(services.pool, on_change=services.zones_changed)


def vehicle_ops(request: Request) -> VehicleOps:
    services = get_services(request)
    commander: Commander | None = services.commander
    if commander is not None and services.dispatch is not None:
        commander = ChargeRoutingCommander(commander, services.dispatch)
    return VehicleOps(services.pool, services.fleet, commander)


def zone_stop_ops(request: Request) -> ZoneStopOps:
    services = get_services(request)
    return ZoneStopOps(services.pool, services.fleet, services.commander)


def access_ops(request: Request) -> AccessOps:
    denials: DenialLog | None = getattr(request.app.state, "denials", None)
    return AccessOps(get_services(request).pool, denials)


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


async def _deny(
    request: Request,
    *,
    reason: str,
    required: frozenset[Permission],
    token_id: uuid.UUID | None = None,
    principal: Principal | None = None,
) -> None:
    AUTH_DENIED.labels(reason).inc()
    source = client_source(request)
    denial = Denial(
        reason=reason,
        route=_route_label(request),
        method=request.method,
        path=request.url.path,
        required=required,
        source=source,
        token_id=token_id,
        caller=Caller.api(principal, source) if principal is not None else None,
    )
    await access_ops(request).denied(denial)


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
            await _deny(request, reason=reason.value, required=needed)
            raise _unauthorized(reason)
        result = await lookup(get_services(request).pool, secret, cache=get_token_cache(request))
        principal = result.principal
        known: KnownTokens = request.app.state.known_tokens
        if principal is None:
            known.forget(hash_token(secret))
            reason = result.reason or DenyReason.UNKNOWN
            await _deny(request, reason=reason.value, required=needed, token_id=result.token_id)
            raise _unauthorized(reason)
        if not any(principal.can(p) for p in needed):
            await _deny(request, reason="forbidden", required=needed, principal=principal)
            raise ProblemError(
                403,
                "Forbidden",
                f"Role {principal.role.value!r} may not do this "
                f"(needs one of: {', '.join(sorted(needed))}).",
                type=FORBIDDEN,
            )
        known.remember(hash_token(secret))
        request.state.principal = principal
        return principal

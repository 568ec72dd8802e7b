"""The HTTP control API: :func:`create_app` builds the FastAPI application.

The daemon serves it with uvicorn on its own event loop (the supervisor owns the server);
routes reach the daemon's handles through ``request.app.state.services``
(:func:`dispatcher.api.deps.get_services`).

Layers, outermost first:

1. :class:`RequestMiddleware`: request id (``X-Request-ID``), the ``api.request`` access
   log line, the ``fleetd_http_request_duration_seconds`` histogram, the last-resort
   500 problem document for unexpected exceptions (logged, nothing internal leaked), and
   the 503 for requests beyond ``api.max_concurrent_requests`` (load shedding);
2. :class:`~dispatcher.api.problems.BodyLimitMiddleware`: 413 beyond ``api.max_body_bytes``;
3. FastAPI's exception handlers turning errors into problem documents;
4. the routers: :data:`V1_ROUTERS` under ``/v1``, then health (no prefix, no auth).
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import time
import uuid
from collections.abc import Callable

import structlog
from fastapi import APIRouter, Depends, FastAPI
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dispatcher.api.deps import route_template
from dispatcher.api.openapi_links import install_links
from dispatcher.api.problems import (
    INTERNAL,
    PROBLEM_JSON,
    UNAVAILABLE,
    BodyLimitMiddleware,
    install_problem_handlers,
    problem_body,
)
from dispatcher.api.routes import (
    alerts,
    events,
    facility_layout,
    fleet,
    health,
    missions,
    resolve,
    session,
    vehicle_commands,
    zones,
)
from dispatcher.api.text_guard import refuse_unstorable_text
from dispatcher.auth.tokens import KnownTokens, TokenCache, hash_token, looks_like_secret
from dispatcher.ops.denials import DenialLog
from dispatcher.ops.durable import UNREACHABLE
from dispatcher.ops.passenger_reads import PassengerReadLog
from dispatcher.services import Services

log = structlog.get_logger(__name__)

#: Routers mounted under ``/v1``, busiest first. Add new route modules here.
#:
#: The order is the matching order: FastAPI tries every route of every router included
#: before the one that matches, twice per request (to match, then to dispatch), at a few
#: microseconds a try, which came to an eighth of the CPU of ``GET /v1/missions/{id}``
#: with missions fourth. No two routers share a path, so the order changes nothing else;
#: the health router (probes, a few calls a minute) is included after these. The
#: documentation groups operations by tag in the order of :data:`OPENAPI_TAGS`.
V1_ROUTERS: tuple[APIRouter, ...] = (
    missions.router,
    fleet.router,
    vehicle_commands.router,
    zones.router,
    events.router,
    resolve.router,
    alerts.router,
    facility_layout.router,
    session.router,
)

#: Sections of the OpenAPI document (``tags``), in the order the interactive docs show them.
OPENAPI_TAGS: list[dict[str, str]] = [
    {"name": "health"},
    {"name": "fleet"},
    {"name": "vehicle commands"},
    {"name": "zones"},
    {"name": "missions"},
    {"name": "events"},
    {"name": "alerts"},
    {"name": "session"},
]

#: Seconds an authentication result is cached (revocation from another process takes
#: effect within this delay; see dispatcher/auth/tokens.py).
TOKEN_CACHE_TTL_S = 5.0

#: Routes logged at debug level (probes and scrapes would drown the access log).
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})

#: Paths outside the bound on concurrent requests: probes and scrapes must answer when the
#: daemon is busiest, and an event stream stays open by design (it would hold a slot for
#: hours). None of them queues for the database pool behind the others.
UNBOUNDED_PATHS = QUIET_ROUTES | {"/v1/events"}

REQUEST_SECONDS = Histogram(
    "fleetd_http_request_duration_seconds",
    "HTTP API request duration, by method, route template and status code.",
    ["method", "route", "status"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
REQUESTS_SHED = Counter(
    "fleetd_http_requests_shed_total",
    "HTTP API requests refused with 503 because api.max_concurrent_requests were in progress.",
)
UNREACHABLE_ANSWERS = Counter(
    "fleetd_http_dependency_unreachable_total",
    "HTTP API requests answered 503 because PostgreSQL could not be reached under them.",
)

#: Route label (histogram, access log) of a request refused by load shedding.
SHED_ROUTE = "(shed)"
#: Seconds a shed client is asked to wait (``Retry-After``).
SHED_RETRY_AFTER_S = 1

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

DESCRIPTION = """\
Control API of fleetd: fleet state, missions, vehicle commands.

Authenticate with `Authorization: Bearer <token>` (tokens come from `fleetd token create`).
Errors are RFC 9457 problem documents (`application/problem+json`).
Lists are paginated by cursor: pass `next_cursor` back as `cursor`.
"""


def _version() -> str:
    try:
        return importlib.metadata.version("fleetd")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


def create_app(services: Services) -> FastAPI:
    """The FastAPI application over ``services`` (OpenAPI at /openapi.json, docs at /docs)."""
    app = FastAPI(
        title="fleetd",
        version=_version(),
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        # Off in production unless asked for (api.docs): it advertises every route.
        docs_url="/docs" if services.settings.docs_enabled else None,
        redoc_url=None,
        openapi_tags=OPENAPI_TAGS,
    )
    app.state.services = services
    app.state.token_cache = TokenCache(ttl_s=TOKEN_CACHE_TTL_S)
    app.state.known_tokens = KnownTokens()
    api = services.settings.api
    # The daemon runs its task (interval summaries) and closes it (the last summary).
    app.state.denials = DenialLog(services.pool, interval_s=api.denied_audit_interval_s)
    # The daemon runs its task (batched read rows) and closes it (the last batch).
    app.state.passenger_reads = PassengerReadLog(services.pool)
    install_problem_handlers(app)
    # Every /v1 text input is checked for what PostgreSQL cannot store before the route.
    guard = [Depends(refuse_unstorable_text)]
    for router in V1_ROUTERS:
        app.include_router(router, prefix="/v1", dependencies=guard)
    app.include_router(health.router)
    install_links(app)
    # add_middleware wraps: the last added runs first (outermost).
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=api.max_body_bytes)
    app.add_middleware(
        RequestMiddleware,
        max_concurrent=api.max_concurrent_requests,
        max_unverified=api.max_unverified_requests,
        known_tokens=app.state.known_tokens,
    )
    return app


class _Exchange:
    """One request's answer as it goes out: its id stamped on the response headers, and
    the status sent (0 until the response began)."""

    __slots__ = ("_header", "request_id", "send", "status")

    def __init__(self, request_id: str, send: Send) -> None:
        self.request_id = request_id
        self.send = send
        self.status = 0
        self._header = (b"x-request-id", request_id.encode("latin-1"))

    async def send_with_id(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            message["headers"] = [*message.get("headers", ()), self._header]
        await self.send(message)


class RequestMiddleware:
    """Request id, access log, latency histogram, the last-resort 500, and load shedding.

    Load shedding: with ``max_concurrent`` requests in progress (``None``: no bound),
    the next one is answered at once with a 503 problem document and ``Retry-After``,
    counted in ``fleetd_http_requests_shed_total``, without reaching the routes. Past
    that point an overloaded daemon would only queue more work (for the event loop and
    the database pool) than it can finish before its clients give up: each admitted
    request makes every other one slower. :data:`UNBOUNDED_PATHS` are not counted.

    Per-request costs matter here (every API call runs through this on the daemon's one
    event loop), hence log context bound by token and histogram children kept per label set.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_concurrent: int | None = None,
        *,
        max_unverified: int | None = None,
        known_tokens: KnownTokens | None = None,
    ) -> None:
        self.app = app
        self.max_concurrent = max_concurrent
        self.max_unverified = max_unverified
        self.known_tokens = known_tokens
        #: Requests in progress that count against ``max_concurrent``.
        self.in_flight = 0
        #: Requests in progress that count against ``max_unverified``.
        self.unverified_in_flight = 0
        # prometheus_client's labels() validates and locks on every call; the children
        # it returns are stable, so each label set is looked up once.
        self._observers: dict[tuple[str, str, str], Callable[[float], None]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(_request_id(scope), send)
        scope.setdefault("state", {})["request_id"] = exchange.request_id
        started = time.perf_counter()
        lane = self._lane(scope)
        limit = self.max_unverified if lane == "unverified" else self.max_concurrent
        counted = limit is not None and scope["path"] not in UNBOUNDED_PATHS
        shed = counted and limit is not None and self._busy(lane) >= limit
        if counted and not shed:
            self._enter(lane, 1)
        tokens = structlog.contextvars.bind_contextvars(request_id=exchange.request_id)
        try:
            if shed:
                REQUESTS_SHED.inc()
                await _send_503(scope, exchange.send_with_id, exchange.request_id, limit)
                return
            await self._forward(scope, receive, exchange)
        finally:
            if counted and not shed:
                self._enter(lane, -1)
            self._record(scope, exchange, shed, time.perf_counter() - started)
            structlog.contextvars.reset_contextvars(**tokens)

    async def _forward(self, scope: Scope, receive: Receive, exchange: _Exchange) -> None:
        """The request to the application; a failure under it answered 503 or 500."""
        try:
            await self.app(scope, receive, exchange.send_with_id)
        except UNREACHABLE as exc:
            # PostgreSQL went away under a request the spool does not cover (a token
            # look-up that missed the cache, a read): the client may retry, so say
            # 503, not 500.
            UNREACHABLE_ANSWERS.inc()
            log.warning(
                "api.dependency_unreachable",
                method=scope["method"],
                path=scope["path"],
                error=type(exc).__name__,
            )
            if exchange.status:
                raise
            await _send_503(
                scope,
                exchange.send_with_id,
                exchange.request_id,
                detail=(
                    f"The database is unreachable for the moment; retry in {SHED_RETRY_AFTER_S} s."
                ),
            )
        except Exception:
            log.exception("api.unhandled_error", method=scope["method"], path=scope["path"])
            if exchange.status:
                raise  # the response has begun; nothing sane left to send
            await _send_500(scope, exchange.send_with_id, exchange.request_id)

    def _record(self, scope: Scope, exchange: _Exchange, shed: bool, elapsed: float) -> None:
        """The request's duration metric and its log line."""
        route = SHED_ROUTE if shed else route_template(scope) or "(unmatched)"
        code = str(exchange.status) if exchange.status else "499"  # the client went away
        self._observer(scope["method"], route, code)(elapsed)
        emit = log.debug if route in QUIET_ROUTES else log.info
        emit(
            "api.request",
            method=scope["method"],
            route=route,
            path=scope["path"],
            status=int(code),
            ms=round(elapsed * 1000, 3),
            request_id=exchange.request_id,
        )

    def _lane(self, scope: Scope) -> str:
        """``verified`` for a request whose bearer token authenticated recently (or when
        lanes are off), else ``unverified``: anonymous and bogus requests queue apart."""
        if self.known_tokens is None or self.max_unverified is None:
            return "verified"
        for key, value in scope.get("headers", ()):
            if key == b"authorization":
                scheme, _, secret = bytes(value).decode("latin-1").partition(" ")
                secret = secret.strip()
                known = (
                    scheme.lower() == "bearer"
                    and looks_like_secret(secret)
                    and self.known_tokens.knows(hash_token(secret))
                )
                return "verified" if known else "unverified"
        return "unverified"

    def _busy(self, lane: str) -> int:
        return self.unverified_in_flight if lane == "unverified" else self.in_flight

    def _enter(self, lane: str, step: int) -> None:
        if lane == "unverified":
            self.unverified_in_flight += step
        else:
            self.in_flight += step

    def _observer(self, method: str, route: str, code: str) -> Callable[[float], None]:
        key = (method, route, code)
        observe = self._observers.get(key)
        if observe is None:
            observe = self._observers[key] = REQUEST_SECONDS.labels(method, route, code).observe
        return observe


def _request_id(scope: Scope) -> str:
    for key, value in scope.get("headers", ()):
        if key == b"x-request-id":
            candidate: str = bytes(value).decode("latin-1")
            if _REQUEST_ID_RE.match(candidate):
                return candidate
            break
    return uuid.uuid4().hex[:16]


async def _send_503(
    scope: Scope,
    send: Send,
    request_id: str,
    limit: int | None = None,
    *,
    detail: str | None = None,
) -> None:
    body = problem_body(
        status=503,
        title="Service Unavailable",
        detail=detail
        or (
            f"fleetd is at its limit of {limit} requests in progress; "
            f"retry in {SHED_RETRY_AFTER_S} s."
        ),
        type=UNAVAILABLE,
        instance=scope.get("path"),
        extra={"request_id": request_id},
    )
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(payload)).encode()),
                (b"retry-after", str(SHED_RETRY_AFTER_S).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def _send_500(scope: Scope, send: Send, request_id: str) -> None:
    body = problem_body(
        status=500,
        title="Internal Server Error",
        detail=f"An unexpected error occurred; quote request id {request_id} when reporting it.",
        type=INTERNAL,
        instance=scope.get("path"),
        extra={"request_id": request_id},
    )
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})

"""The HTTP control API: :func:`create_app` builds the FastAPI application.

The daemon serves it with uvicorn on its own event loop (the supervisor owns the server);
routes reach the daemon's handles through ``request.app.state.services``
(:func:`dispatcher.api.deps.get_services`).

Layers, outermost first:

1. :class:`RequestMiddleware`: request id (``X-Request-ID``), the ``api.request`` access
   log line, the ``fleetd_http_request_duration_seconds`` histogram, and the last-resort
   500 problem document for unexpected exceptions (logged, nothing internal leaked);
2. :class:`~dispatcher.api.problems.BodyLimitMiddleware`: 413 beyond ``api.max_body_bytes``;
3. FastAPI's exception handlers turning errors into problem documents;
4. the routers: health (no prefix, no auth) and :data:`V1_ROUTERS` under ``/v1``.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import time
import uuid

import structlog
from fastapi import APIRouter, FastAPI
from prometheus_client import Histogram
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dispatcher.api.deps import route_template
from dispatcher.api.problems import (
    INTERNAL,
    PROBLEM_JSON,
    BodyLimitMiddleware,
    install_problem_handlers,
    problem_body,
)
from dispatcher.api.routes import events, fleet, health, missions, vehicle_commands, zones
from dispatcher.auth.tokens import TokenCache
from dispatcher.services import Services

log = structlog.get_logger(__name__)

#: Routers mounted under ``/v1``, in the order the OpenAPI document lists them.
#: Add new route modules here (vehicle commands, zones, events, ...).
V1_ROUTERS: tuple[APIRouter, ...] = (
    fleet.router,
    vehicle_commands.router,
    zones.router,
    missions.router,
    events.router,
)

#: Seconds an authentication result is cached (revocation from another process takes
#: effect within this delay; see dispatcher/auth/tokens.py).
TOKEN_CACHE_TTL_S = 5.0

#: Routes logged at debug level (probes and scrapes would drown the access log).
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})

REQUEST_SECONDS = Histogram(
    "fleetd_http_request_duration_seconds",
    "HTTP API request duration, by method, route template and status code.",
    ["method", "route", "status"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

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
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.services = services
    app.state.token_cache = TokenCache(ttl_s=TOKEN_CACHE_TTL_S)
    install_problem_handlers(app)
    app.include_router(health.router)
    for router in V1_ROUTERS:
        app.include_router(router, prefix="/v1")
    # add_middleware wraps: the last added runs first (outermost).
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=services.settings.api.max_body_bytes)
    app.add_middleware(RequestMiddleware)
    return app


class RequestMiddleware:
    """Request id, access log, latency histogram and the last-resort 500 for one request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 0
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append("x-request-id", request_id)
            await send(message)

        try:
            with structlog.contextvars.bound_contextvars(request_id=request_id):
                try:
                    await self.app(scope, receive, send_with_id)
                except Exception:
                    log.exception("api.unhandled_error", method=scope["method"], path=scope["path"])
                    if status:
                        raise  # the response has begun; nothing sane left to send
                    await _send_500(scope, send_with_id, request_id)
        finally:
            elapsed = time.perf_counter() - started
            route = route_template(scope) or "(unmatched)"
            code = str(status) if status else "499"  # no response: the client went away
            REQUEST_SECONDS.labels(scope["method"], route, code).observe(elapsed)
            emit = log.debug if route in QUIET_ROUTES else log.info
            emit(
                "api.request",
                method=scope["method"],
                route=route,
                path=scope["path"],
                status=int(code),
                ms=round(elapsed * 1000, 3),
                request_id=request_id,
            )


def _request_id(scope: Scope) -> str:
    for key, value in scope.get("headers", ()):
        if key == b"x-request-id":
            candidate: str = bytes(value).decode("latin-1")
            if _REQUEST_ID_RE.match(candidate):
                return candidate
            break
    return uuid.uuid4().hex[:16]


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

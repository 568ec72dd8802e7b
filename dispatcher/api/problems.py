"""Errors as RFC 9457 problem documents (``application/problem+json``).

Every error the API returns has the shape ``{type, title, status, detail, instance}`` and,
for input errors, ``errors: [{field, message}]`` with ``field`` a dotted path such as
``body.pickup.lat`` or ``query.limit``. Routes raise :class:`ProblemError`; the handlers
installed by :func:`install_problem_handlers` turn FastAPI's own errors (validation, 404,
405, malformed JSON) into the same shape. Unexpected exceptions are handled by the request
middleware in :mod:`dispatcher.api.app` (500, logged, nothing internal in the body).

``type`` is ``about:blank`` for plain HTTP errors, else one of the ``urn:fleetd:problem:*``
URNs below (listed in ``docs/api.md``), so clients can branch on it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger(__name__)

PROBLEM_JSON = "application/problem+json"

# Problem types (stable; clients may branch on them).
BLANK = "about:blank"
VALIDATION = "urn:fleetd:problem:validation"
MALFORMED_JSON = "urn:fleetd:problem:malformed-json"
BODY_TOO_LARGE = "urn:fleetd:problem:body-too-large"
UNAUTHORIZED = "urn:fleetd:problem:unauthorized"
FORBIDDEN = "urn:fleetd:problem:forbidden"
NOT_FOUND = "urn:fleetd:problem:not-found"
CONFLICT = "urn:fleetd:problem:conflict"
TOO_MANY = "urn:fleetd:problem:too-many-requests"
UNAVAILABLE = "urn:fleetd:problem:unavailable"
INTERNAL = "urn:fleetd:problem:internal"


class FieldErrorOut(BaseModel):
    """One invalid input value."""

    field: str = Field(description="Dotted path of the value, e.g. body.pickup.lat")
    message: str


class ProblemOut(BaseModel):
    """An RFC 9457 problem document (OpenAPI description of every error response)."""

    type: str = BLANK
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldErrorOut] | None = None
    request_id: str | None = None


class ProblemError(Exception):
    """Raise from a route (or dependency) to answer with a problem document.

    ``ProblemError(409, "Illegal transition", "mission is completed", type=CONFLICT)``.
    ``errors`` names offending input fields; ``headers`` are added to the response;
    ``extra`` adds extension members (e.g. ``{"current_status": "completed"}``).
    """

    def __init__(
        self,
        status: int,
        title: str | None = None,
        detail: str | None = None,
        *,
        type: str = BLANK,
        errors: Sequence[tuple[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.title = title or _phrase(status)
        self.detail = detail
        self.type = type
        self.errors = list(errors) if errors else None
        self.headers = dict(headers) if headers else None
        self.extra = dict(extra) if extra else None
        super().__init__(f"{status} {self.title}: {detail}" if detail else f"{status} {self.title}")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_body(
    *,
    status: int,
    title: str | None = None,
    detail: str | None = None,
    type: str = BLANK,
    instance: str | None = None,
    errors: Iterable[tuple[str, str]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON object of a problem document."""
    body: dict[str, Any] = {
        "type": type,
        "title": title or _phrase(status),
        "status": status,
    }
    if detail is not None:
        body["detail"] = detail
    if instance is not None:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = [{"field": f, "message": m} for f, m in errors]
    if extra:
        for key, value in extra.items():
            body.setdefault(key, value)
    return body


def problem_response(
    request: Request | None,
    status: int,
    title: str | None = None,
    detail: str | None = None,
    *,
    type: str = BLANK,
    errors: Iterable[tuple[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """A ``JSONResponse`` carrying a problem document; ``instance`` is the request path."""
    more = dict(extra or {})
    if request is not None and (rid := getattr(request.state, "request_id", None)):
        more.setdefault("request_id", rid)
    body = problem_body(
        status=status,
        title=title,
        detail=detail,
        type=type,
        instance=request.url.path if request is not None else None,
        errors=errors,
        extra=more,
    )
    return JSONResponse(
        body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_JSON
    )


def field_path(loc: Sequence[int | str]) -> str:
    """FastAPI/pydantic error location as a dotted path: ``body.stops[0].lat``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(request)"


def _message(err: Mapping[str, Any]) -> str:
    if err.get("type") == "extra_forbidden":
        return "unknown field"
    if err.get("type") == "missing":
        return "field required"
    return str(err.get("msg", "invalid value"))


async def problem_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """:class:`ProblemError` -> its problem document."""
    assert isinstance(exc, ProblemError)
    return problem_response(
        request,
        exc.status,
        exc.title,
        exc.detail,
        type=exc.type,
        errors=exc.errors,
        headers=exc.headers,
        extra=exc.extra,
    )


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Request validation -> 422 naming each field; malformed JSON -> 400."""
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    bad_json = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if bad_json is not None:
        ctx = bad_json.get("ctx") or {}
        loc = bad_json.get("loc", ())
        pos = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
        why = str(ctx.get("error") or bad_json.get("msg") or "invalid JSON")
        where = f" at character {pos}" if pos is not None else ""
        detail = f"The request body is not valid JSON: {why}{where}."
        return problem_response(
            request,
            400,
            "Malformed JSON",
            detail,
            type=MALFORMED_JSON,
            errors=[("body", f"{why}{where}")],
        )
    pairs = [(field_path(tuple(e.get("loc", ()))), _message(e)) for e in errors]
    fields = ", ".join(dict.fromkeys(f for f, _ in pairs))
    return problem_response(
        request,
        422,
        "Invalid request",
        f"{len(pairs)} invalid value(s): {fields}.",
        type=VALIDATION,
        errors=pairs,
    )


async def http_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    """Starlette/FastAPI ``HTTPException`` (404 for unknown paths, 405, ...) -> problem."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.__cause__ is not None:
        # FastAPI turns a body it cannot decode at all (bytes that are not UTF-8, say) into
        # a bare 400 chained to the decoding error: answer it like any other malformed body.
        cause = exc.__cause__
        why = (
            f"not UTF-8 (byte {cause.start})"
            if isinstance(cause, UnicodeDecodeError)
            else type(cause).__name__
        )
        return problem_response(
            request,
            400,
            "Malformed JSON",
            f"The request body is not valid JSON: {why}.",
            type=MALFORMED_JSON,
            errors=[("body", why)],
        )
    phrase = _phrase(exc.status_code)
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else None
    if exc.status_code == 404 and detail is None:
        detail = f"No resource at {request.url.path}."
    elif exc.status_code == 405 and detail is None:
        detail = f"{request.method} is not allowed on {request.url.path}."
    headers = exc.headers
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": allowed_methods(request)}
    return problem_response(
        request,
        exc.status_code,
        phrase,
        detail,
        type=NOT_FOUND if exc.status_code == 404 else BLANK,
        headers=headers,
    )


def allowed_methods(request: Request) -> str:
    """Every method some route serves at the request's path, for a 405's ``Allow``.

    Starlette names only the methods of the first route whose path matches; a path served
    by several routes (``GET`` and ``POST /v1/missions``) needs them all (RFC 9110 15.5.6).
    """
    methods: set[str] = set()
    routes = request.app.router.routes
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        # Included routers are matched as a whole (FastAPI >= 0.16x): try each method.
        if any(route.matches(scope)[0] is Match.FULL for route in routes):
            methods.add(method)
    return ", ".join(sorted(methods))


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def install_problem_handlers(app: FastAPI) -> None:
    """Register the problem-document exception handlers on ``app``."""
    app.add_exception_handler(ProblemError, problem_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_exception_handler)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting problem documents for ``statuses``."""
    return {
        status: {"model": ProblemOut, "description": _phrase(status), "content": {PROBLEM_JSON: {}}}
        for status in statuses
    }


# Body size limit -------------------------------------------------------------------------


class _BodyTooLarge(Exception):
    """Raised from ``receive`` when the streamed body passes the limit."""


class BodyLimitMiddleware:
    """Refuse request bodies larger than ``max_body_bytes`` with a 413 problem document.

    Checks ``Content-Length`` before the app runs, and counts streamed bytes (chunked
    uploads, lying ``Content-Length``) as the app reads them; in the second case whatever
    the app answers is replaced by the 413, provided it has not started answering.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        length = _content_length(scope)
        if length is not None and length > limit:
            await _send_413(scope, send, limit)
            return

        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # the app's answer to the truncated body is replaced by the 413
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded or started:
                raise
        if exceeded and not started:
            await _send_413(scope, send, limit)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_413(scope: Scope, send: Send, limit: int) -> None:
    body = problem_body(
        status=413,
        title="Content Too Large",
        detail=f"The request body exceeds the limit of {limit} bytes.",
        type=BODY_TOO_LARGE,
        instance=scope.get("path"),
    )
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})

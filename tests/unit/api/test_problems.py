"""Every error leaves the API as an RFC 9457 problem document of the documented shape."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from dispatcher.api import app as app_module
from dispatcher.api.app import RequestMiddleware
from dispatcher.api.problems import (
    BODY_TOO_LARGE,
    INTERNAL,
    MALFORMED_JSON,
    PROBLEM_JSON,
    VALIDATION,
    BodyLimitMiddleware,
    ProblemError,
    field_path,
    install_problem_handlers,
)

LIMIT = 1024


class Point(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Trip(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pickup: Point
    dropoff: Point
    stops: list[Point] = []


def build_app() -> FastAPI:
    """The same error layers create_app installs, over a few test routes."""
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/trips")
    async def create_trip(trip: Trip) -> dict[str, Any]:
        return trip.model_dump()

    @app.get("/conflict")
    async def conflict() -> None:
        raise ProblemError(
            409,
            "Illegal transition",
            "mission is completed",
            type="urn:fleetd:problem:illegal-transition",
            extra={"current_status": "completed"},
        )

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("password=hunter2 in /srv/secret.py")

    app.add_middleware(BodyLimitMiddleware, max_body_bytes=LIMIT)
    app.add_middleware(RequestMiddleware)
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["type"], str)
    return body


VALID = {"pickup": {"lat": 1, "lon": 2}, "dropoff": {"lat": 3, "lon": 4}}


class TestValidation:
    async def test_valid_body_passes(self, client: httpx.AsyncClient) -> None:
        r = await client.post("/trips", json=VALID)
        assert r.status_code == 200

    async def test_out_of_range_value_is_named_by_dotted_path(
        self, client: httpx.AsyncClient
    ) -> None:
        r = await client.post("/trips", json={**VALID, "pickup": {"lat": 95, "lon": 2}})
        body = assert_problem(r, 422)
        assert body["type"] == VALIDATION
        assert [e["field"] for e in body["errors"]] == ["body.pickup.lat"]
        assert "body.pickup.lat" in body["detail"]
        assert body["instance"] == "/trips"

    async def test_list_items_are_indexed(self, client: httpx.AsyncClient) -> None:
        r = await client.post("/trips", json={**VALID, "stops": [{"lat": 1, "lon": 1}, {"lat": 1}]})
        body = assert_problem(r, 422)
        assert [e["field"] for e in body["errors"]] == ["body.stops[1].lon"]
        assert body["errors"][0]["message"] == "field required"

    async def test_unknown_field_is_refused(self, client: httpx.AsyncClient) -> None:
        r = await client.post("/trips", json={**VALID, "colour": "red"})
        body = assert_problem(r, 422)
        assert body["errors"] == [{"field": "body.colour", "message": "unknown field"}]

    async def test_wrong_type(self, client: httpx.AsyncClient) -> None:
        r = await client.post("/trips", json={**VALID, "dropoff": {"lat": "north", "lon": 1}})
        body = assert_problem(r, 422)
        assert body["errors"][0]["field"] == "body.dropoff.lat"

    async def test_input_values_are_not_echoed(self, client: httpx.AsyncClient) -> None:
        r = await client.post("/trips", json={**VALID, "colour": "very-secret-value"})
        assert "very-secret-value" not in r.text


class TestMalformedJson:
    async def test_malformed_json_is_400_naming_the_problem(
        self, client: httpx.AsyncClient
    ) -> None:
        r = await client.post(
            "/trips",
            content=b'{"pickup": {"lat": 1,,}',
            headers={"content-type": "application/json"},
        )
        body = assert_problem(r, 400)
        assert body["type"] == MALFORMED_JSON
        assert "not valid JSON" in body["detail"]
        assert "character" in body["detail"]
        assert body["errors"][0]["field"] == "body"


class TestHttpErrors:
    async def test_unknown_path_is_404_problem(self, client: httpx.AsyncClient) -> None:
        body = assert_problem(await client.get("/nowhere"), 404)
        assert body["instance"] == "/nowhere"

    async def test_wrong_method_is_405_problem_with_allow(self, client: httpx.AsyncClient) -> None:
        r = await client.delete("/trips")
        assert_problem(r, 405)
        assert "POST" in r.headers["allow"]

    async def test_problem_error_keeps_type_and_extensions(self, client: httpx.AsyncClient) -> None:
        body = assert_problem(await client.get("/conflict"), 409)
        assert body["type"] == "urn:fleetd:problem:illegal-transition"
        assert body["title"] == "Illegal transition"
        assert body["detail"] == "mission is completed"
        assert body["current_status"] == "completed"


class TestUnexpectedErrors:
    async def test_500_leaks_nothing_and_is_logged(
        self, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(app_module, "log", structlog.get_logger("test"))
        with structlog.testing.capture_logs() as logs:
            r = await client.get("/boom")
        body = assert_problem(r, 500)
        assert body["type"] == INTERNAL
        assert "hunter2" not in r.text
        assert "secret.py" not in r.text
        assert body["request_id"] == r.headers["x-request-id"]
        errors = [e for e in logs if e["event"] == "api.unhandled_error"]
        assert errors
        assert errors[0]["log_level"] == "error"
        access = [e for e in logs if e["event"] == "api.request"]
        assert access[0]["status"] == 500
        assert access[0]["route"] == "/boom"


class TestBodyLimit:
    async def test_content_length_over_limit_is_413(self, client: httpx.AsyncClient) -> None:
        r = await client.post(
            "/trips",
            content=b"x" * (LIMIT + 1),
            headers={"content-type": "application/json"},
        )
        body = assert_problem(r, 413)
        assert body["type"] == BODY_TOO_LARGE
        assert str(LIMIT) in body["detail"]

    async def test_body_at_limit_is_read(self, client: httpx.AsyncClient) -> None:
        payload = json.dumps({**VALID, "stops": []}).encode()
        payload += b" " * (LIMIT - len(payload))
        r = await client.post(
            "/trips", content=payload, headers={"content-type": "application/json"}
        )
        assert r.status_code == 200

    async def test_streamed_body_without_length_is_counted(self) -> None:
        """A chunked upload with no Content-Length is cut off once it passes the limit."""
        app = build_app()
        chunks = [b'{"pickup": {"lat": 1, "lon": 2}, "x": "'] + [b"a" * 300] * 10 + [b'"}']
        sent: list[MutableMapping[str, Any]] = []
        pending = list(chunks)

        async def receive() -> dict[str, Any]:
            if not pending:
                return {"type": "http.disconnect"}
            chunk = pending.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/trips",
            "raw_path": b"/trips",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"content-type", b"application/json"), (b"host", b"t")],
            "client": ("127.0.0.1", 1),
            "server": ("t", 80),
        }
        await app(scope, receive, send)
        start = next(m for m in sent if m["type"] == "http.response.start")
        assert start["status"] == 413
        body = json.loads(
            b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        )
        assert body["type"] == BODY_TOO_LARGE
        assert len(pending) > 0  # stopped reading early


class TestFieldPath:
    @pytest.mark.parametrize(
        ("loc", "path"),
        [
            (("body", "pickup", "lat"), "body.pickup.lat"),
            (("query", "limit"), "query.limit"),
            (("body", "stops", 0, "lat"), "body.stops[0].lat"),
            ((), "(request)"),
        ],
    )
    def test_dotted(self, loc: tuple[int | str, ...], path: str) -> None:
        assert field_path(loc) == path


class TestRouteTemplate:
    async def test_access_log_and_metric_use_the_prefixed_template(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Routers included under /v1 are labelled with their full template, not the path."""
        from fastapi import APIRouter

        router = APIRouter()

        @router.get("/things/{thing_id}")
        async def thing(thing_id: int) -> dict[str, int]:
            return {"id": thing_id}

        app = build_app()
        app.include_router(router, prefix="/v1")
        monkeypatch.setattr(app_module, "log", structlog.get_logger("test"))
        transport = httpx.ASGITransport(app=app)
        with structlog.testing.capture_logs() as logs:
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                assert (await c.get("/v1/things/42")).status_code == 200
                assert (await c.get("/v1/nothing")).status_code == 404
        routes = [e["route"] for e in logs if e["event"] == "api.request"]
        assert routes == ["/v1/things/{thing_id}", "(unmatched)"]

"""Load shedding: beyond ``max_concurrent`` requests in progress the API answers 503 at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from dispatcher.api.app import RequestMiddleware
from dispatcher.api.problems import PROBLEM_JSON, UNAVAILABLE, install_problem_handlers

LIMIT = 2


class Gate:
    """Holds ``/slow`` requests until opened; counts the ones that reached the route."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.entered = 0
        self._entry = asyncio.Event()

    def enter(self) -> None:
        self.entered += 1
        self._entry.set()

    async def wait_entered(self, n: int) -> None:
        async with asyncio.timeout(5):
            while self.entered < n:
                self._entry.clear()
                await self._entry.wait()


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def middleware_of() -> dict[str, RequestMiddleware]:
    """Filled with the app's RequestMiddleware once the app has built its stack."""
    return {}


@pytest.fixture
async def client(
    gate: Gate, middleware_of: dict[str, RequestMiddleware]
) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/slow")
    async def slow() -> dict[str, bool]:
        gate.enter()
        await gate.opened.wait()
        return {"ok": True}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(RequestMiddleware, max_concurrent=LIMIT)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        assert (await c.get("/healthz")).status_code == 200  # builds the middleware stack
        stack = app.middleware_stack
        while not isinstance(stack, RequestMiddleware):
            stack = stack.app  # type: ignore[union-attr]
        middleware_of["app"] = stack
        yield c


def shed_total() -> float:
    return REGISTRY.get_sample_value("fleetd_http_requests_shed_total") or 0.0


async def test_beyond_the_limit_is_503_problem_with_retry_after(
    client: httpx.AsyncClient, gate: Gate, middleware_of: dict[str, RequestMiddleware]
) -> None:
    before = shed_total()
    held = [asyncio.create_task(client.get("/slow")) for _ in range(LIMIT)]
    await gate.wait_entered(LIMIT)

    r = await client.get("/slow", headers={"X-Request-ID": "shed-1"})
    assert r.status_code == 503
    assert r.headers["content-type"].startswith(PROBLEM_JSON)
    assert r.headers["retry-after"] == "1"
    assert r.headers["x-request-id"] == "shed-1"
    body = r.json()
    assert body["type"] == UNAVAILABLE
    assert body["status"] == 503
    assert body["instance"] == "/slow"
    assert body["request_id"] == "shed-1"
    assert str(LIMIT) in body["detail"]
    assert gate.entered == LIMIT  # the refused request never reached the route
    assert shed_total() == before + 1

    gate.opened.set()
    assert [t.status_code for t in await asyncio.gather(*held)] == [200] * LIMIT
    assert middleware_of["app"].in_flight == 0
    assert (await client.get("/slow")).status_code == 200


async def test_probes_are_not_counted_nor_shed(client: httpx.AsyncClient, gate: Gate) -> None:
    held = [asyncio.create_task(client.get("/slow")) for _ in range(LIMIT)]
    await gate.wait_entered(LIMIT)
    assert (await client.get("/healthz")).status_code == 200
    gate.opened.set()
    await asyncio.gather(*held)


async def test_a_failed_request_frees_its_slot(
    client: httpx.AsyncClient, middleware_of: dict[str, RequestMiddleware]
) -> None:
    for _ in range(LIMIT + 1):
        assert (await client.get("/boom")).status_code == 500
    assert middleware_of["app"].in_flight == 0


async def test_no_limit_by_default() -> None:
    app = FastAPI()

    @app.get("/x")
    async def x() -> dict[str, bool]:
        return {"ok": True}

    app.add_middleware(RequestMiddleware)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        results = await asyncio.gather(*(c.get("/x") for _ in range(50)))
    assert {r.status_code for r in results} == {200}

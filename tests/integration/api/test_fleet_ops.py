"""Operations endpoints and request handling of the real app: health, readiness, metrics,
body limit, malformed JSON, request ids."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

from dispatcher.api.routes.health import ReadyCache
from dispatcher.config import Settings
from dispatcher.ops.durable import DurableWrites
from dispatcher.storage.spool import Spool
from tests.conftest import free_port
from tests.unit.api.fakes import StaticFleet, make_vehicle
from tests.unit.api.harness import NORTH, add_facilities, app_for, client_for, make_services


@pytest.fixture
async def pool(pg_pool: asyncpg.Pool) -> asyncpg.Pool:
    await add_facilities(pg_pool)
    return pg_pool


def build(
    settings: Settings,
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    *,
    broker: bool = True,
    heartbeat_age: float = 0.0,
) -> FastAPI:
    services = make_services(
        settings,
        pool,
        redis,
        StaticFleet([make_vehicle(NORTH.id, "n1")]),
        broker_connected=lambda: broker,
        loop_heartbeat=lambda: time.monotonic() - heartbeat_age,
    )
    return app_for(services)


class Echo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


@pytest.fixture
async def client(
    settings: Settings, pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> AsyncIterator[httpx.AsyncClient]:
    app = build(settings, pool, redis_client)

    async def echo(body: Echo) -> Echo:
        return body

    # A body-taking route of the test's own (the real ones need a token and tables).
    app.add_api_route("/v1/_echo", echo, methods=["POST"])
    async with client_for(app) as c:
        yield c


class TestHealth:
    async def test_healthz_ok_while_loop_ticks(self, client: httpx.AsyncClient) -> None:
        r = await client.get("/healthz")
        assert r.status_code == 200
        assert r.json()["status"] == "ok"

    async def test_healthz_503_when_loop_stalls(
        self, settings: Settings, pool: asyncpg.Pool, redis_client: aioredis.Redis
    ) -> None:
        app = build(settings, pool, redis_client, heartbeat_age=30.0)
        async with client_for(app) as c:
            r = await c.get("/healthz")
        assert r.status_code == 503
        assert r.json()["status"] == "stalled"
        assert r.json()["heartbeat_age_s"] >= 30


class TestReadiness:
    async def test_ready_with_real_services(self, client: httpx.AsyncClient) -> None:
        r = await client.get("/readyz")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "ready"
        assert body["failed"] == []
        assert set(body["checks"]) == {"postgres", "redis", "broker"}
        for check in body["checks"].values():
            assert check["ok"] is True
            assert check["latency_ms"] >= 0

    async def test_broker_down_is_503(
        self, settings: Settings, pool: asyncpg.Pool, redis_client: aioredis.Redis
    ) -> None:
        app = build(settings, pool, redis_client, broker=False)
        async with client_for(app) as c:
            r = await c.get("/readyz")
        assert r.status_code == 503
        assert r.json()["failed"] == ["broker"]

    async def test_unreachable_postgres_is_503(
        self, settings: Settings, redis_client: aioredis.Redis
    ) -> None:
        dead = await asyncpg.create_pool(
            f"postgresql://postgres@127.0.0.1:{free_port()}/nothing", min_size=0, max_size=1
        )
        try:
            app = build(settings, dead, redis_client)
            async with client_for(app) as c:
                started = time.monotonic()
                r = await c.get("/readyz")
                assert time.monotonic() - started < 3
        finally:
            await dead.close()
        assert r.status_code == 503
        body = r.json()
        assert body["failed"] == ["postgres"]
        assert body["checks"]["postgres"]["error"]
        assert body["checks"]["redis"]["ok"] is True

    @pytest.mark.parametrize(("room", "status"), [(True, 200), (False, 503)])
    async def test_unreachable_postgres_with_the_spool_is_degraded(
        self,
        settings: Settings,
        redis_client: aioredis.Redis,
        tmp_path: Path,
        room: bool,
        status: int,
    ) -> None:
        """Issue 18: Postgres away while the spool takes its rows is "degraded" (200: the
        daemon dispatches on); with the spool full it is a failure (503)."""
        dead = await asyncpg.create_pool(
            f"postgresql://postgres@127.0.0.1:{free_port()}/nothing", min_size=0, max_size=1
        )
        spool = Spool(tmp_path / "spool.jsonl", max_bytes=4096)
        await spool.load()
        await spool.append("audit", {"pad": "x" * (900 if room else 3000)})
        try:
            app = build(settings, dead, redis_client)
            app.state.services.durable = DurableWrites(dead, spool, flush_interval_s=1.0)
            async with client_for(app) as c:
                r = await c.get("/readyz")
        finally:
            await dead.close()
        assert r.status_code == status, r.text
        body = r.json()
        assert body["spool_rows"] == 1
        if room:
            assert body["status"] == "degraded"
            assert body["degraded"] == ["postgres", "spool"]
            assert body["failed"] == []
        else:
            assert body["failed"] == ["postgres"]

    async def test_unreachable_redis_is_503(self, settings: Settings, pool: asyncpg.Pool) -> None:
        dead = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0")
        try:
            app = build(settings, pool, dead)
            async with client_for(app) as c:
                r = await c.get("/readyz")
        finally:
            await dead.aclose()
        assert r.status_code == 503
        assert r.json()["failed"] == ["redis"]

    async def test_a_flood_of_probes_pings_once(
        self, settings: Settings, pool: asyncpg.Pool, redis_client: aioredis.Redis
    ) -> None:
        """Issue 13, item 12: concurrent and repeated /readyz share one round of pings."""
        pings: list[int] = []

        def broker() -> bool:
            pings.append(1)
            return True

        services = make_services(
            settings, pool, redis_client, StaticFleet(), broker_connected=broker
        )
        # A long cache lifetime: the test must not depend on how fast it runs.
        app = app_for(services)
        app.state.ready_cache = ReadyCache(ttl_s=3600)
        async with client_for(app) as c:
            answers = await asyncio.gather(*(c.get("/readyz") for _ in range(20)))
            answers.append(await c.get("/readyz"))
        assert {r.status_code for r in answers} == {200}
        assert len(pings) == 1


class TestMethodNotAllowed:
    @pytest.mark.parametrize(
        ("method", "path", "allow"),
        [
            ("DELETE", "/v1/missions", "GET, POST"),
            ("PUT", "/v1/zones/0b5f0a52-6f3a-4a37-9d62-3b1f7c2a0e11", "DELETE, GET"),
            ("GET", "/v1/vehicles/0b5f0a52-6f3a-4a37-9d62-3b1f7c2a0e11/commands/pause", "POST"),
            ("POST", "/healthz", "GET"),
        ],
    )
    async def test_405_names_every_method_of_the_resource(
        self, client: httpx.AsyncClient, method: str, path: str, allow: str
    ) -> None:
        """Fuzz finding: a 405's Allow lists what the path serves, not the first route's."""
        r = await client.request(method, path)
        assert r.status_code == 405
        assert r.headers["allow"] == allow
        assert r.headers["content-type"] == "application/problem+json"


class TestMetrics:
    async def test_metrics_in_prometheus_format(self, client: httpx.AsyncClient) -> None:
        await client.get("/healthz")
        r = await client.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        assert "version=" in r.headers["content-type"]
        assert "fleetd_http_request_duration_seconds_bucket" in r.text
        assert 'route="/healthz"' in r.text

    async def test_request_metric_uses_the_route_template(self, client: httpx.AsyncClient) -> None:
        await client.get("/v1/vehicles/0b5f0a52-6f3a-4a37-9d62-3b1f7c2a0e11")
        text = (await client.get("/metrics")).text
        assert 'route="/v1/vehicles/{vehicle_id}"' in text
        assert "0b5f0a52" not in text


class TestRequestHandling:
    async def test_body_too_large_is_413(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        big = b'{"text": "' + b"x" * settings.api.max_body_bytes + b'"}'
        r = await client.post(
            "/v1/_echo", content=big, headers={"content-type": "application/json"}
        )
        assert r.status_code == 413
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["type"] == "urn:fleetd:problem:body-too-large"

    async def test_malformed_json_is_400(self, client: httpx.AsyncClient) -> None:
        r = await client.post(
            "/v1/_echo", content=b'{"text": ', headers={"content-type": "application/json"}
        )
        assert r.status_code == 400
        assert r.json()["type"] == "urn:fleetd:problem:malformed-json"

    async def test_valid_body_passes(self, client: httpx.AsyncClient) -> None:
        r = await client.post("/v1/_echo", json={"text": "hello"})
        assert r.status_code == 200
        assert r.json() == {"text": "hello"}

    async def test_request_id_is_returned_and_reused(self, client: httpx.AsyncClient) -> None:
        r = await client.get("/healthz")
        assert len(r.headers["x-request-id"]) == 16
        r = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
        assert r.headers["x-request-id"] == "abc-123"

    async def test_openapi_and_docs_are_served(self, client: httpx.AsyncClient) -> None:
        spec = (await client.get("/openapi.json")).json()
        assert spec["info"]["title"] == "fleetd"
        assert "/v1/vehicles" in spec["paths"]
        assert "/v1/fleet/summary" in spec["paths"]
        assert "token" in spec["components"]["securitySchemes"]
        assert (await client.get("/docs")).status_code == 200

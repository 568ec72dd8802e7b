"""Tokens against real Postgres, and 401/403 at the API, each refusal audited."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from dispatcher.audit.log import seal_pending, verify_chain
from dispatcher.auth.roles import Role
from dispatcher.auth.tokens import (
    DenyReason,
    TokenCache,
    TokenError,
    authenticate,
    create_token,
    generate_secret,
    list_tokens,
    lookup,
    revoke_token,
)
from dispatcher.config import Settings
from tests.unit.api.fakes import StaticFleet, make_vehicle
from tests.unit.api.harness import (
    CLIENT_HOST,
    NORTH,
    SOUTH,
    add_facilities,
    app_for,
    audit_rows,
    client_for,
    make_services,
    new_token,
)


@pytest.fixture
async def pool(pg_pool: asyncpg.Pool) -> asyncpg.Pool:
    await add_facilities(pg_pool)
    return pg_pool


@pytest.fixture
def app(settings: Settings, pool: asyncpg.Pool, redis_client: aioredis.Redis) -> FastAPI:
    fleet = StaticFleet([make_vehicle(NORTH.id, "n1"), make_vehicle(SOUTH.id, "s1")])
    return app_for(make_services(settings, pool, redis_client, fleet))


@pytest.fixture
async def anon(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as client:
        yield client


async def expire(pool: asyncpg.Pool, secret_token_id: uuid.UUID) -> None:
    await pool.execute(
        "UPDATE api_tokens SET created_at = now() - interval '2 hours', "
        "expires_at = now() - interval '1 hour' WHERE id = $1",
        secret_token_id,
    )


class TestTokenStore:
    async def test_create_then_authenticate(self, pool: asyncpg.Pool) -> None:
        token_id, secret = await create_token(
            pool, role=Role.NURSE, facility_id=NORTH.id, name="ward 3", expires_at=None
        )
        principal = await authenticate(pool, secret)
        assert principal is not None
        assert principal.token_id == token_id
        assert principal.role is Role.NURSE
        assert principal.facility_id == NORTH.id

    async def test_only_the_hash_is_stored(self, pool: asyncpg.Pool) -> None:
        token_id, secret = await create_token(
            pool, role=Role.GUEST, facility_id=NORTH.id, name="", expires_at=None
        )
        row = await pool.fetchrow("SELECT * FROM api_tokens WHERE id = $1", token_id)
        assert row is not None
        assert secret.encode() not in b"".join(
            str(v).encode() if not isinstance(v, bytes) else v for v in row.values()
        )

    async def test_unscoped_token_must_be_admin(self, pool: asyncpg.Pool) -> None:
        with pytest.raises(TokenError, match="only admin tokens may be unscoped"):
            await create_token(pool, role=Role.OPERATOR, facility_id=None, name="", expires_at=None)
        _, secret = await create_token(
            pool, role=Role.ADMIN, facility_id=None, name="", expires_at=None
        )
        principal = await authenticate(pool, secret)
        assert principal is not None
        assert principal.facility_id is None

    async def test_database_also_refuses_unscoped_non_admin(self, pool: asyncpg.Pool) -> None:
        with pytest.raises(asyncpg.CheckViolationError):
            await pool.execute(
                "INSERT INTO api_tokens (token_hash, role) VALUES ($1, 'guest')", b"x" * 32
            )

    async def test_expiry_in_the_past_is_refused(self, pool: asyncpg.Pool) -> None:
        with pytest.raises(TokenError, match="in the past"):
            await create_token(
                pool,
                role=Role.GUEST,
                facility_id=NORTH.id,
                name="",
                expires_at=datetime.now(UTC) - timedelta(seconds=1),
            )

    async def test_expired_token_is_refused(self, pool: asyncpg.Pool) -> None:
        token_id, secret = await create_token(
            pool,
            role=Role.GUEST,
            facility_id=NORTH.id,
            name="",
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        )
        assert await authenticate(pool, secret) is not None
        await expire(pool, token_id)
        assert await authenticate(pool, secret) is None
        result = await lookup(pool, secret)
        assert result.reason is DenyReason.EXPIRED
        assert result.token_id == token_id

    async def test_revoked_token_is_refused(self, pool: asyncpg.Pool) -> None:
        token_id, secret = await create_token(
            pool, role=Role.GUEST, facility_id=NORTH.id, name="", expires_at=None
        )
        assert await revoke_token(pool, token_id) is True
        assert await revoke_token(pool, token_id) is False
        assert await authenticate(pool, secret) is None
        assert (await lookup(pool, secret)).reason is DenyReason.REVOKED

    async def test_unknown_and_malformed_secrets(self, pool: asyncpg.Pool) -> None:
        assert (await lookup(pool, "fltd_" + "x" * 43)).reason is DenyReason.UNKNOWN
        assert (await lookup(pool, "hello")).reason is DenyReason.MALFORMED
        assert (await lookup(pool, "")).reason is DenyReason.MISSING

    async def test_last_used_is_recorded_at_most_once_a_minute(self, pool: asyncpg.Pool) -> None:
        token_id, secret = await create_token(
            pool, role=Role.GUEST, facility_id=NORTH.id, name="", expires_at=None
        )
        query = "SELECT last_used_at FROM api_tokens WHERE id = $1"
        assert await pool.fetchval(query, token_id) is None
        await authenticate(pool, secret)
        first = await pool.fetchval(query, token_id)
        assert first is not None
        await authenticate(pool, secret)
        assert await pool.fetchval(query, token_id) == first

    async def test_cache_hides_revocation_by_another_process_until_ttl(
        self, pool: asyncpg.Pool
    ) -> None:
        """Documented trade-off: a revocation elsewhere takes effect within the cache TTL."""
        now = [0.0]
        cache = TokenCache(5.0, clock=lambda: now[0])
        token_id, secret = await create_token(
            pool, role=Role.GUEST, facility_id=NORTH.id, name="", expires_at=None
        )
        assert await authenticate(pool, secret, cache=cache) is not None
        await revoke_token(pool, token_id)  # another process: this cache is not told
        assert await authenticate(pool, secret, cache=cache) is not None
        now[0] += 5.0
        assert await authenticate(pool, secret, cache=cache) is None

    async def test_revocation_with_the_cache_is_immediate(self, pool: asyncpg.Pool) -> None:
        cache = TokenCache(5.0)
        token_id, secret = await create_token(
            pool, role=Role.GUEST, facility_id=NORTH.id, name="", expires_at=None
        )
        assert await authenticate(pool, secret, cache=cache) is not None
        await revoke_token(pool, token_id, cache=cache)
        assert await authenticate(pool, secret, cache=cache) is None

    async def test_list_tokens(self, pool: asyncpg.Pool) -> None:
        token_id, _ = await create_token(
            pool, role=Role.OPERATOR, facility_id=SOUTH.id, name="desk", expires_at=None
        )
        [info] = await list_tokens(pool)
        assert (info.id, info.name, info.role, info.facility_key) == (
            token_id,
            "desk",
            Role.OPERATOR,
            "south",
        )
        assert info.state(datetime.now(UTC)) == "active"


class TestUnauthorized:
    async def test_no_token_is_401_and_audited(
        self, anon: httpx.AsyncClient, pool: asyncpg.Pool
    ) -> None:
        r = await anon.get("/v1/vehicles")
        assert r.status_code == 401
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["type"] == "urn:fleetd:problem:unauthorized"
        [row] = await audit_rows(pool)
        assert row["success"] is False
        assert row["reason"] == "missing_token"
        assert row["resource_type"] == "route"
        assert row["resource_id"] == "GET /v1/vehicles"
        assert row["source"] == CLIENT_HOST
        assert row["actor_token_id"] is None
        assert row["details"]["required"] == ["fleet_view"]

    async def test_wrong_scheme_is_401(self, app: FastAPI, pool: asyncpg.Pool) -> None:
        async with client_for(app) as client:
            r = await client.get("/v1/vehicles", headers={"Authorization": "Basic YTpi"})
        assert r.status_code == 401
        [row] = await audit_rows(pool)
        assert row["reason"] == "malformed_token"

    async def test_unknown_token_is_401(self, app: FastAPI, pool: asyncpg.Pool) -> None:
        async with client_for(app, "fltd_" + "y" * 43) as client:
            r = await client.get("/v1/fleet/summary")
        assert r.status_code == 401
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
        [row] = await audit_rows(pool)
        assert row["reason"] == "unknown_token"

    async def test_revoked_token_is_401_and_audited_against_it(
        self, app: FastAPI, pool: asyncpg.Pool
    ) -> None:
        token_id, secret = await create_token(
            pool, role=Role.OPERATOR, facility_id=NORTH.id, name="", expires_at=None
        )
        await revoke_token(pool, token_id)
        async with client_for(app, secret) as client:
            r = await client.get("/v1/vehicles")
        assert r.status_code == 401
        [row] = await audit_rows(pool)
        assert row["reason"] == "revoked_token"
        assert row["actor_token_id"] == token_id

    async def test_expired_token_is_401(self, app: FastAPI, pool: asyncpg.Pool) -> None:
        token_id, secret = await create_token(
            pool,
            role=Role.OPERATOR,
            facility_id=NORTH.id,
            name="",
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        )
        await expire(pool, token_id)
        async with client_for(app, secret) as client:
            r = await client.get("/v1/vehicles")
        assert r.status_code == 401
        [row] = await audit_rows(pool)
        assert row["reason"] == "expired_token"

    async def test_health_needs_no_token(self, anon: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
        assert (await anon.get("/healthz")).status_code == 200
        assert (await anon.get("/metrics")).status_code == 200
        assert await audit_rows(pool) == []


class TestForbidden:
    async def test_role_without_permission_is_403_and_audited(
        self, app: FastAPI, pool: asyncpg.Pool
    ) -> None:
        token_id, secret = await create_token(
            pool, role=Role.GUEST, facility_id=NORTH.id, name="", expires_at=None
        )
        async with client_for(app, secret) as client:
            r = await client.get("/v1/vehicles")
            allowed = await client.get("/v1/fleet/summary")
        assert r.status_code == 403
        body = r.json()
        assert body["type"] == "urn:fleetd:problem:forbidden"
        assert "guest" in body["detail"]
        assert allowed.status_code == 200
        [row] = await audit_rows(pool)
        assert row["reason"] == "forbidden"
        assert row["actor_token_id"] == token_id
        assert row["actor_role"] == "guest"
        assert row["facility_id"] == NORTH.id
        assert row["source"] == CLIENT_HOST

    async def test_refusals_keep_the_chain_valid(self, app: FastAPI, pool: asyncpg.Pool) -> None:
        guest = await new_token(pool, Role.GUEST)
        async with client_for(app, guest) as client:
            for _ in range(3):
                await client.get("/v1/vehicles")
        async with client_for(app) as client:
            await client.get("/v1/vehicles/" + str(uuid.uuid4()))
        # The guest's first refusal and the anonymous one at once; the guest's two
        # repeats as one counted row when the interval ends.
        assert await app.state.denials.flush() == 1
        assert await seal_pending(pool) == 3  # the daemon's sealer does this every 0.2 s
        report = await verify_chain(pool)
        assert report.ok
        assert report.rows_checked == 3


class TestFlood:
    """Issue 13, item 1: refusals are cheap and bounded, and operators are still served."""

    async def test_a_flood_of_refusals_is_counted_not_stored_row_by_row(
        self, app: FastAPI, pool: asyncpg.Pool
    ) -> None:
        long_path = "/v1/vehicles/" + "x" * 20_000
        async with client_for(app) as client:
            answers = [await client.get("/v1/fleet/summary") for _ in range(300)]
            answers.append(await client.get(long_path))
        assert {r.status_code for r in answers} == {401}
        assert len(await audit_rows(pool)) == 2  # the first of each route, at once
        assert await app.state.denials.flush() == 1
        rows = await audit_rows(pool)
        assert [(r["resource_id"], r["details"]["count"]) for r in rows] == [
            ("GET /v1/fleet/summary", 1),
            ("GET /v1/vehicles/{vehicle_id}", 1),
            ("GET /v1/fleet/summary", 299),
        ]
        assert all(len(r["details"]["path"]) <= 256 for r in rows)
        assert rows[-1]["source"] == CLIENT_HOST and rows[-1]["reason"] == "missing_token"

    async def test_operators_are_served_while_anonymous_requests_fill_their_lane(
        self, pool: asyncpg.Pool, redis_client: aioredis.Redis, settings: Settings
    ) -> None:
        """One anonymous request stuck in progress fills a one-slot anonymous lane (and
        the whole one-slot API before): more anonymous requests are shed, an operator
        whose token authenticated before is served."""
        tight = settings.model_copy(
            update={
                "api": settings.api.model_copy(
                    update={"max_concurrent_requests": 1, "max_unverified_requests": 1}
                )
            }
        )
        app = app_for(make_services(tight, pool, redis_client, StaticFleet()))
        operator = await new_token(pool, Role.OPERATOR)
        async with client_for(app, operator) as client:
            assert (await client.get("/v1/fleet/summary")).status_code == 200
        release = asyncio.Event()
        started = asyncio.Event()

        async def body() -> AsyncIterator[bytes]:
            started.set()
            await release.wait()
            yield b"{}"

        async with client_for(app) as anon:
            stuck = asyncio.create_task(anon.post("/v1/missions", content=body()))
            try:
                await asyncio.wait_for(started.wait(), 10)
                assert (await anon.get("/v1/fleet/summary")).status_code == 503
                async with client_for(app, operator) as client:
                    assert (await client.get("/v1/fleet/summary")).status_code == 200
                    # An e-stop takes the operator's lane too: it reaches its handler,
                    # which answers that this bare app has no vehicle links (a real
                    # daemon sends it), rather than being shed like the anonymous ones.
                    stop = await client.post(f"/v1/vehicles/{uuid.uuid4()}/commands/emergency-stop")
                    assert stop.json()["detail"].startswith("Vehicle links are not running")
            finally:
                release.set()
                assert (await stuck).status_code == 401


class TestDatabaseAway:
    """A token look-up that misses the cache while PostgreSQL is away is a 503 the client
    may retry, not a 500 (found by the soak: a PostgreSQL crash under a steady workload)."""

    async def test_an_uncached_token_while_the_database_is_away_is_503(
        self, settings: Settings, redis_client: aioredis.Redis
    ) -> None:
        # Nothing listens on port 1: every connection attempt is refused at once.
        away = await asyncpg.create_pool("postgresql://fleetd@127.0.0.1:1/none", min_size=0)
        try:
            app = app_for(make_services(settings, away, redis_client, StaticFleet()))
            async with client_for(app, generate_secret()) as client:
                answer = await client.get("/v1/fleet/summary")
        finally:
            await away.close()
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"]
        assert "database is unreachable" in answer.json()["detail"]

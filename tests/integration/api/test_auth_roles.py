"""Each role against each fleet endpoint: allowed, or 403 (and audited)."""

from __future__ import annotations

import asyncpg
import pytest
import redis.asyncio as aioredis

from dispatcher.auth.roles import Role
from dispatcher.config import Settings
from tests.unit.api.fakes import StaticFleet, make_vehicle
from tests.unit.api.harness import (
    NORTH,
    add_facilities,
    app_for,
    audit_rows,
    client_for,
    make_services,
    new_token,
)

VEHICLE = make_vehicle(NORTH.id, "n1")

ENDPOINTS = {
    "summary": "/v1/fleet/summary",
    "list": "/v1/vehicles",
    "get": f"/v1/vehicles/{VEHICLE.id}",
}

# role -> endpoints it may call; every other endpoint must answer 403.
ALLOWED: dict[Role, set[str]] = {
    Role.ADMIN: {"summary", "list", "get"},
    Role.OPERATOR: {"summary", "list", "get"},
    Role.MAINTENANCE: {"summary", "list", "get"},
    Role.NURSE: set(),
    Role.CAREGIVER: set(),
    Role.GUEST: {"summary"},
}


@pytest.mark.parametrize("role", list(Role))
async def test_role_against_fleet_endpoints(
    role: Role, settings: Settings, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    await add_facilities(pg_pool)
    app = app_for(make_services(settings, pg_pool, redis_client, StaticFleet([VEHICLE])))
    secret = await new_token(pg_pool, role, None if role is Role.ADMIN else NORTH)
    async with client_for(app, secret) as client:
        for name, path in ENDPOINTS.items():
            r = await client.get(path)
            expected = 200 if name in ALLOWED[role] else 403
            assert r.status_code == expected, (role, name, r.text)
    denied = len(ENDPOINTS) - len(ALLOWED[role])
    rows = await audit_rows(pg_pool)
    assert len(rows) == denied
    assert all(r["actor_role"] == role.value and r["reason"] == "forbidden" for r in rows)

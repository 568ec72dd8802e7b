"""Helpers for API tests against the real services: facilities, tokens, app and client.

Import from the integration tests (``from tests.unit.api.harness import ...``); nothing
here fakes Postgres or Redis, only the live fleet (:class:`~tests.unit.api.fakes.StaticFleet`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import redis.asyncio as aioredis
from fastapi import FastAPI

from dispatcher.api.app import create_app
from dispatcher.auth.roles import Role
from dispatcher.auth.tokens import create_token
from dispatcher.config import FacilitySettings, Settings
from dispatcher.services import FleetView, Services

NORTH = FacilitySettings(key="north", name="North campus")
SOUTH = FacilitySettings(key="south", name="South campus")
#: Address the test client appears to connect from (recorded as audit ``source``).
CLIENT_HOST = "203.0.113.7"


async def add_facilities(pool: asyncpg.Pool) -> None:
    """Create the two test facilities (tokens and vehicles reference them)."""
    from dispatcher.storage.fleet_store import sync_facilities

    await sync_facilities(pool, [NORTH, SOUTH])


async def new_token(
    pool: asyncpg.Pool, role: Role, facility: FacilitySettings | None = NORTH, **kw: Any
) -> str:
    """The secret of a fresh token (``facility=None``: every facility, admin only)."""
    _, secret = await create_token(
        pool,
        role=role,
        facility_id=facility.id if facility else None,
        name=f"test {role}",
        expires_at=kw.pop("expires_at", None),
        **kw,
    )
    return secret


def make_services(
    settings: Settings,
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    fleet: FleetView,
    *,
    broker_connected: Callable[[], bool] = lambda: True,
    loop_heartbeat: Callable[[], float] = time.monotonic,
) -> Services:
    """Services over real Postgres and Redis, a given fleet view and no vehicle links."""
    return Services(
        settings=settings,
        pool=pool,
        redis=redis,
        fleet=fleet,
        commander=None,
        broker_connected=broker_connected,
        loop_heartbeat=loop_heartbeat,
    )


@asynccontextmanager
async def client_for(app: FastAPI, token: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client calling ``app`` in process, optionally with a bearer token."""
    transport = httpx.ASGITransport(app=app, client=(CLIENT_HOST, 40000))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://fleetd.test", headers=headers
    ) as client:
        yield client


def app_for(services: Services) -> FastAPI:
    """``create_app`` over ``services`` (one place, so tests build it the same way)."""
    return create_app(services)


async def audit_rows(pool: asyncpg.Pool, action: str = "auth.denied") -> list[asyncpg.Record]:
    """Audit rows of ``action``, oldest first."""
    return list(await pool.fetch("SELECT * FROM audit_log WHERE action = $1 ORDER BY id", action))


def uid() -> uuid.UUID:
    return uuid.uuid4()

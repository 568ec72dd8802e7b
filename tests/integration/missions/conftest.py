"""Fixtures for mission tests: two facilities, the real API app over real services, tokens.

The app is served in-process (``httpx.ASGITransport``) over the test's own PostgreSQL
database and Redis prefix; the fleet view is empty and there is no vehicle commander.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from dispatcher.api.app import create_app
from dispatcher.auth.roles import Role
from dispatcher.auth.tokens import create_token
from dispatcher.config import FacilitySettings, PlaceSettings, Settings
from dispatcher.missions.store import MissionStore
from dispatcher.services import Services
from dispatcher.storage.fleet_store import sync_facilities
from fleet.model import VehicleFacts, VehicleView

NORTH = FacilitySettings(
    key="north",
    name="North Hospital",
    places=[
        PlaceSettings(name="Ward A", lat=52.5218, lon=13.4061),
        PlaceSettings(name="Radiology", lat=52.5209, lon=13.4095),
        PlaceSettings(name="Main Entrance", lat=52.5201, lon=13.4052),
    ],
)
SOUTH = FacilitySettings(
    key="south",
    name="South Clinic",
    places=[
        PlaceSettings(name="Lobby", lat=48.1371, lon=11.5754),
        PlaceSettings(name="Ward A", lat=48.1380, lon=11.5760),
    ],
)

#: A body every facility-north test can post.
BODY: dict[str, Any] = {"pickup": {"place": "Ward A"}, "dropoff": {"place": "Radiology"}}

Headers = dict[str, str]
TokenFactory = Callable[..., Awaitable[Headers]]


class EmptyFleet:
    """A fleet view with no vehicles (the mission API does not read live state)."""

    def snapshot(self) -> tuple[VehicleView, ...]:
        return ()

    def get(self, vehicle_id: uuid.UUID) -> VehicleView | None:
        return None

    def select(self, keep: Callable[[VehicleFacts], bool]) -> tuple[VehicleView, ...]:
        return ()


@pytest.fixture
def mission_settings(settings: Settings) -> Settings:
    """The test's settings with the two facilities configured (north is the default)."""
    return settings.model_copy(update={"facilities": [NORTH, SOUTH]})


@pytest.fixture
async def services(
    mission_settings: Settings, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> Services:
    await sync_facilities(pg_pool, [NORTH, SOUTH])
    return Services(
        settings=mission_settings,
        pool=pg_pool,
        redis=redis_client,
        fleet=EmptyFleet(),
        commander=None,
        broker_connected=lambda: True,
        loop_heartbeat=time.monotonic,
    )


@pytest.fixture
async def client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://fleetd.test") as c:
        yield c


@pytest.fixture
def store(pg_pool: asyncpg.Pool) -> MissionStore:
    return MissionStore(pg_pool)


@pytest.fixture
def token(pg_pool: asyncpg.Pool) -> TokenFactory:
    """``await token(Role.NURSE)`` -> Authorization headers of a new token (north by default).

    ``facility=None`` makes an unscoped (admin) token.
    """

    async def make(role: Role, facility: FacilitySettings | None = NORTH) -> Headers:
        _, secret = await create_token(
            pg_pool,
            role=role,
            facility_id=facility.id if facility is not None else None,
            name=f"test-{role.value}",
            expires_at=None,
        )
        return {"Authorization": f"Bearer {secret}"}

    return make


@pytest.fixture
def add_vehicle(pg_pool: asyncpg.Pool) -> Callable[..., Awaitable[uuid.UUID]]:
    """Insert a vehicle row (missions reference vehicles by foreign key)."""

    async def make(facility: FacilitySettings = NORTH, serial: str | None = None) -> uuid.UUID:
        vid = uuid.uuid4()
        await pg_pool.execute(
            "INSERT INTO vehicles (id, facility_id, kind, manufacturer, serial) "
            "VALUES ($1, $2, 'robot', 'acme', $3)",
            vid,
            facility.id,
            serial or vid.hex[:12],
        )
        return vid

    return make


async def counts(pool: asyncpg.Pool) -> tuple[int, int]:
    """(missions, mission_events) row counts."""
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM missions) AS m, (SELECT count(*) FROM mission_events) AS e"
    )
    assert row is not None
    return row["m"], row["e"]

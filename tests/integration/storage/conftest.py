"""Fixtures for the storage integration tests: a not-yet-existing database, a facility."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from dispatcher.config import FacilitySettings, MapSettings, PlaceSettings
from dispatcher.storage.fleet_store import sync_facilities
from tests.conftest import _dsn_for, drop_database
from tests.unit.storage.conftest import captured_logs

__all__ = ["captured_logs"]  # a fixture shared with the unit tests


@pytest.fixture
async def fresh_dsn() -> AsyncIterator[str]:
    """DSN of a database that does not exist yet; dropped afterwards if something made it."""
    name = f"fleetd_m_{uuid.uuid4().hex[:16]}"
    try:
        yield _dsn_for(name)
    finally:
        await drop_database(name)


@pytest.fixture
def facility() -> FacilitySettings:
    return FacilitySettings(
        key="st-mary",
        name="St Mary's",
        timezone="Europe/London",
        maps=[MapSettings(map_id="ground", origin_lat=51.5, origin_lon=-0.12)],
        places=[PlaceSettings(name="Ward 3", lat=51.5001, lon=-0.1201, node_id="n3")],
    )


@pytest.fixture
async def facility_in_db(pg_pool: asyncpg.Pool, facility: FacilitySettings) -> FacilitySettings:
    await sync_facilities(pg_pool, [facility])
    return facility

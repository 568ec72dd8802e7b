"""Fixtures for the operations' tests: two facilities in a scratch database, callers, rows.

Operations run against the real PostgreSQL (``pg_pool``); the fleet and the commander
are doubles of fleetd's own interfaces (a fixed fleet, a commander that answers as told).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from dispatcher.auth.principal import Principal
from dispatcher.auth.roles import Role
from dispatcher.config import FacilitySettings, PlaceSettings
from dispatcher.ops.caller import Caller
from dispatcher.storage.fleet_store import sync_facilities

NORTH = FacilitySettings(
    key="north",
    name="North Hospital",
    places=[
        PlaceSettings(name="Ward A", lat=52.5218, lon=13.4061),
        PlaceSettings(name="Radiology", lat=52.5209, lon=13.4095),
    ],
)
SOUTH = FacilitySettings(key="south", name="South Clinic", places=[])


@dataclass(frozen=True, slots=True)
class AuditRow:
    action: str
    resource_type: str
    resource_id: str | None
    success: bool
    reason: str | None
    details: dict[str, Any]
    facility_id: uuid.UUID | None
    actor_token_id: uuid.UUID | None
    actor_role: str | None
    source: str | None


async def audit_rows(pool: asyncpg.Pool) -> list[AuditRow]:
    """Every audit row, oldest first."""
    rows = await pool.fetch(
        "SELECT action, resource_type, resource_id, success, reason, details, facility_id, "
        "actor_token_id, actor_role, source FROM audit_log ORDER BY id"
    )
    return [AuditRow(**dict(r)) for r in rows]


def api_caller(role: Role, facility: FacilitySettings | None = NORTH) -> Caller:
    """An API caller with a token of ``role`` in ``facility`` (None: every facility)."""
    principal = Principal(uuid.uuid4(), role, facility.id if facility is not None else None)
    return Caller.api(principal, "192.0.2.7")


@pytest.fixture
async def pool(pg_pool: asyncpg.Pool) -> asyncpg.Pool:
    """The scratch database with both facilities provisioned."""
    await sync_facilities(pg_pool, [NORTH, SOUTH])
    return pg_pool

"""Zone operations write their audit rows (success and refusal) in real Postgres."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from dispatcher.auth.roles import Role
from dispatcher.ops.zones import (
    FacilityInput,
    ZoneOps,
    ZoneRefusal,
    ZoneRefused,
    ZoneRequest,
)
from dispatcher.storage.zones_store import ZoneRecord
from geo.zones import ZoneKind
from tests.integration.ops.conftest import NORTH, SOUTH, api_caller, audit_rows

SQUARE = [[13.40, 52.52], [13.41, 52.52], [13.41, 52.53], [13.40, 52.53], [13.40, 52.52]]
BOWTIE = [[13.40, 52.52], [13.41, 52.53], [13.41, 52.52], [13.40, 52.53], [13.40, 52.52]]


def _request(name: str = "ward", ring: list[list[float]] = SQUARE, **kw: Any) -> ZoneRequest:
    return ZoneRequest(
        name=name,
        kind=ZoneKind.NO_GO,
        geometry={"type": "Polygon", "coordinates": [ring]},
        speed_limit_mps=None,
        **kw,
    )


class TestCreate:
    async def test_created_zone_is_audited(self, pool: asyncpg.Pool) -> None:
        """The zone and its zone.create row commit together."""
        zone = await ZoneOps(pool).create(api_caller(Role.OPERATOR), _request())
        assert isinstance(zone, ZoneRecord)
        [row] = await audit_rows(pool)
        assert (row.action, row.success, row.resource_id, row.facility_id) == (
            "zone.create",
            True,
            str(zone.id),
            NORTH.id,
        )
        assert row.details["new"]["name"] == "ward"

    async def test_name_taken_is_refused_and_audited(self, pool: asyncpg.Pool) -> None:
        """A second live zone of one name is refused; nothing but the refusal is written."""
        ops, caller = ZoneOps(pool), api_caller(Role.OPERATOR)
        await ops.create(caller, _request())
        outcome = await ops.create(caller, _request())
        assert isinstance(outcome, ZoneRefused)
        assert outcome.reason is ZoneRefusal.NAME_TAKEN
        assert await pool.fetchval("SELECT count(*) FROM zones") == 1
        row = (await audit_rows(pool))[-1]
        assert (row.success, row.reason, row.details) == (False, "name_taken", {"name": "ward"})

    async def test_invalid_geometry_is_refused_and_audited(self, pool: asyncpg.Pool) -> None:
        """A self-intersecting ring is refused with GEOS's reason, in the row too."""
        outcome = await ZoneOps(pool).create(api_caller(Role.OPERATOR), _request(ring=BOWTIE))
        assert isinstance(outcome, ZoneRefused)
        assert outcome.reason is ZoneRefusal.INVALID_GEOMETRY
        [row] = await audit_rows(pool)
        assert row.reason == "invalid_geometry"
        assert "Self-intersection" in row.details["message"]

    async def test_other_facility_is_refused_and_audited(self, pool: asyncpg.Pool) -> None:
        """A north token naming south is refused as another facility's."""
        request = _request(facilities=[FacilityInput("body.facility", "south", "body.facility")])
        outcome = await ZoneOps(pool).create(api_caller(Role.OPERATOR), request)
        assert outcome == ZoneRefused(ZoneRefusal.OTHER_FACILITY)
        [row] = await audit_rows(pool)
        assert (row.reason, row.details) == ("other_facility", {"facility_id": str(SOUTH.id)})

    async def test_unknown_facility_is_invalid_and_unaudited(self, pool: asyncpg.Pool) -> None:
        """A facility reference naming nothing is malformed input, not an audited event."""
        request = _request(facilities=[FacilityInput("query.facility", "west", "?facility=")])
        outcome = await ZoneOps(pool).create(api_caller(Role.ADMIN, None), request)
        assert outcome == ZoneRefused(
            ZoneRefusal.INVALID, "query.facility", "unknown facility 'west'"
        )
        assert await audit_rows(pool) == []


class TestDelete:
    async def test_deleted_zone_is_audited_as_it_was(self, pool: asyncpg.Pool) -> None:
        """Deleting keeps the zone in the audit row's ``old``."""
        ops, caller = ZoneOps(pool), api_caller(Role.OPERATOR)
        zone = await ops.create(caller, _request())
        assert isinstance(zone, ZoneRecord)
        before = await ops.delete(caller, zone.id)
        assert isinstance(before, ZoneRecord)
        row = (await audit_rows(pool))[-1]
        assert (row.action, row.success, row.details["old"]["name"]) == (
            "zone.delete",
            True,
            "ward",
        )

    async def test_unknown_zone_is_refused_and_audited(self, pool: asyncpg.Pool) -> None:
        """Deleting a zone that is not there (or not visible) is refused and audited."""
        zone_id = uuid.uuid4()
        outcome = await ZoneOps(pool).delete(api_caller(Role.OPERATOR), zone_id)
        assert outcome == ZoneRefused(ZoneRefusal.NOT_FOUND)
        [row] = await audit_rows(pool)
        assert (row.action, row.reason, row.resource_id) == (
            "zone.delete",
            "not_found",
            str(zone_id),
        )

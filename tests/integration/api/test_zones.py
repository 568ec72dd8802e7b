"""Zones API against real PostgreSQL/PostGIS and Redis: create, list, get, delete, GeoJSON
validation, roles, facility isolation and the audit trail.

One database for the module (migrated from scratch, not from the shared template that
other test runs rebuild), the app called in process; every test makes its own tokens and
zone names, so tests do not depend on each other.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from fastapi import FastAPI

from dispatcher.auth.roles import Role
from dispatcher.config import Settings
from dispatcher.storage.migrate import apply_migrations
from tests.conftest import REDIS_URL, db_pool, scratch_database
from tests.unit.api.fakes import StaticFleet
from tests.unit.api.harness import (
    NORTH,
    SOUTH,
    add_facilities,
    app_for,
    audit_rows,
    client_for,
    make_services,
    new_token,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

#: A ~22 m x 20 m square near the demo campus gate, counter-clockwise, closed.
SQUARE = [[13.4050, 52.5200], [13.4053, 52.5200], [13.4053, 52.5202], [13.4050, 52.5202]]
SQUARE += [SQUARE[0]]
OTHER_SQUARE = [[lon + 0.001, lat] for lon, lat in SQUARE]


def polygon(ring: list[list[float]] | None = None) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [ring or SQUARE]}


def body(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "kind": "service_area", "geometry": polygon(), **extra}


def unique(prefix: str = "zone") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# Module fixtures -------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def db_dsn() -> AsyncIterator[str]:
    """A database of this module's own, migrated from scratch."""
    async with scratch_database("zones", prepare=apply_migrations) as dsn:
        yield dsn


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    async with db_pool(db_dsn, max_size=4) as p:
        await add_facilities(p)
        yield p


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(db_dsn: str, pool: asyncpg.Pool) -> AsyncIterator[FastAPI]:
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    settings = Settings(
        database={"dsn": db_dsn},
        redis={"url": REDIS_URL, "key_prefix": prefix},
        facilities=[NORTH, SOUTH],
        # Room for the "too many positions" case (the default limit is 64 KiB).
        api={"max_body_bytes": 1024 * 1024},
    )
    redis = aioredis.from_url(REDIS_URL)
    try:
        yield app_for(make_services(settings, pool, redis, StaticFleet()))
    finally:
        await redis.aclose()


async def post_zone(
    app: FastAPI, secret: str, payload: dict[str, Any], **params: str
) -> httpx.Response:
    async with client_for(app, secret) as client:
        return await client.post("/v1/zones", json=payload, params=params)


async def get(app: FastAPI, secret: str, path: str, **params: Any) -> httpx.Response:
    async with client_for(app, secret) as client:
        return await client.get(path, params=params)


async def delete(app: FastAPI, secret: str, path: str) -> httpx.Response:
    async with client_for(app, secret) as client:
        return await client.delete(path)


async def zone_rows(pool: asyncpg.Pool, name: str) -> list[asyncpg.Record]:
    return list(await pool.fetch("SELECT * FROM zones WHERE name = $1", name))


# Tests -----------------------------------------------------------------------------------


class TestCreate:
    async def test_polygon_round_trip_and_audit(self, app: FastAPI, pool: asyncpg.Pool) -> None:
        """A valid polygon is stored as geography and comes back as the same GeoJSON."""
        operator = await new_token(pool, Role.OPERATOR, NORTH)
        name = unique()
        r = await post_zone(app, operator, body(name))
        assert r.status_code == 201, r.text
        zone = r.json()
        assert r.headers["location"] == f"/v1/zones/{zone['id']}"
        assert zone["facility_id"] == str(NORTH.id)
        assert zone["kind"] == "service_area" and zone["speed_limit_mps"] is None
        assert zone["geometry"] == polygon()
        stored = await pool.fetchrow(
            "SELECT GeometryType(area::geometry) AS t, ST_Area(area) AS m2 "
            "FROM zones WHERE id = $1",
            uuid.UUID(zone["id"]),
        )
        assert stored is not None and stored["t"] == "POLYGON"
        assert 300 < stored["m2"] < 600  # ~20.3 m x 22.2 m
        rows = await audit_rows(pool, "zone.create")
        mine = [a for a in rows if a["resource_id"] == zone["id"]]
        assert len(mine) == 1 and mine[0]["success"] and mine[0]["actor_role"] == "operator"
        assert mine[0]["details"]["new"]["name"] == name
        assert mine[0]["details"]["new"]["geometry"] == polygon()

    async def test_multipolygon_with_altitude_and_slow_zone(
        self, app: FastAPI, pool: asyncpg.Pool
    ) -> None:
        """A MultiPolygon is accepted; an altitude is dropped; slow zones keep their limit."""
        admin = await new_token(pool, Role.ADMIN, None)
        three_d = [[lon, lat, 34.0] for lon, lat in SQUARE]
        geometry = {"type": "MultiPolygon", "coordinates": [[three_d], [OTHER_SQUARE]]}
        name = unique("slow")
        r = await post_zone(
            app,
            admin,
            {"name": name, "kind": "slow", "geometry": geometry, "speed_limit_mps": 0.8},
            facility="south",
        )
        assert r.status_code == 201, r.text
        zone = r.json()
        assert zone["facility_id"] == str(SOUTH.id)
        assert zone["speed_limit_mps"] == 0.8
        assert zone["geometry"]["type"] == "MultiPolygon"
        assert zone["geometry"]["coordinates"][0][0] == SQUARE

    async def test_admin_must_name_the_facility(self, app: FastAPI, pool: asyncpg.Pool) -> None:
        admin = await new_token(pool, Role.ADMIN, None)
        name = unique()
        r = await post_zone(app, admin, body(name))
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["field"] == "body.facility"
        r = await post_zone(app, admin, body(name, facility="nowhere"))
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.facility"
        r = await post_zone(app, admin, body(name, facility=str(NORTH.id)))
        assert r.status_code == 201 and r.json()["facility_id"] == str(NORTH.id)

    async def test_scoped_token_cannot_create_in_another_facility(
        self, app: FastAPI, pool: asyncpg.Pool
    ) -> None:
        operator = await new_token(pool, Role.OPERATOR, NORTH)
        name = unique()
        r = await post_zone(app, operator, body(name, facility="south"))
        assert r.status_code == 403, r.text
        assert await zone_rows(pool, name) == []
        refused = [a for a in await audit_rows(pool, "zone.create") if not a["success"]]
        assert any(a["reason"] == "other_facility" for a in refused)

    async def test_name_is_unique_among_live_zones(self, app: FastAPI, pool: asyncpg.Pool) -> None:
        operator = await new_token(pool, Role.OPERATOR, NORTH)
        name = unique()
        first = await post_zone(app, operator, body(name))
        assert first.status_code == 201
        again = await post_zone(app, operator, body(name))
        assert again.status_code == 409, again.text
        assert again.json()["type"] == "urn:fleetd:problem:conflict"
        gone = await delete(app, operator, f"/v1/zones/{first.json()['id']}")
        assert gone.status_code == 204
        assert (await post_zone(app, operator, body(name))).status_code == 201

    @pytest.mark.parametrize(
        ("extra", "field"),
        [
            ({"kind": "slow"}, "body.speed_limit_mps"),
            ({"speed_limit_mps": 1.0}, "body.speed_limit_mps"),
            ({"kind": "slow", "speed_limit_mps": 0}, "body.speed_limit_mps"),
            ({"kind": "parking"}, "body.kind"),
            ({"colour": "red"}, "body.colour"),
            ({"name": ""}, "body.name"),
        ],
    )
    async def test_bad_fields(
        self, app: FastAPI, pool: asyncpg.Pool, extra: dict[str, Any], field: str
    ) -> None:
        operator = await new_token(pool, Role.OPERATOR, NORTH)
        name = unique()
        r = await post_zone(app, operator, {**body(name), **extra})
        assert r.status_code == 422, r.text
        assert field in [e["field"] for e in r.json()["errors"]]
        assert await zone_rows(pool, name) == []


def _ring(n: int) -> list[list[float]]:
    """A valid closed ring of ``n`` positions (a circle of ~100 m)."""
    pts = [
        [13.405 + 0.0015 * math.cos(2 * math.pi * k / (n - 1)),
         52.52 + 0.0009 * math.sin(2 * math.pi * k / (n - 1))]
        for k in range(n - 1)
    ]  # fmt: skip
    return [*pts, pts[0]]


BAD_GEOMETRIES = [
    pytest.param(
        polygon([[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]),
        "body.geometry",
        "Self-intersection",
        id="bowtie",
    ),
    pytest.param(
        polygon([[0, 0], [1, 0], [1, 1], [0, 1], [0, 0.5]]),
        "body.geometry.coordinates[0]",
        "not closed",
        id="unclosed-ring",
    ),
    pytest.param(
        polygon([[0, 0], [1, 0], [0, 0]]),
        "body.geometry.coordinates[0]",
        "at least 4 positions",
        id="too-few-positions",
    ),
    pytest.param(
        polygon([[0, 0], [181, 0], [1, 1], [0, 0]]),
        "body.geometry.coordinates[0][1]",
        "longitude 181",
        id="longitude-out-of-range",
    ),
    pytest.param(
        polygon([[0, 0], [1, -91], [1, 1], [0, 0]]),
        "body.geometry.coordinates[0][1]",
        "latitude -91",
        id="latitude-out-of-range",
    ),
    pytest.param(
        {"type": "Polygon", "coordinates": [SQUARE, [[0, 0], [1, 0], [1, 1], [0, 0]]]},
        "body.geometry",
        "Hole lies outside shell",
        id="hole-outside-shell",
    ),
    pytest.param(
        {"type": "MultiPolygon", "coordinates": [[SQUARE], [SQUARE]]},
        "body.geometry",
        "Self-intersection",
        id="overlapping-multipolygon",
    ),
    pytest.param(
        polygon(_ring(10_002)),
        "body.geometry.coordinates",
        "at most 10000",
        id="too-many-positions",
    ),
    pytest.param({"type": "Point", "coordinates": [13.4, 52.5]}, "body.geometry", "", id="point"),
    pytest.param(
        {"type": "LineString", "coordinates": SQUARE}, "body.geometry", "", id="linestring"
    ),
    pytest.param({"coordinates": [SQUARE]}, "body.geometry", "", id="no-type"),
    pytest.param(
        {"type": "Polygon", "coordinates": [[[0, 0], ["1", 0], [1, 1], [0, 0]]]},
        "body.geometry",
        "number",
        id="string-coordinate",
    ),
    pytest.param(polygon([[0, 0], [1], [1, 1], [0, 0]]), "body.geometry", "", id="short-position"),
]


class TestGeometryValidation:
    @pytest.mark.parametrize(("geometry", "field", "message"), BAD_GEOMETRIES)
    async def test_invalid_geometry_is_422_and_nothing_stored(
        self, app: FastAPI, pool: asyncpg.Pool, geometry: dict[str, Any], field: str, message: str
    ) -> None:
        operator = await new_token(pool, Role.OPERATOR, NORTH)
        name = unique("bad")
        r = await post_zone(app, operator, {**body(name), "geometry": geometry})
        assert r.status_code == 422, r.text
        problem = r.json()
        assert problem["type"] == "urn:fleetd:problem:validation"
        fields = [e["field"] for e in problem["errors"]]
        assert any(f.startswith(field) for f in fields), fields
        assert message in " ".join(e["message"] for e in problem["errors"])
        assert await zone_rows(pool, name) == []

    async def test_large_valid_ring_is_accepted(self, app: FastAPI, pool: asyncpg.Pool) -> None:
        operator = await new_token(pool, Role.OPERATOR, NORTH)
        r = await post_zone(app, operator, {**body(unique()), "geometry": polygon(_ring(9_999))})
        assert r.status_code == 201, r.text[:500]


class TestReadAndDelete:
    async def test_list_filters_paginates_and_isolates(
        self, app: FastAPI, pool: asyncpg.Pool
    ) -> None:
        tag = uuid.uuid4().hex[:6]
        north = await new_token(pool, Role.OPERATOR, NORTH)
        south = await new_token(pool, Role.OPERATOR, SOUTH)
        for i, kind in enumerate(["no_go", "charging", "no_go"]):
            r = await post_zone(app, north, {**body(f"{tag}-n{i}"), "kind": kind})
            assert r.status_code == 201, r.text
        assert (await post_zone(app, south, body(f"{tag}-s0"))).status_code == 201

        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"kind": "no_go", "limit": 1}
            if cursor:
                params["cursor"] = cursor
            r = await get(app, north, "/v1/zones", **params)
            assert r.status_code == 200, r.text
            seen += [z["name"] for z in r.json()["items"] if z["name"].startswith(tag)]
            cursor = r.json()["next_cursor"]
            if cursor is None:
                break
        assert seen == [f"{tag}-n0", f"{tag}-n2"]

        r = await get(app, south, "/v1/zones", limit=1000)
        names = {z["name"] for z in r.json()["items"]}
        assert f"{tag}-s0" in names and not any(n.startswith(f"{tag}-n") for n in names)
        assert {z["facility_id"] for z in r.json()["items"]} == {str(SOUTH.id)}
        assert (await get(app, south, "/v1/zones", facility="north")).json()["items"] == []

        admin = await new_token(pool, Role.ADMIN, None)
        r = await get(app, admin, "/v1/zones", facility="south", limit=1000)
        assert {z["facility_id"] for z in r.json()["items"]} == {str(SOUTH.id)}
        assert (await get(app, admin, "/v1/zones", facility="nowhere")).status_code == 422
        assert (await get(app, admin, "/v1/zones", cursor="garbage")).status_code == 400

    async def test_get_and_delete_across_facilities(self, app: FastAPI, pool: asyncpg.Pool) -> None:
        north = await new_token(pool, Role.OPERATOR, NORTH)
        south = await new_token(pool, Role.OPERATOR, SOUTH)
        zone = (await post_zone(app, north, body(unique()))).json()
        path = f"/v1/zones/{zone['id']}"
        assert (await get(app, north, path)).json() == zone
        assert (await get(app, south, path)).status_code == 404
        assert (await delete(app, south, path)).status_code == 404
        assert (await get(app, north, path)).status_code == 200

    async def test_soft_delete_keeps_the_row_and_audits_the_old_value(
        self, app: FastAPI, pool: asyncpg.Pool
    ) -> None:
        north = await new_token(pool, Role.OPERATOR, NORTH)
        zone = (await post_zone(app, north, body(unique()))).json()
        path = f"/v1/zones/{zone['id']}"
        r = await delete(app, north, path)
        assert r.status_code == 204 and r.content == b""
        assert (await get(app, north, path)).status_code == 404
        assert (await delete(app, north, path)).status_code == 404
        rows = await zone_rows(pool, zone["name"])
        assert len(rows) == 1 and rows[0]["deleted_at"] is not None
        audits = [
            a for a in await audit_rows(pool, "zone.delete") if a["resource_id"] == zone["id"]
        ]
        assert [a["success"] for a in audits] == [True, False]
        old = audits[0]["details"]["old"]
        assert old["name"] == zone["name"] and old["geometry"] == zone["geometry"]
        assert old["deleted_at"] is None
        assert audits[1]["reason"] == "not_found"


#: role -> (view allowed, manage allowed)
ROLES: dict[Role, tuple[bool, bool]] = {
    Role.ADMIN: (True, True),
    Role.OPERATOR: (True, True),
    Role.NURSE: (False, False),
    Role.CAREGIVER: (False, False),
    Role.MAINTENANCE: (False, False),
    Role.GUEST: (False, False),
}


class TestRoles:
    @pytest.mark.parametrize("role", list(Role))
    async def test_role_against_zone_endpoints(
        self, app: FastAPI, pool: asyncpg.Pool, role: Role
    ) -> None:
        """list/get need zone_view, create/delete zone_manage; refusals are 403 and audited."""
        owner = await new_token(pool, Role.OPERATOR, NORTH)
        zone = (await post_zone(app, owner, body(unique()))).json()
        secret = await new_token(pool, role, None if role is Role.ADMIN else NORTH)
        view, manage = ROLES[role]
        before = len(await audit_rows(pool))
        async with client_for(app, secret) as client:
            statuses = [
                (await client.get("/v1/zones")).status_code,
                (await client.get(f"/v1/zones/{zone['id']}")).status_code,
                (await client.post("/v1/zones", json=body(unique(), facility="north"))).status_code,
                (await client.delete(f"/v1/zones/{zone['id']}")).status_code,
            ]
        expected = [
            200 if view else 403,
            200 if view else 403,
            201 if manage else 403,
            204 if manage else 403,
        ]
        assert statuses == expected
        denied = await audit_rows(pool)
        assert len(denied) - before == expected.count(403)


class TestFacilityProbe:
    """Issue 13, item 18: a scoped token cannot tell an unknown facility from a foreign one."""

    async def test_create_unknown_answers_like_foreign(
        self, app: FastAPI, pool: asyncpg.Pool
    ) -> None:
        north = await new_token(pool, Role.OPERATOR, NORTH)
        foreign = await post_zone(app, north, body(unique(), facility="south"))
        unknown = await post_zone(app, north, body(unique(), facility="nowhere"))
        assert foreign.status_code == unknown.status_code == 403
        assert _comparable(foreign) == _comparable(unknown)

    async def test_list_unknown_answers_like_foreign(
        self, app: FastAPI, pool: asyncpg.Pool
    ) -> None:
        north = await new_token(pool, Role.OPERATOR, NORTH)
        foreign = await get(app, north, "/v1/zones", facility="south")
        unknown = await get(app, north, "/v1/zones", facility="nowhere")
        assert foreign.status_code == unknown.status_code == 200
        assert foreign.json() == unknown.json() == {"items": [], "next_cursor": None}


def _comparable(response: httpx.Response) -> dict[str, Any]:
    """A problem document without what differs per request."""
    doc: dict[str, Any] = response.json()
    return {k: v for k, v in doc.items() if k not in ("request_id", "instance")}


class TestUnstorableText:
    """Fuzz finding: NUL (and lone surrogates) in any text input is a 422 naming the field,
    never a 500 from PostgreSQL."""

    @pytest.mark.parametrize(
        ("payload", "params", "field"),
        [
            (body("nul-facility", facility="no\u0000rth"), {}, "body.facility"),
            (body("nul\u0000name"), {}, "body.name"),
            (body("surrogate\ud800name"), {}, "body.name"),
            (body("nul-query"), {"facility": "no\u0000rth"}, "query.facility"),
        ],
    )
    async def test_create_refuses_it(
        self,
        app: FastAPI,
        pool: asyncpg.Pool,
        payload: dict[str, Any],
        params: dict[str, str],
        field: str,
    ) -> None:
        operator = await new_token(pool, Role.OPERATOR, NORTH)
        before = await pool.fetchval("SELECT count(*) FROM zones")
        raw = json.dumps(payload)  # escapes what httpx could not encode (a lone surrogate)
        async with client_for(app, operator) as client:
            r = await client.post(
                "/v1/zones",
                content=raw,
                params=params,
                headers={"Content-Type": "application/json"},
            )
        assert r.status_code == 422, r.text
        assert [e["field"] for e in r.json()["errors"]] == [field]
        assert await pool.fetchval("SELECT count(*) FROM zones") == before

    async def test_lists_refuse_it_in_the_query(self, app: FastAPI, pool: asyncpg.Pool) -> None:
        admin = await new_token(pool, Role.ADMIN, None)
        for path in ("/v1/zones", "/v1/vehicles", "/v1/missions"):
            r = await get(app, admin, path, facility="\u0000")
            assert r.status_code == 422, (path, r.text)
            assert [e["field"] for e in r.json()["errors"]] == ["query.facility"]

    async def test_a_surrogate_pair_is_a_character(self, app: FastAPI, pool: asyncpg.Pool) -> None:
        """An escaped pair (an emoji) is fine: only lone surrogates are refused."""
        operator = await new_token(pool, Role.OPERATOR, NORTH)
        name = unique("emoji-\U0001f6d1")
        raw = json.dumps(body(name)).encode()  # ascii: the emoji as \\ud83d\\uded1
        assert b"\\ud83d" in raw
        async with client_for(app, operator) as client:
            r = await client.post(
                "/v1/zones", content=raw, headers={"Content-Type": "application/json"}
            )
        assert r.status_code == 201, r.text
        assert r.json()["name"] == name


async def test_the_document_states_the_slow_zone_speed_rule(app: FastAPI) -> None:
    """Fuzz finding: the handler's rule (a speed limit for slow zones only) is in the
    OpenAPI document, so schema-valid bodies are not refused for it."""
    async with client_for(app) as client:
        doc = (await client.get("/openapi.json")).json()
    schema = doc["components"]["schemas"]["ZoneCreate"]
    assert schema["if"]["properties"]["kind"] == {"const": "slow"}
    assert schema["then"]["required"] == ["speed_limit_mps"]
    assert schema["else"]["properties"]["speed_limit_mps"] == {"type": "null"}

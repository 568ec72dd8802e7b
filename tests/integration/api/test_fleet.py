"""Fleet summary and vehicles: live registry data, facility isolation, filters, pagination."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from dispatcher.auth.roles import Role
from dispatcher.config import Settings
from fleet.model import VehicleKind, VehicleStatus
from tests.unit.api.fakes import StaticFleet, make_vehicle
from tests.unit.api.harness import (
    NORTH,
    SOUTH,
    add_facilities,
    app_for,
    client_for,
    make_services,
    new_token,
)


def fleet_vehicles() -> StaticFleet:
    return StaticFleet(
        [
            make_vehicle(NORTH.id, "n-robot-1"),
            make_vehicle(NORTH.id, "n-robot-2", online=False, status=VehicleStatus.OFFLINE),
            make_vehicle(NORTH.id, "n-robot-3", status=VehicleStatus.CHARGING, charging=True),
            make_vehicle(NORTH.id, "n-driver-1", kind=VehicleKind.DRIVER),
            make_vehicle(SOUTH.id, "s-robot-1"),
            make_vehicle(SOUTH.id, "s-driver-1", kind=VehicleKind.DRIVER),
        ]
    )


@pytest.fixture
async def app(settings: Settings, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis) -> FastAPI:
    await add_facilities(pg_pool)
    return app_for(make_services(settings, pg_pool, redis_client, fleet_vehicles()))


async def get(app: FastAPI, secret: str, path: str, **params: Any) -> httpx.Response:
    async with client_for(app, secret) as client:
        return await client.get(path, params=params)


def names(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [v["name"] for v in response.json()["items"]]


class TestFacilityIsolation:
    async def test_scoped_token_lists_only_its_facility(
        self, app: FastAPI, pg_pool: asyncpg.Pool
    ) -> None:
        north = await new_token(pg_pool, Role.OPERATOR, NORTH)
        r = await get(app, north, "/v1/vehicles")
        assert names(r) == ["n-driver-1", "n-robot-1", "n-robot-2", "n-robot-3"]
        assert {v["facility_id"] for v in r.json()["items"]} == {str(NORTH.id)}

    async def test_other_facility_filter_yields_nothing(
        self, app: FastAPI, pg_pool: asyncpg.Pool
    ) -> None:
        north = await new_token(pg_pool, Role.OPERATOR, NORTH)
        assert names(await get(app, north, "/v1/vehicles", facility="south")) == []

    async def test_other_facility_vehicle_is_404(self, app: FastAPI, pg_pool: asyncpg.Pool) -> None:
        north = await new_token(pg_pool, Role.OPERATOR, NORTH)
        south_robot = make_vehicle(SOUTH.id, "s-robot-1")
        r = await get(app, north, f"/v1/vehicles/{south_robot.id}")
        assert r.status_code == 404
        assert r.json()["type"] == "urn:fleetd:problem:not-found"
        own = make_vehicle(NORTH.id, "n-robot-1")
        r = await get(app, north, f"/v1/vehicles/{own.id}")
        assert r.status_code == 200
        assert r.json()["name"] == "n-robot-1"

    async def test_summary_counts_only_own_facility(
        self, app: FastAPI, pg_pool: asyncpg.Pool
    ) -> None:
        guest = await new_token(pg_pool, Role.GUEST, SOUTH)
        body = (await get(app, guest, "/v1/fleet/summary")).json()
        assert body["facility_id"] == str(SOUTH.id)
        assert body["total"] == 2
        assert body["online"] == 2
        assert body["by_kind"] == {
            "robot": {"total": 1, "online": 1},
            "driver": {"total": 1, "online": 1},
        }

    async def test_admin_sees_every_facility_and_can_filter(
        self, app: FastAPI, pg_pool: asyncpg.Pool
    ) -> None:
        admin = await new_token(pg_pool, Role.ADMIN, None)
        assert len(names(await get(app, admin, "/v1/vehicles"))) == 6
        by_key = names(await get(app, admin, "/v1/vehicles", facility="south"))
        by_id = names(await get(app, admin, "/v1/vehicles", facility=str(SOUTH.id)))
        assert by_key == by_id == ["s-driver-1", "s-robot-1"]
        summary = (await get(app, admin, "/v1/fleet/summary")).json()
        assert summary["facility_id"] is None
        assert summary["total"] == 6
        assert summary["offline"] == 1
        assert summary["charging"] == 1
        assert summary["by_status"]["charging"] == 1
        assert set(summary["by_status"]) == {s.value for s in VehicleStatus}


class TestFilters:
    @pytest.mark.parametrize(
        ("params", "expected"),
        [
            ({"kind": "driver"}, ["n-driver-1"]),
            ({"online": "false"}, ["n-robot-2"]),
            ({"status": "charging"}, ["n-robot-3"]),
            ({"status": ["charging", "offline"]}, ["n-robot-2", "n-robot-3"]),
            ({"kind": "robot", "online": "true"}, ["n-robot-1", "n-robot-3"]),
        ],
    )
    async def test_filters(
        self, app: FastAPI, pg_pool: asyncpg.Pool, params: dict[str, Any], expected: list[str]
    ) -> None:
        token = await new_token(pg_pool, Role.MAINTENANCE, NORTH)
        assert names(await get(app, token, "/v1/vehicles", **params)) == expected

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"kind": "bicycle"}, "query.kind"),
            ({"status": "asleep"}, "query.status[0]"),
            ({"limit": 0}, "query.limit"),
            ({"limit": 1001}, "query.limit"),
            ({"online": "perhaps"}, "query.online"),
            ({"facility": "no such!"}, "query.facility"),
        ],
    )
    async def test_bad_query_names_the_field(
        self, app: FastAPI, pg_pool: asyncpg.Pool, params: dict[str, Any], field: str
    ) -> None:
        token = await new_token(pg_pool, Role.OPERATOR, NORTH)
        r = await get(app, token, "/v1/vehicles", **params)
        assert r.status_code == 422, r.text
        assert [e["field"] for e in r.json()["errors"]] == [field]

    async def test_bad_vehicle_id_is_422(self, app: FastAPI, pg_pool: asyncpg.Pool) -> None:
        token = await new_token(pg_pool, Role.OPERATOR, NORTH)
        r = await get(app, token, "/v1/vehicles/not-a-uuid")
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "path.vehicle_id"

    async def test_unknown_vehicle_is_404(self, app: FastAPI, pg_pool: asyncpg.Pool) -> None:
        token = await new_token(pg_pool, Role.OPERATOR, NORTH)
        r = await get(app, token, f"/v1/vehicles/{uuid.uuid4()}")
        assert r.status_code == 404


class TestPagination:
    @pytest.fixture
    async def big_app(
        self, settings: Settings, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis
    ) -> FastAPI:
        await add_facilities(pg_pool)
        vehicles = [make_vehicle(NORTH.id, f"r{i:04d}") for i in range(250)]
        # Two vehicles with one name: the id breaks the tie, neither is lost.
        vehicles.append(make_vehicle(NORTH.id, "twin-a", name="r0100"))
        return app_for(make_services(settings, pg_pool, redis_client, StaticFleet(vehicles)))

    async def test_walks_every_vehicle_once(self, big_app: FastAPI, pg_pool: asyncpg.Pool) -> None:
        token = await new_token(pg_pool, Role.OPERATOR, NORTH)
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        async with client_for(big_app, token) as client:
            while True:
                params: dict[str, Any] = {"limit": 100}
                if cursor:
                    params["cursor"] = cursor
                body = (await client.get("/v1/vehicles", params=params)).json()
                pages += 1
                seen += [v["id"] for v in body["items"]]
                cursor = body["next_cursor"]
                if cursor is None:
                    break
        assert pages == 3
        assert len(seen) == len(set(seen)) == 251

    async def test_default_limit_is_100(self, big_app: FastAPI, pg_pool: asyncpg.Pool) -> None:
        token = await new_token(pg_pool, Role.OPERATOR, NORTH)
        body = (await get(big_app, token, "/v1/vehicles")).json()
        assert len(body["items"]) == 100
        assert body["next_cursor"]

    async def test_last_page_has_no_cursor(self, big_app: FastAPI, pg_pool: asyncpg.Pool) -> None:
        token = await new_token(pg_pool, Role.OPERATOR, NORTH)
        body = (await get(big_app, token, "/v1/vehicles", limit=1000)).json()
        assert len(body["items"]) == 251
        assert body["next_cursor"] is None

    async def test_forged_cursor_is_400(self, big_app: FastAPI, pg_pool: asyncpg.Pool) -> None:
        token = await new_token(pg_pool, Role.OPERATOR, NORTH)
        r = await get(big_app, token, "/v1/vehicles", cursor="garbage")
        assert r.status_code == 400
        assert r.json()["errors"] == [{"field": "query.cursor", "message": "invalid cursor"}]

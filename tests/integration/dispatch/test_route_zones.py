"""Operators' zones (PostGIS, through the API) applied to the robots' route graphs (issue 14).

Real PostgreSQL/PostGIS and Redis, the app in process, the shipped hospital campus: a zone
created through ``POST /v1/zones`` is on the route graph when the API answers, so the next
order built for a robot routes around a no-go zone, is refused with the reason when no
route is left, and goes back to the short way when the zone is deleted; a slow zone makes
the leg slower without changing its way.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

from dispatcher.auth.roles import Role
from dispatcher.config import FacilitySettings, Settings
from dispatcher.dispatch.robot_channel import FacilityOrderLayouts
from dispatcher.dispatch.robot_orders import NoRouteError, OrderLayout, OrderStop, build_order
from dispatcher.dispatch.robot_travel import layout_travel
from dispatcher.facility_layouts import load_facility_layouts
from dispatcher.route_zones import RouteZones, layout_documents
from dispatcher.storage.fleet_store import sync_facilities
from dispatcher.storage.zones_store import ZoneDraft, ZoneStore
from geo.frames import MapFrame
from geo.layout.drivers import geodesic_matrix
from geo.layout.routing import Route
from geo.zones import ZoneKind
from protocols.vda5050.models import Order
from tests.conftest import REDIS_URL
from tests.unit.api.fakes import StaticFleet
from tests.unit.api.harness import app_for, client_for, make_services, new_token
from tests.unit.dispatch.layouts import CFG

#: The central walk between the hospital drive and the clinic road (map frame, metres):
#: the short way from ward A to radiology runs through it.
WALK = (140.0, 132.0)
#: The radiology drop-off node: a zone around it leaves no way in.
RADIOLOGY = (305.451, 100.159)


def square(frame: MapFrame, centre: tuple[float, float], half_m: float) -> dict[str, Any]:
    """A GeoJSON square of ``2 * half_m`` metres around a map point."""
    x, y = centre
    xs = [x - half_m, x + half_m, x + half_m, x - half_m, x - half_m]
    ys = [y - half_m, y - half_m, y + half_m, y + half_m, y - half_m]
    lats, lons = frame.to_wgs84_many(xs, ys)
    ring = [[float(lon), float(lat)] for lat, lon in zip(lats, lons, strict=True)]
    return {"type": "Polygon", "coordinates": [ring]}


class World:
    def __init__(self, app: FastAPI, secret: str, settings: Settings, zones: RouteZones) -> None:
        facility = settings.default_facility
        self.app, self.secret, self.facility_id = app, secret, facility.id
        self.frame = MapFrame(facility.maps[0].to_spec())
        self.zones = zones
        layouts = load_facility_layouts(settings.effective_facilities, None)
        self.lookup = FacilityOrderLayouts({facility.id: layouts[facility.key]}, zones=zones)

    def layout(self) -> OrderLayout:
        found = self.lookup(self.facility_id, "ward-a")
        assert found is not None
        return found

    def order(self, start: str = "ward-a", end: str = "radiology") -> Order:
        stops = [OrderStop(end, "drop")]
        return build_order(
            self.layout(),
            CFG,
            order_id=uuid.uuid4().hex,
            start_node_id=start,
            stops=stops,
            released_stops=1,
            manufacturer="acme",
            serial="r1",
        )

    async def create(self, name: str, kind: str, geometry: dict[str, Any], **extra: Any) -> str:
        body = {"name": name, "kind": kind, "geometry": geometry, **extra}
        async with client_for(self.app, self.secret) as client:
            r: httpx.Response = await client.post("/v1/zones", json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    async def delete(self, zone_id: str) -> None:
        async with client_for(self.app, self.secret) as client:
            r = await client.delete(f"/v1/zones/{zone_id}")
        assert r.status_code in (200, 204), r.text


@pytest.fixture
async def world(pg_pool: asyncpg.Pool, pg_dsn: str) -> AsyncIterator[World]:
    settings = Settings(
        database={"dsn": pg_dsn},
        redis={"url": REDIS_URL, "key_prefix": f"test:{uuid.uuid4().hex[:12]}:"},
    )
    await sync_facilities(pg_pool, settings.effective_facilities)
    zones = RouteZones(pg_pool, settings.facility_specs)
    await zones.reload()
    redis = aioredis.from_url(REDIS_URL)
    services = make_services(settings, pg_pool, redis, StaticFleet())
    services.zones_changed = zones.changed
    secret = await new_token(pg_pool, Role.OPERATOR, settings.default_facility)
    try:
        yield World(app_for(services), secret, settings, zones)
    finally:
        await redis.aclose()


def edges(order: Order) -> list[str]:
    return [e.edge_id for e in order.edges]


async def test_no_go_zone_across_a_corridor_routes_the_next_order_around_it(
    world: World,
) -> None:
    before = world.order()
    assert "central-walk-1-2>central-walk-1-1" in edges(before)

    zone_id = await world.create("walk works", "no_go", square(world.frame, WALK, 4.0))
    around = world.order()
    assert not any(e.startswith("central-walk") for e in edges(around)), edges(around)
    assert around.nodes[-1].node_id == "radiology"
    assert len(around.nodes) != len(before.nodes)
    assert world.zones.version >= 1

    await world.delete(zone_id)
    assert edges(world.order()) == edges(before)


async def test_no_route_left_is_refused_with_the_reason(world: World) -> None:
    await world.create("radiology closed", "no_go", square(world.frame, RADIOLOGY, 4.0))
    with pytest.raises(NoRouteError, match="radiology"):
        world.order()
    # Elsewhere the campus is still routed.
    assert world.order(end="entrance").nodes[-1].node_id == "entrance"


async def test_slow_zone_caps_speed_without_changing_the_way(world: World) -> None:
    graph = world.layout().routes
    fast = graph.route("ward-a", "radiology")
    assert isinstance(fast, Route)
    await world.create("walk crowd", "slow", square(world.frame, WALK, 30.0), speed_limit_mps=0.3)
    slow_graph = world.layout().routes
    assert slow_graph is not graph  # a new graph for the new zone set
    slow = slow_graph.route("ward-a", "radiology")
    assert isinstance(slow, Route)
    assert slow.duration_s > fast.duration_s


async def test_other_kinds_and_other_facilities_do_not_touch_the_routes(
    world: World, pg_pool: asyncpg.Pool
) -> None:
    before = world.layout().routes
    await world.create("walk area", "service_area", square(world.frame, WALK, 4.0))
    assert world.layout().routes is before
    assert world.zones(uuid.uuid4()).zones == ()


async def test_the_planner_matrices_follow_the_zones_the_api_changes(world: World) -> None:
    """The planner's robot matrices (layout_travel, as the daemon builds it) come from the
    same zone-adjusted graph as the orders: a no-go zone on the walk makes the pickup at
    radiology cost the detour, and deleting it gives the short way back."""
    settings = Settings()
    travel = layout_travel(
        settings, load_facility_layouts(settings.effective_facilities, None), world.zones
    )
    keys = [(world.facility_id, "ward-a"), (world.facility_id, "radiology")]
    short, _ = travel.matrices(keys)
    zone_id = await world.create("walk works", "no_go", square(world.frame, WALK, 4.0))
    detour, _ = travel.matrices(keys)
    around = world.layout().routes.route("ward-a", "radiology")
    assert isinstance(around, Route)
    assert detour[0, 1] > short[0, 1]
    # Same graph as the order, at the planner's speed: the same way, so the same length.
    _, planned_m = travel.matrices(keys)
    assert planned_m[0, 1] == pytest.approx(around.distance_m)
    await world.delete(zone_id)
    again, _ = travel.matrices(keys)
    assert again[0, 1] == pytest.approx(short[0, 1])


async def test_a_facility_with_layouts_but_no_maps_gets_its_zones(
    pg_pool: asyncpg.Pool, pg_dsn: str
) -> None:
    """No ``[[facilities.maps]]``: the layout's map is placed from the facility's places
    (their node ids), so a no-go zone stored on Earth still cuts the walk."""
    demo = Settings().default_facility
    frame = MapFrame(demo.maps[0].to_spec())
    # Validated afresh, not model_copy: that would carry the demo's cached ``spec``.
    bare = FacilitySettings.model_validate({**demo.model_dump(), "key": "no-maps", "maps": []})
    settings = Settings(database={"dsn": pg_dsn}, facilities=[bare])
    facility = settings.default_facility
    assert not facility.maps
    await sync_facilities(pg_pool, settings.effective_facilities)
    layouts = load_facility_layouts(settings.effective_facilities, None)
    zones = RouteZones(
        pg_pool,
        settings.facility_specs,
        documents=layout_documents([(facility.id, facility.key)], layouts),
    )
    await ZoneStore(pg_pool).create(
        ZoneDraft(facility.id, "walk works", ZoneKind.NO_GO, square(frame, WALK, 4.0), None, "t")
    )
    assert await zones.reload()
    applied = zones(facility.id)
    assert [z.map_id for z in applied.zones] == ["campus"]
    lookup = FacilityOrderLayouts({facility.id: layouts[facility.key]}, zones=zones)
    layout = lookup(facility.id, "ward-a")
    assert layout is not None
    route = layout.routes.route("ward-a", "radiology")
    assert isinstance(route, Route)
    assert not any(e.startswith("central-walk") for e in route.edge_ids), route.edge_ids


async def test_straight_line_travel_goes_round_an_api_no_go_zone(world: World) -> None:
    """Drivers' (straight-line) travel in the planner: a no-go zone created through the API
    lengthens the pairs whose line crosses it (RouteZones.around, the planner's Detours),
    and deleting it restores them."""
    x, y = WALK
    lats, lons = world.frame.to_wgs84_many([x, x], [y - 40.0, y + 40.0])
    straight = geodesic_matrix(lats, lons)
    assert world.zones.around(lats.tolist(), lons.tolist(), straight)[0, 1] == straight[0, 1]
    zone_id = await world.create("walk works", "no_go", square(world.frame, WALK, 15.0))
    round_ = world.zones.around(lats.tolist(), lons.tolist(), straight)
    # Round a corner of the 30 m square widened by the 2 m margin: 17 m out, 34 m along.
    assert round_[0, 1] == pytest.approx(2 * math.hypot(17, 23) + 34, rel=0.02)
    await world.delete(zone_id)
    assert world.zones.around(lats.tolist(), lons.tolist(), straight)[0, 1] == straight[0, 1]

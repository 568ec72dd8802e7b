"""Vehicle commands end to end: the HTTP API of an embedded daemon, the real broker, virtual
VDA 5050 robots and scripted driver phones, PostgreSQL and Redis.

One daemon for the module (starting one per test would dominate the run time): two
facilities; in north, robots inside and outside a small square and one inside but offline,
a driver inside; in south, one robot. Tests observe what the vehicles received
(``robot.received_instant_actions``, ``robot.paused``, ``driver.commands``), the HTTP
answers, the registry, and the audit rows.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from dispatcher.auth.roles import Role
from dispatcher.config import FacilitySettings, MapSettings, Settings
from dispatcher.daemon import Daemon
from fleet.model import VehicleKind, vehicle_id
from protocols.vda5050 import codec
from protocols.vda5050.models import Edge, Node
from sim.driver import DriverSpec, ScriptedDriver
from sim.robot import RobotSpec, VirtualRobot
from tests.conftest import (
    REDIS_URL,
    api_client,
    daemon_settings,
    db_pool,
    eventually,
    running_daemon,
    scratch_database,
)
from tests.unit.api.fakes import StaticFleet
from tests.unit.api.harness import app_for, client_for, make_services, new_token

pytestmark = pytest.mark.asyncio(loop_scope="module")

NORTH = FacilitySettings(
    key="north",
    name="North Hospital",
    maps=[MapSettings(map_id="north-campus", origin_lat=52.52, origin_lon=13.405)],
)
SOUTH = FacilitySettings(
    key="south",
    name="South Clinic",
    maps=[MapSettings(map_id="south-campus", origin_lat=48.137, origin_lon=11.575)],
)
#: A facility whose map has the north map's origin: its vehicles share north's coordinates
#: (two campuses drawn on one site plan, or a test site), issue 13 item 19.
EAST = FacilitySettings(
    key="east",
    name="East Annex",
    maps=[MapSettings(map_id="east-campus", origin_lat=52.52, origin_lon=13.405)],
)

#: ~20 m x 22 m square at the north map's origin (lon, lat), closed.
SQUARE = [[13.4050, 52.5200], [13.4053, 52.5200], [13.4053, 52.5202], [13.4050, 52.5202]]
SQUARE += [SQUARE[0]]

COMMANDS = ["pause", "resume", "cancel-order", "charge", "emergency-stop"]
WAIT_S = 10.0


@dataclass
class World:
    settings: Settings
    daemon: Daemon
    pool: asyncpg.Pool
    base_url: str
    manufacturer: str
    robots: dict[str, VirtualRobot] = field(default_factory=dict)
    drivers: dict[str, ScriptedDriver] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    tokens: dict[tuple[Role, str | None], str] = field(default_factory=dict)

    def robot_id(self, name: str) -> uuid.UUID:
        return vehicle_id(VehicleKind.ROBOT, self.manufacturer, self.robots[name].spec.serial)

    def driver_id(self, name: str) -> uuid.UUID:
        return vehicle_id(VehicleKind.DRIVER, "", self.drivers[name].spec.driver_id)

    async def token(self, role: Role, facility: FacilitySettings | None = NORTH) -> str:
        key = (role, facility.key if facility else None)
        if key not in self.tokens:
            self.tokens[key] = await new_token(self.pool, role, facility)
        return self.tokens[key]

    async def post(
        self, path: str, secret: str, json: dict[str, Any] | None = None
    ) -> httpx.Response:
        async with api_client(self.base_url, secret, timeout=WAIT_S) as client:
            return await client.post(path, json=json)

    async def audit(self, action: str, resource_id: str) -> list[asyncpg.Record]:
        return list(
            await self.pool.fetch(
                "SELECT * FROM audit_log WHERE action = $1 AND resource_id = $2 ORDER BY id",
                action,
                resource_id,
            )
        )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world() -> AsyncIterator[World]:
    ns = f"t{uuid.uuid4().hex[:10]}"
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    manufacturer = f"acme{uuid.uuid4().hex[:6]}"  # broker client ids stay unique per run
    async with scratch_database("cmds") as dsn:  # the daemon migrates it
        settings = daemon_settings(
            dsn,
            ns,
            prefix,
            fleet={"default_facility": "north"},
            facilities=[NORTH, SOUTH, EAST],
            # A row per refusal (no interval tally): TestRoles counts them one by one.
            api={"denied_audit_interval_s": 0},
            # The commands' own path to the robot: with the dispatch engine on, "charge"
            # becomes a charging leg and a stray order is the engine's to reconcile
            # (tests/integration/dispatch covers those).
            dispatch={"enabled": False},
        )
        async with running_daemon(settings) as run, db_pool(dsn, max_size=3) as pool:
            daemon = run.daemon
            w = World(settings, daemon, pool, run.base_url, manufacturer)
            try:
                for name, map_id, x, y in [
                    ("in", "north-campus", 10.0, 10.0),
                    ("out", "north-campus", 200.0, 200.0),
                    ("off", "north-campus", 12.0, 12.0),
                    ("south", "south-campus", 5.0, 5.0),
                    # Inside north's zones by coordinates, but of another facility.
                    ("twin", "east-campus", 10.0, 10.0),
                ]:
                    spec = RobotSpec(manufacturer, f"{ns}-{name}", map_id=map_id, x=x, y=y)
                    w.robots[name] = VirtualRobot(
                        spec, prefix=settings.mqtt.vda_prefix, state_interval_s=0.2
                    )
                    w.tasks.append(asyncio.create_task(w.robots[name].run()))
                w.drivers["in"] = ScriptedDriver(
                    DriverSpec(f"{ns}-d-in", [(52.52010, 13.40515)]),
                    prefix=settings.mqtt.driver_prefix,
                    status_interval_s=0.2,
                )
                w.tasks.append(asyncio.create_task(w.drivers["in"].run()))
                registry = daemon.registry
                assert registry is not None
                ids = [w.robot_id(n) for n in w.robots] + [w.driver_id("in")]

                def all_placed() -> bool:
                    views = [registry.get(i) for i in ids]
                    return all(v is not None and v.online and v.position for v in views)

                await eventually(all_placed, timeout=20)
                # "off" leaves: an orderly goodbye makes it offline at once, position kept.
                off = w.tasks[2]
                off.cancel()
                await asyncio.gather(off, return_exceptions=True)
                await eventually(lambda: not registry.get(w.robot_id("off")).online)  # type: ignore[union-attr]
                # "lost" is online on a map no facility has: fleetd cannot place it.
                spec = RobotSpec(manufacturer, f"{ns}-lost", map_id="cellar", x=1.0, y=1.0)
                w.robots["lost"] = VirtualRobot(
                    spec, prefix=settings.mqtt.vda_prefix, state_interval_s=0.2
                )
                w.tasks.append(asyncio.create_task(w.robots["lost"].run()))
                await eventually(
                    lambda: (v := registry.get(w.robot_id("lost"))) is not None and v.online
                )
                yield w
            finally:
                for t in w.tasks:
                    t.cancel()
                await asyncio.gather(*w.tasks, return_exceptions=True)


async def create_zone(w: World, secret: str) -> str:
    r = await w.post(
        "/v1/zones",
        secret,
        {
            "name": f"estop-{uuid.uuid4().hex[:6]}",
            "kind": "service_area",
            "geometry": {"type": "Polygon", "coordinates": [SQUARE]},
        },
    )
    assert r.status_code == 201, r.text
    zone_id: str = r.json()["id"]
    return zone_id


# Commands reach the vehicles ------------------------------------------------------------


EXPECTED_ROBOT: dict[str, Callable[[VirtualRobot], bool]] = {
    "pause": lambda r: r.paused,
    "resume": lambda r: not r.paused,
    "cancel-order": lambda r: not r.nodes,
    "charge": lambda r: r.charging,
    "emergency-stop": lambda r: r.paused,
}

DRIVER_COMMAND = {
    "pause": "pause",
    "resume": "resume",
    "cancel-order": "cancel_job",
    "charge": "go_to_charge",
    "emergency-stop": "pause",
}


async def give_order(world: World, name: str) -> str:
    """Send the robot a real order through the robot adapter and wait until it holds it.

    The first node is released and has no position (the robot counts it reached at
    once); the second lies beyond the released horizon: the robot keeps the order,
    standing still, until it is cancelled. (Positions are left out so the robot does
    not move: the other tests of this module expect it where it stands.)
    """
    robot, vid = world.robots[name], world.robot_id(name)
    # A new order must start where the robot stands (else it answers noRouteError): these
    # robots start off the route graph, so say it stands on the order's first node.
    robot.last_node_id = robot.last_node_id or "here"
    order_id = f"order-{uuid.uuid4().hex[:8]}"
    order = codec.make_order(
        0,
        robot.spec.manufacturer,
        robot.spec.serial,
        order_id=order_id,
        order_update_id=0,
        nodes=[
            Node(node_id=robot.last_node_id, sequence_id=0, released=True, actions=[]),
            Node(node_id="beyond", sequence_id=2, released=False, actions=[]),
        ],
        edges=[
            Edge(
                edge_id="here-beyond",
                sequence_id=1,
                released=False,
                start_node_id=robot.last_node_id,
                end_node_id="beyond",
                actions=[],
            )
        ],
    )
    assert world.daemon.services is not None
    commander = world.daemon.services.commander
    assert commander is not None
    result = await commander.send_order(vid, order)
    assert result.ok, result
    registry = world.daemon.registry
    assert registry is not None
    await eventually(lambda: robot.order_id == order_id and bool(robot.nodes))
    await eventually(lambda: registry.get(vid).order_id == order_id)  # type: ignore[union-attr]
    return order_id


class TestCommandsReachVehicles:
    @pytest.mark.parametrize("command", COMMANDS)
    async def test_robot_gets_the_instant_action(self, world: World, command: str) -> None:
        robot = world.robots["out"]
        vid = world.robot_id("out")
        if command == "cancel-order":
            # Cancelling needs an order to cancel, else "no nodes left" holds vacuously.
            await give_order(world, "out")
            assert robot.nodes
        before = robot.received_instant_actions
        r = await world.post(
            f"/v1/vehicles/{vid}/commands/{command}",
            await world.token(Role.OPERATOR),
            {"reason": "test"},
        )
        assert r.status_code == 202, r.text
        out = r.json()
        assert out["vehicle_id"] == str(vid) and out["outcome"] == "done"
        assert out["command"] == command.replace("-", "_")
        assert out["correlation_id"] and out["detail"] == "sent"
        await eventually(lambda: robot.received_instant_actions == before + 1)
        await eventually(lambda: EXPECTED_ROBOT[command](robot))
        action = "vehicle." + command.replace("-", "_")
        rows = await world.audit(action, str(vid))
        assert rows and rows[-1]["success"] and rows[-1]["actor_role"] == "operator"
        details = rows[-1]["details"]
        assert details["outcome"] == "done" and details["correlation_id"] == out["correlation_id"]
        assert isinstance(details["header_id"], int) and details["reason"] == "test"
        assert rows[-1]["facility_id"] == NORTH.id

    async def test_pause_shows_in_the_registry(self, world: World) -> None:
        vid = world.robot_id("out")
        operator = await world.token(Role.OPERATOR)
        registry = world.daemon.registry
        assert registry is not None
        assert (await world.post(f"/v1/vehicles/{vid}/commands/pause", operator)).status_code == 202
        await eventually(lambda: registry.get(vid).paused)  # type: ignore[union-attr]
        assert (
            await world.post(f"/v1/vehicles/{vid}/commands/resume", operator)
        ).status_code == 202
        await eventually(lambda: not registry.get(vid).paused)  # type: ignore[union-attr]

    @pytest.mark.parametrize("command", COMMANDS)
    async def test_driver_gets_the_command(self, world: World, command: str) -> None:
        driver = world.drivers["in"]
        vid = world.driver_id("in")
        before = len(driver.commands)
        r = await world.post(
            f"/v1/vehicles/{vid}/commands/{command}", await world.token(Role.ADMIN, None)
        )
        assert r.status_code == 202, r.text
        await eventually(lambda: len(driver.commands) == before + 1)
        got = driver.commands[-1]
        assert got["command"] == DRIVER_COMMAND[command]
        assert got["correlationId"] == r.json()["correlation_id"]
        if command in ("pause", "emergency-stop"):
            assert driver.paused
        if command == "resume":
            assert not driver.paused


class TestRefusals:
    async def test_offline_vehicle_is_409_with_retry_after(self, world: World) -> None:
        """Fuzz finding: an offline vehicle is the vehicle's state, not the server's: 409
        with a retry hint, not 503."""
        vid = world.robot_id("off")
        robot = world.robots["off"]
        before = robot.received_instant_actions
        r = await world.post(f"/v1/vehicles/{vid}/commands/pause", await world.token(Role.OPERATOR))
        assert r.status_code == 409, r.text
        assert r.headers["retry-after"] == "5"
        problem = r.json()
        assert problem["type"] == "urn:fleetd:problem:vehicle-offline"
        assert problem["outcome"] == "retry" and "offline" in problem["detail"]
        assert robot.received_instant_actions == before
        rows = await world.audit("vehicle.pause", str(vid))
        assert rows and not rows[-1]["success"]
        assert rows[-1]["reason"] == "retry: vehicle is offline"
        assert rows[-1]["details"]["correlation_id"] == problem["correlation_id"]

    async def test_other_facility_and_unknown_vehicles_are_404(self, world: World) -> None:
        south_robot = world.robot_id("south")
        north = await world.token(Role.OPERATOR, NORTH)
        south = await world.token(Role.OPERATOR, SOUTH)
        before = world.robots["south"].received_instant_actions
        for path in (
            f"/v1/vehicles/{south_robot}/commands/pause",
            f"/v1/vehicles/{south_robot}/maintenance",
            f"/v1/vehicles/{uuid.uuid4()}/commands/pause",
        ):
            body = {"enabled": True} if path.endswith("maintenance") else None
            secret = await world.token(Role.ADMIN, NORTH) if body else north
            r = await world.post(path, secret, body)
            assert r.status_code == 404, (path, r.text)
            assert r.json()["type"] == "urn:fleetd:problem:not-found"
        assert world.robots["south"].received_instant_actions == before
        refused = await world.audit("vehicle.pause", str(south_robot))
        assert refused[-1]["reason"] == "not_found" and not refused[-1]["success"]
        # Its own facility's token commands it.
        r = await world.post(f"/v1/vehicles/{south_robot}/commands/resume", south)
        assert r.status_code == 202, r.text
        await eventually(lambda: world.robots["south"].received_instant_actions == before + 1)

    @pytest.mark.parametrize(
        "path",
        ["/commands/jump", "/commands/", "/commands/PAUSE"],
        ids=["unknown", "empty", "case"],
    )
    async def test_unknown_command(self, world: World, path: str) -> None:
        vid = world.robot_id("out")
        r = await world.post(f"/v1/vehicles/{vid}{path}", await world.token(Role.OPERATOR))
        assert r.status_code in (404, 422), r.text

    async def test_bad_bodies_are_422(self, world: World) -> None:
        vid = world.robot_id("out")
        admin = await world.token(Role.ADMIN, None)
        for body in ({}, {"enabled": "yes"}, {"enabled": 1}, {"enabled": True, "extra": 1}):
            r = await world.post(f"/v1/vehicles/{vid}/maintenance", admin, body)
            assert r.status_code == 422, (body, r.text)
        r = await world.post(f"/v1/vehicles/{vid}/commands/pause", admin, {"why": "x"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body.why"

    async def test_without_vehicle_links_commands_are_503(self, world: World) -> None:
        """An API process without a commander (commander=None) refuses every command."""
        redis = aioredis.from_url(REDIS_URL)
        try:
            view = world.daemon.registry.get(world.robot_id("out"))  # type: ignore[union-attr]
            assert view is not None
            app = app_for(make_services(world.settings, world.pool, redis, StaticFleet([view])))
            secret = await world.token(Role.ADMIN, None)
            async with client_for(app, secret) as client:
                zone = await client.post(
                    "/v1/zones",
                    json={
                        "name": f"z-{uuid.uuid4().hex[:6]}",
                        "kind": "no_go",
                        "facility": "north",
                        "geometry": {"type": "Polygon", "coordinates": [SQUARE]},
                    },
                )
                assert zone.status_code == 201, zone.text
                for path, body in [
                    (f"/v1/vehicles/{view.id}/commands/pause", None),
                    (f"/v1/vehicles/{view.id}/maintenance", {"enabled": True}),
                    (f"/v1/zones/{zone.json()['id']}/emergency-stop", None),
                ]:
                    r = await client.post(path, json=body)
                    assert r.status_code == 503, (path, r.text)
                    assert r.headers["retry-after"]
        finally:
            await redis.aclose()
        rows = await world.audit("vehicle.pause", str(view.id))
        assert rows[-1]["reason"] == "commander_unavailable"


class TestMaintenance:
    async def test_robot_maintenance_is_set_stored_and_audited(self, world: World) -> None:
        vid = world.robot_id("out")
        secret = await world.token(Role.MAINTENANCE)
        registry = world.daemon.registry
        assert registry is not None
        before = world.robots["out"].received_instant_actions
        r = await world.post(
            f"/v1/vehicles/{vid}/maintenance", secret, {"enabled": True, "reason": "brakes"}
        )
        assert r.status_code == 202, r.text
        assert r.json()["maintenance"] is True and r.json()["command"] == "maintenance_on"
        view = registry.get(vid)
        assert view is not None and view.maintenance and view.status.value == "maintenance"
        stored = await world.pool.fetchval("SELECT maintenance FROM vehicles WHERE id = $1", vid)
        assert stored is True
        assert world.robots["out"].received_instant_actions == before  # robots get no message
        rows = await world.audit("vehicle.maintenance", str(vid))
        details = rows[-1]["details"]
        assert details["old"] == {"maintenance": False} and details["new"] == {"maintenance": True}
        assert details["reason"] == "brakes" and rows[-1]["actor_role"] == "maintenance"

        r = await world.post(f"/v1/vehicles/{vid}/maintenance", secret, {"enabled": False})
        assert r.status_code == 202 and r.json()["maintenance"] is False
        assert (
            await world.pool.fetchval("SELECT maintenance FROM vehicles WHERE id = $1", vid)
            is False
        )

    async def test_offline_robot_can_enter_maintenance(self, world: World) -> None:
        vid = world.robot_id("off")
        secret = await world.token(Role.MAINTENANCE)
        r = await world.post(f"/v1/vehicles/{vid}/maintenance", secret, {"enabled": True})
        assert r.status_code == 202, r.text
        r = await world.post(f"/v1/vehicles/{vid}/maintenance", secret, {"enabled": False})
        assert r.status_code == 202, r.text

    async def test_driver_is_told(self, world: World) -> None:
        driver = world.drivers["in"]
        vid = world.driver_id("in")
        secret = await world.token(Role.MAINTENANCE)
        before = len(driver.commands)
        r = await world.post(f"/v1/vehicles/{vid}/maintenance", secret, {"enabled": True})
        assert r.status_code == 202, r.text
        await eventually(lambda: len(driver.commands) == before + 1)
        assert driver.commands[-1]["command"] == "maintenance"
        assert driver.commands[-1]["enabled"] is True
        r = await world.post(f"/v1/vehicles/{vid}/maintenance", secret, {"enabled": False})
        assert r.status_code == 202
        await eventually(lambda: len(driver.commands) == before + 2)
        assert driver.commands[-1]["enabled"] is False


class TestZoneEmergencyStop:
    async def test_stops_only_online_vehicles_inside(self, world: World) -> None:
        operator = await world.token(Role.OPERATOR)
        # A clean start: everyone moving again.
        for name in ("in", "out"):
            r = await world.post(f"/v1/vehicles/{world.robot_id(name)}/commands/resume", operator)
            assert r.status_code == 202
        r = await world.post(f"/v1/vehicles/{world.driver_id('in')}/commands/resume", operator)
        assert r.status_code == 202
        await eventually(lambda: not world.robots["in"].paused and not world.drivers["in"].paused)
        counts = {n: world.robots[n].received_instant_actions for n in world.robots}
        driver_before = len(world.drivers["in"].commands)
        zone_id = await create_zone(world, operator)

        r = await world.post(f"/v1/zones/{zone_id}/emergency-stop", operator, {"reason": "fire"})
        assert r.status_code == 202, r.text
        out = r.json()
        stopped = {v["vehicle_id"] for v in out["vehicles"]}
        assert stopped == {str(world.robot_id("in")), str(world.driver_id("in"))}
        assert out["stopped"] == 2 and out["not_stopped"] == 0
        assert all(v["command"] == "emergency_stop" for v in out["vehicles"])
        # The robot fleetd cannot place is named, not silently passed over (nor stopped).
        assert out["unlocated"] == [str(world.robot_id("lost"))]

        await eventually(lambda: world.robots["in"].paused and world.drivers["in"].paused)
        await eventually(lambda: len(world.drivers["in"].commands) == driver_before + 1)
        assert world.robots["in"].received_instant_actions == counts["in"] + 1
        for name in ("out", "off", "south", "lost", "twin"):
            assert world.robots[name].received_instant_actions == counts[name], name
        assert not world.robots["out"].paused

        zone_rows = await world.audit("zone.emergency_stop", zone_id)
        assert len(zone_rows) == 1 and zone_rows[0]["success"]
        assert zone_rows[0]["details"]["reason"] == "fire"
        assert len(zone_rows[0]["details"]["vehicles"]) == 2
        assert zone_rows[0]["details"]["unlocated"] == [str(world.robot_id("lost"))]
        per_vehicle = await world.audit("vehicle.emergency_stop", str(world.robot_id("in")))
        assert per_vehicle[-1]["details"]["zone_id"] == zone_id

    async def test_admin_stop_spares_other_facilities_at_the_same_coordinates(
        self, world: World
    ) -> None:
        """Issue 13, item 19, end to end: an admin token sees every facility, yet a zone of
        north stops north's vehicles only, not east's robot standing inside the polygon."""
        admin = await world.token(Role.ADMIN, None)
        registry = world.daemon.registry
        assert registry is not None
        twin = registry.get(world.robot_id("twin"))
        assert twin is not None and twin.facility_id == EAST.id and twin.position is not None
        before = world.robots["twin"].received_instant_actions
        r = await world.post(
            "/v1/zones",
            admin,
            {
                "name": f"shared-{uuid.uuid4().hex[:6]}",
                "kind": "service_area",
                "facility": "north",
                "geometry": {"type": "Polygon", "coordinates": [SQUARE]},
            },
        )
        assert r.status_code == 201, r.text
        zone_id = r.json()["id"]
        r = await world.post(f"/v1/zones/{zone_id}/emergency-stop", admin, {"reason": "drill"})
        assert r.status_code == 202, r.text
        stopped = {v["vehicle_id"] for v in r.json()["vehicles"]}
        assert stopped == {str(world.robot_id("in")), str(world.driver_id("in"))}
        assert str(world.robot_id("twin")) not in stopped
        assert world.robots["twin"].received_instant_actions == before
        assert not world.robots["twin"].paused
        row = (await world.audit("zone.emergency_stop", zone_id))[0]
        assert str(world.robot_id("twin")) not in {
            v["vehicle_id"] for v in row["details"]["vehicles"]
        }

    async def test_empty_zone_and_other_facility(self, world: World) -> None:
        south = await world.token(Role.OPERATOR, SOUTH)
        admin = await world.token(Role.ADMIN, None)
        r = await world.post(
            "/v1/zones",
            admin,
            {
                "name": f"empty-{uuid.uuid4().hex[:6]}",
                "kind": "no_go",
                "facility": "north",
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[lon + 0.01, lat] for lon, lat in SQUARE]],
                },
            },
        )
        assert r.status_code == 201, r.text
        empty = r.json()["id"]
        r = await world.post(f"/v1/zones/{empty}/emergency-stop", admin)
        assert r.status_code == 202 and r.json()["vehicles"] == []
        r = await world.post(f"/v1/zones/{empty}/emergency-stop", south)
        assert r.status_code == 404, r.text
        r = await world.post(f"/v1/zones/{uuid.uuid4()}/emergency-stop", admin)
        assert r.status_code == 404


# Roles -----------------------------------------------------------------------------------

ENDPOINTS = [*COMMANDS, "maintenance", "zone-estop"]
ALLOWED: dict[Role, set[str]] = {
    Role.ADMIN: set(ENDPOINTS),
    Role.OPERATOR: {*COMMANDS, "zone-estop"},
    Role.MAINTENANCE: {"maintenance"},
    Role.NURSE: set(),
    Role.CAREGIVER: set(),
    Role.GUEST: set(),
}


class TestRoles:
    async def test_table_covers_every_role(self) -> None:
        assert set(ALLOWED) == set(Role)

    @pytest.mark.parametrize("role", list(Role))
    async def test_role_against_command_endpoints(self, world: World, role: Role) -> None:
        """Allowed -> 202, else 403; each 403 is an auth.denied audit row."""
        secret = await world.token(role, None if role is Role.ADMIN else NORTH)
        zone_id = await create_zone(world, await world.token(Role.OPERATOR))
        vid = world.robot_id("out")
        denied_before = await world.pool.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'auth.denied' AND actor_role = $1",
            role.value,
        )
        for endpoint in ENDPOINTS:
            if endpoint == "maintenance":
                r = await world.post(f"/v1/vehicles/{vid}/maintenance", secret, {"enabled": False})
            elif endpoint == "zone-estop":
                r = await world.post(f"/v1/zones/{zone_id}/emergency-stop", secret)
            else:
                r = await world.post(f"/v1/vehicles/{vid}/commands/{endpoint}", secret)
            expected = 202 if endpoint in ALLOWED[role] else 403
            assert r.status_code == expected, (role, endpoint, r.text)
        denied = await world.pool.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'auth.denied' AND actor_role = $1",
            role.value,
        )
        assert denied - denied_before == len(ENDPOINTS) - len(ALLOWED[role])
        # Leave the robot moving for whatever runs next.
        operator = await world.token(Role.OPERATOR)
        await world.post(f"/v1/vehicles/{vid}/commands/resume", operator)

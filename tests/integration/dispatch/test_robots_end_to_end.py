"""Live dispatch end to end with robots: a whole daemon, simulated VDA 5050 robots over the
broker, missions created, cancelled and resolved through the API.

Nothing here is a double. The facility is a straight corridor written as a LIF file (nine
nodes two metres apart, a charging station at the end), so a leg takes seconds; each
place is a node of it. Robots are :class:`sim.robot.VirtualRobot` in this process, or in
a process of their own (``robot_process.py``) when the test kills one: a killed process
sends no DISCONNECT, so the broker publishes its Last Will as for a robot losing power.
Every in-process robot records each order it refused: a robot sent a second order while
it runs one answers ``orderError``, so "no robot received two conflicting orders" is an
assertion on what the robots saw.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from dispatcher.config import Settings
from geo.facility import MapSpec
from geo.frames import MapFrame
from sim.robot import RobotSpec, VirtualRobot
from tests.conftest import api_client, daemon_settings, eventually, running_daemon
from tests.integration.dispatch.robots.test_thirdparty_agv import _installed as thirdparty_installed
from tests.integration.operator_tokens import operator_token
from tests.unit.geo.layout.builders import document, node, station, two_way

WAIT_S = 40.0
REPO = Path(__file__).resolve().parents[3]
MAP_ID = "line"
STEP_M = 2.0
NODES = [f"n{i}" for i in range(9)]  # n8 is the charger
FRAME = MapFrame(MapSpec(MAP_ID, 52.52, 13.405, 0.0))


def _lif() -> dict[str, Any]:
    nodes = [node(n, STEP_M * i, 0.0, charger=(n == NODES[-1])) for i, n in enumerate(NODES)]
    for n in nodes:
        n["mapId"] = MAP_ID
    edges = [e for a, b in itertools.pairwise(NODES) for e in two_way(a, b, speed=2.0)]
    return document(nodes, edges, [station("dock", NODES[-1])])


def _place(i: int) -> dict[str, Any]:
    lat, lon = FRAME.to_wgs84(STEP_M * i, 0.0)
    return {"name": f"P{i}", "lat": lat, "lon": lon, "node_id": NODES[i]}


def _settings(
    tmp_path: Path, pg_dsn: str, mqtt_namespace: str, redis_prefix: str, **dispatch: Any
) -> Settings:
    layout = tmp_path / "line.lif.json"
    layout.write_text(json.dumps(_lif()))
    facility = {
        "key": "line",
        "name": "Corridor",
        "layouts": [str(layout)],
        "maps": [{"map_id": MAP_ID, "origin_lat": 52.52, "origin_lon": 13.405}],
        "places": [_place(i) for i in range(len(NODES))],
    }
    return daemon_settings(
        pg_dsn,
        mqtt_namespace,
        redis_prefix,
        facilities=[facility],
        dispatch={"tick_s": 0.5, "debounce_s": 0.05, "service_s": 1, **dispatch},
        planner={"time_limit_s": 0.3},
    )


class WatchedRobot(VirtualRobot):
    """A virtual robot that remembers every order it refused (error type, orderId)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refused: list[tuple[str, str]] = []
        self.orders: list[dict[str, Any]] = []

    def on_order(self, msg: dict[str, Any]) -> None:
        self.orders.append(msg)
        super().on_order(msg)
        for err in self.errors:
            refs = {r["referenceKey"]: r["referenceValue"] for r in err["errorReferences"]}
            if refs.get("orderId") == msg.get("orderId"):
                self.refused.append((err["errorType"], str(msg.get("orderId"))))


def _spec(settings: Settings, name: str, at: int, **spec: Any) -> RobotSpec:
    return RobotSpec(
        "acme",
        f"{name}-{uuid.uuid4().hex[:6]}",
        map_id=MAP_ID,
        x=STEP_M * at,
        last_node_id=NODES[at],
        action_seconds={"pick": 0.3, "drop": 0.3, "startCharging": 0.2},
        **{"speed_mps": 2.0, **spec},
    )


@asynccontextmanager
async def _robots(settings: Settings, *specs: RobotSpec) -> AsyncIterator[list[WatchedRobot]]:
    robots = [
        WatchedRobot(spec, prefix=settings.mqtt.vda_prefix, state_interval_s=0.2, tick_s=0.05)
        for spec in specs
    ]
    tasks = [asyncio.create_task(r.run(), name=f"test.{r.spec.serial}") for r in robots]
    try:
        for r in robots:
            await asyncio.wait_for(r.connected.wait(), WAIT_S)
        yield robots
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for r in robots:
        assert r.refused == [], f"{r.spec.serial} was sent conflicting orders: {r.refused}"


@asynccontextmanager
async def _killable(
    settings: Settings, spec: RobotSpec
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A robot in a process of its own; the test SIGKILLs it (else it is killed at the end)."""
    args = {
        "host": settings.mqtt.host,
        "port": settings.mqtt.port,
        "prefix": settings.mqtt.vda_prefix,
        "spec": {k: v for k, v in vars(spec).items()},
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.dispatch.robot_process",
        json.dumps(args),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), WAIT_S)
        assert line.strip() == b"ready", line
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), WAIT_S)


async def _mission(client: httpx.AsyncClient, pickup: int, dropoff: int) -> str:
    body = {
        "pickup": {"place": f"P{pickup}"},
        "dropoff": {"place": f"P{dropoff}"},
        "requirements": {"vehicle_kind": "robot"},
    }
    response = await client.post("/v1/missions", json=body)
    assert response.status_code == 201, response.text
    mission_id: str = response.json()["id"]
    return mission_id


async def _get(client: httpx.AsyncClient, mission_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/missions/{mission_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _events(client: httpx.AsyncClient, mission_id: str) -> list[str]:
    return [e["event"] for e in (await _get(client, mission_id))["timeline"]]


async def _until_status(client: httpx.AsyncClient, mission_id: str, *statuses: str) -> None:
    async def check() -> bool:
        return (await _get(client, mission_id))["status"] in statuses

    await eventually(check, WAIT_S)


async def _until_event(client: httpx.AsyncClient, mission_id: str, event: str) -> None:
    async def check() -> bool:
        return event in await _events(client, mission_id)

    await eventually(check, WAIT_S)


def _timeline(body: dict[str, Any], event: str) -> list[dict[str, Any]]:
    return [e for e in body["timeline"] if e["event"] == event]


class TestRobotsEndToEnd:
    async def test_missions_created_through_the_api_are_completed_by_robots(
        self, tmp_path: Path, pg_dsn: str, mqtt_namespace: str, redis_prefix: str
    ) -> None:
        """Four missions created at once for two robots: each is ordered, driven, picked,
        dropped and completed; no robot is ever sent an order while it runs one."""
        settings = _settings(tmp_path, pg_dsn, mqtt_namespace, redis_prefix)
        async with (
            running_daemon(settings) as d,
            _robots(settings, _spec(settings, "a", 0), _spec(settings, "b", 7)) as robots,
        ):
            async with api_client(d.base_url, await operator_token(settings)) as client:
                trips = [(1, 3), (6, 4), (2, 5), (7, 0)]
                ids = await asyncio.gather(*(_mission(client, p, q) for p, q in trips))
                for mission_id in ids:
                    await _until_status(client, mission_id, "completed")
                by_robot: dict[str, int] = {}
                for mission_id in ids:
                    events = await _events(client, mission_id)
                    assert events[0] == "created" and events[-1] == "completed"
                    for step in ("assigned", "started", "pickup_completed", "dropoff_completed"):
                        assert step in events, (step, events)
                    assert events.index("pickup_completed") < events.index("dropoff_completed")
                    vehicle = (await _get(client, mission_id))["vehicle_id"]
                    by_robot[vehicle] = by_robot.get(vehicle, 0) + 1
                assert sum(by_robot.values()) == 4
            assert sum(r.received_orders for r in robots) >= 4

    async def test_a_robot_killed_mid_leg_loses_its_mission_to_another(
        self, tmp_path: Path, pg_dsn: str, mqtt_namespace: str, redis_prefix: str
    ) -> None:
        """The robot dies (process killed: Last Will) on its way to the pickup: the mission
        goes back to pending (``unassigned``, reason ``vehicle_offline``), is
        ``reassigned`` with that reason to the other robot and completed by it."""
        settings = _settings(tmp_path, pg_dsn, mqtt_namespace, redis_prefix)
        doomed = _spec(settings, "doomed", 0, speed_mps=0.2)  # 12 m to go: a minute
        async with (
            running_daemon(settings) as d,
            api_client(d.base_url, await operator_token(settings)) as client,
            _killable(settings, doomed) as proc,
        ):
            mission_id = await _mission(client, 6, 8)
            await _until_event(client, mission_id, "started")
            first = (await _get(client, mission_id))["vehicle_id"]
            async with _robots(settings, _spec(settings, "rescuer", 7)):
                proc.send_signal(signal.SIGKILL)
                await _until_status(client, mission_id, "completed")
                body = await _get(client, mission_id)
        [lost] = _timeline(body, "unassigned")
        assert lost["vehicle_id"] == first and lost["details"]["reason"] == "vehicle_offline"
        [again] = _timeline(body, "reassigned")
        assert again["details"]["reason"] == "vehicle_offline"
        assert again["vehicle_id"] == body["vehicle_id"] != first
        events = [e["event"] for e in body["timeline"]]
        assert events.index("unassigned") < events.index("reassigned")
        assert "pickup_completed" in events and events[-1] == "completed"

    async def test_a_picked_up_mission_whose_robot_dies_waits_for_an_operator(
        self, tmp_path: Path, pg_dsn: str, mqtt_namespace: str, redis_prefix: str
    ) -> None:
        """The rider is on board when the robot dies: nothing is reassigned; the mission
        is ``held`` (shown by ``GET .../resolve``), and the operator's ``complete``
        through ``POST .../resolve`` ends it, audited."""
        settings = _settings(tmp_path, pg_dsn, mqtt_namespace, redis_prefix)
        doomed = _spec(settings, "doomed", 1, speed_mps=0.2)
        async with (
            running_daemon(settings) as d,
            api_client(d.base_url, await operator_token(settings)) as client,
            _killable(settings, doomed) as proc,
            _robots(settings, _spec(settings, "idle", 8)),
        ):
            mission_id = await _mission(client, 1, 7)
            await _until_event(client, mission_id, "pickup_completed")
            proc.send_signal(signal.SIGKILL)
            await _until_event(client, mission_id, "held")
            await asyncio.sleep(1.5)  # several plan rounds: nobody takes the rider over
            body = await _get(client, mission_id)
            assert body["status"] == "in_progress"
            assert _timeline(body, "reassigned") == [] and _timeline(body, "unassigned") == []
            path = f"/v1/missions/{mission_id}/resolve"
            shown = (await client.get(path)).json()
            assert shown["held"] is True and shown["held_reason"] == "vehicle_offline"
            assert set(shown["allowed"]) == {"fail", "complete", "reassign"}
            done = await client.post(path, json={"choice": "complete", "reason": "walked"})
            assert done.status_code == 200, done.text
            assert done.json()["mission"]["status"] == "completed"
        conn = await asyncpg.connect(settings.database.dsn)
        try:
            audited = await conn.fetch(
                "SELECT action FROM audit_log WHERE resource_id = $1 AND success", mission_id
            )
            held = await conn.fetchval(
                "SELECT held_reason FROM missions WHERE id = $1", uuid.UUID(mission_id)
            )
        finally:
            await conn.close()
        assert "mission.completed" in {r["action"] for r in audited}, audited
        assert held is None

    async def test_the_operators_reassign_sends_a_robot_to_where_the_rider_is(
        self, tmp_path: Path, pg_dsn: str, mqtt_namespace: str, redis_prefix: str
    ) -> None:
        """``reassign`` for a held mission: another robot drives to the node where the dead
        robot stopped, picks the rider up there and completes the trip (audited
        ``mission.resolve``; ``reassigned`` with reason ``operator_reassign``)."""
        settings = _settings(tmp_path, pg_dsn, mqtt_namespace, redis_prefix)
        doomed = _spec(settings, "doomed", 1, speed_mps=0.4)
        async with (
            running_daemon(settings) as d,
            api_client(d.base_url, await operator_token(settings)) as client,
            _killable(settings, doomed) as proc,
            _robots(settings, _spec(settings, "rescuer", 8)) as (rescuer,),
        ):
            mission_id = await _mission(client, 1, 7)
            await _until_event(client, mission_id, "pickup_completed")
            registry = d.daemon.registry
            assert registry is not None
            doomed_id = uuid.UUID((await _get(client, mission_id))["vehicle_id"])

            def past_the_pickup() -> bool:
                rec = registry.record(doomed_id)
                return rec is not None and rec.last_node_id in NODES[2:6]

            await eventually(past_the_pickup, WAIT_S)  # on its way with the rider
            proc.send_signal(signal.SIGKILL)
            await _until_event(client, mission_id, "held")
            died = registry.record(doomed_id)
            assert died is not None and died.last_node_id in NODES[2:7]
            died_at = died.last_node_id
            path = f"/v1/missions/{mission_id}/resolve"
            answer = await client.post(path, json={"choice": "reassign", "reason": "stuck"})
            assert answer.status_code in (200, 202), answer.text
            await _until_status(client, mission_id, "completed")
            body = await _get(client, mission_id)
            visited = rescuer.last_node_id
            picks = [
                n["nodeId"]
                for order in rescuer.orders
                for n in order["nodes"]
                if any(a["actionType"] == "pick" for a in n.get("actions", []))
            ]
        assert picks == [died_at]
        [again] = _timeline(body, "reassigned")
        assert again["details"]["reason"] == "operator_reassign"
        assert body["vehicle_id"] == again["vehicle_id"] != again["details"]["previous_vehicle_id"]
        assert visited == NODES[7]
        conn = await asyncpg.connect(settings.database.dsn)
        try:
            resolved = await conn.fetchval(
                "SELECT count(*) FROM audit_log WHERE action = 'mission.resolve' "
                "AND resource_id = $1 AND success",
                mission_id,
            )
        finally:
            await conn.close()
        assert resolved == 1

    async def test_a_low_battery_robot_charges_and_returns_to_service(
        self, tmp_path: Path, pg_dsn: str, mqtt_namespace: str, redis_prefix: str
    ) -> None:
        """Below ``charge_below_pct`` with nothing to do: an order to the charging station's
        node with ``startCharging``; above ``resume_above_pct`` the charge ends and the
        robot takes the next mission."""
        settings = _settings(tmp_path, pg_dsn, mqtt_namespace, redis_prefix)
        low = _spec(settings, "low", 2, battery_pct=20.0, charge_pct_s=8.0)
        async with (
            running_daemon(settings) as d,
            api_client(d.base_url, await operator_token(settings)) as client,
            _robots(settings, low) as (robot,),
        ):
            await eventually(lambda: robot.charging and robot.last_node_id == NODES[-1], WAIT_S)
            assert robot.order_id.startswith("charge:")
            await eventually(lambda: robot.battery >= 80.0, WAIT_S)
            mission_id = await _mission(client, 5, 3)
            await _until_status(client, mission_id, "completed")
            assert robot.last_node_id == NODES[3] and not robot.charging

    async def test_a_cancel_stops_the_robot(
        self, tmp_path: Path, pg_dsn: str, mqtt_namespace: str, redis_prefix: str
    ) -> None:
        """Cancelling a mission under way sends ``cancelOrder``: the robot stops short."""
        settings = _settings(tmp_path, pg_dsn, mqtt_namespace, redis_prefix)
        async with (
            running_daemon(settings) as d,
            api_client(d.base_url, await operator_token(settings)) as client,
            _robots(settings, _spec(settings, "slow", 0, speed_mps=0.2)) as (robot,),
        ):
            mission_id = await _mission(client, 6, 8)
            await _until_event(client, mission_id, "started")
            await eventually(lambda: robot.driving, WAIT_S)
            response = await client.post(f"/v1/missions/{mission_id}/cancel", json={})
            assert response.status_code == 200, response.text
            await eventually(lambda: not robot.nodes and not robot.driving, WAIT_S)
            assert robot.received_instant_actions >= 1
            assert robot.last_node_id not in (NODES[6], NODES[8])
            assert (await _get(client, mission_id))["status"] == "cancelled"

    async def test_a_thirdparty_virtual_agv_completes_a_mission(
        self, tmp_path: Path, pg_dsn: str, mqtt_namespace: str, redis_prefix: str
    ) -> None:
        """vda-5050-lib's virtual AGV (npm, unchanged) does a mission created through the
        API: its pick and drop require ``stationType``/``loadType`` parameters, which
        ``[dispatch.robot_actions]`` gives its manufacturer's orders."""
        folder = await asyncio.to_thread(thirdparty_installed)
        floor = {"parameters": {"stationType": "floor", "loadType": "EPAL"}}
        settings = _settings(
            tmp_path,
            pg_dsn,
            mqtt_namespace,
            redis_prefix,
            robot_actions={"thirdparty": {"pick": floor, "drop": floor}},
        )
        opts = {
            "brokerUrl": f"mqtt://{settings.mqtt.host}:{settings.mqtt.port}",
            "interfaceName": settings.mqtt.vda_interface,
            "manufacturer": "thirdparty",
            "serialNumber": f"tp-{uuid.uuid4().hex[:6]}",
            "mapId": MAP_ID,
            "x": 0.0,
            "y": 0.0,
            "lastNodeId": NODES[0],
        }
        async with running_daemon(settings) as d:
            proc = await asyncio.create_subprocess_exec(
                "node",
                "virtual_agv.js",
                json.dumps(opts),
                cwd=folder,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            try:
                assert proc.stdout is not None
                line = await asyncio.wait_for(proc.stdout.readline(), WAIT_S)
                assert line.strip() == b"ready", line
                async with api_client(d.base_url, await operator_token(settings)) as client:
                    mission_id = await _mission(client, 1, 3)
                    await _until_status(client, mission_id, "completed")
                    events = await _events(client, mission_id)
            finally:
                if proc.returncode is None:
                    proc.terminate()
                await asyncio.wait_for(proc.wait(), WAIT_S)
        for step in ("assigned", "pickup_completed", "dropoff_completed", "completed"):
            assert step in events, (step, events)
        assert "unassigned" not in events and "reassigned" not in events

"""A virtual VDA 5050 v2.0 robot: one MQTT connection with a Last Will, like a real one.

It deliberately builds its messages as plain JSON from the standard, not from fleetd's own
models: it stands in for a robot "built by someone else", so a test that passes with it
shows fleetd follows the standard, not itself. The tests validate its output against the
official JSON schemas.

Behaviour: publishes ``connection`` ONLINE (retained) on connect with Last Will
CONNECTIONBROKEN (retained), ``state`` every ``state_interval_s`` and on every change;
executes released order nodes in sequence at ``speed_mps`` along straight edges; runs
``pick``/``drop`` (a few seconds each) and ``startCharging``/``stopCharging`` actions;
obeys instant actions ``startPause``, ``stopPause``, ``cancelOrder``, ``startCharging``,
``stopCharging``, ``stateRequest``; drains its battery while powered and moving and
charges while charging.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiomqtt
import structlog

log = structlog.get_logger(__name__)

_ACTION_SECONDS = {"pick": 3.0, "drop": 3.0}


@dataclass
class RobotSpec:
    manufacturer: str
    serial: str
    map_id: str = "campus"
    x: float = 0.0
    y: float = 0.0
    theta: float = 0.0
    speed_mps: float = 1.2
    battery_pct: float = 90.0
    #: Percent per second while powered, per metre while moving, and charged per second.
    idle_drain_pct_s: float = 0.005
    move_drain_pct_m: float = 0.02
    charge_pct_s: float = 0.5


@dataclass
class _Action:
    action_id: str
    action_type: str
    status: str = "WAITING"  # WAITING INITIALIZING RUNNING PAUSED FINISHED FAILED
    remaining_s: float = 0.0
    description: str = ""

    def to_state(self) -> dict[str, Any]:
        return {
            "actionId": self.action_id,
            "actionType": self.action_type,
            "actionStatus": self.status,
            "actionDescription": self.description,
        }


@dataclass
class _Node:
    node_id: str
    sequence_id: int
    released: bool
    x: float | None
    y: float | None
    actions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Edge:
    edge_id: str
    sequence_id: int
    released: bool
    start_node_id: str
    end_node_id: str


class VirtualRobot:
    """One simulated robot. ``await robot.run()`` until cancelled."""

    def __init__(
        self,
        spec: RobotSpec,
        *,
        host: str = "127.0.0.1",
        port: int = 1883,
        prefix: str = "uagv/v2",
        state_interval_s: float = 1.0,
        tick_s: float = 0.1,
    ) -> None:
        self.spec = spec
        self._host, self._port = host, port
        self._base = f"{prefix}/{spec.manufacturer}/{spec.serial}"
        self._state_interval = state_interval_s
        self._tick = tick_s
        self._headers: dict[str, int] = {}
        self.x, self.y, self.theta = spec.x, spec.y, spec.theta
        self.battery = spec.battery_pct
        self.charging = False
        self.paused = False
        self.driving = False
        self.order_id = ""
        self.order_update_id = 0
        self.last_node_id = ""
        self.last_node_seq = 0
        self.nodes: list[_Node] = []
        self.edges: list[_Edge] = []
        self.actions: dict[str, _Action] = {}
        self.errors: list[dict[str, Any]] = []
        self.received_orders = 0
        self.received_instant_actions = 0
        self._dirty = True
        self.connected = asyncio.Event()

    # --- wire ---------------------------------------------------------------------------

    def topic(self, name: str) -> str:
        return f"{self._base}/{name}"

    def _header(self, topic: str) -> dict[str, Any]:
        self._headers[topic] = self._headers.get(topic, -1) + 1
        return {
            "headerId": self._headers[topic],
            "timestamp": datetime.now(UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "version": "2.0.0",
            "manufacturer": self.spec.manufacturer,
            "serialNumber": self.spec.serial,
        }

    def connection_message(self, state: str) -> dict[str, Any]:
        return {**self._header("connection"), "connectionState": state}

    def state_message(self) -> dict[str, Any]:
        return {
            **self._header("state"),
            "orderId": self.order_id,
            "orderUpdateId": self.order_update_id,
            "lastNodeId": self.last_node_id,
            "lastNodeSequenceId": self.last_node_seq,
            "nodeStates": [
                {
                    "nodeId": n.node_id,
                    "sequenceId": n.sequence_id,
                    "released": n.released,
                    **(
                        {"nodePosition": {"x": n.x, "y": n.y, "mapId": self.spec.map_id}}
                        if n.x is not None and n.y is not None
                        else {}
                    ),
                }
                for n in self.nodes
            ],
            "edgeStates": [
                {"edgeId": e.edge_id, "sequenceId": e.sequence_id, "released": e.released}
                for e in self.edges
            ],
            "driving": self.driving,
            "paused": self.paused,
            "operatingMode": "AUTOMATIC",
            "agvPosition": {
                "x": round(self.x, 4),
                "y": round(self.y, 4),
                "theta": round(self.theta, 4),
                "mapId": self.spec.map_id,
                "positionInitialized": True,
            },
            "velocity": {
                "vx": self.spec.speed_mps if self.driving else 0.0,
                "vy": 0.0,
                "omega": 0.0,
            },
            "loads": [],
            "actionStates": [a.to_state() for a in self.actions.values()],
            "batteryState": {"batteryCharge": round(self.battery, 2), "charging": self.charging},
            "errors": list(self.errors),
            "information": [],
            "safetyState": {"eStop": "NONE", "fieldViolation": False},
        }

    # --- behaviour ----------------------------------------------------------------------

    def on_order(self, msg: dict[str, Any]) -> None:
        self.received_orders += 1
        order_id = str(msg.get("orderId", ""))
        update_id = int(msg.get("orderUpdateId", 0))
        if order_id == self.order_id and update_id <= self.order_update_id and self.order_id:
            return  # a resend of what we have: the standard says ignore it
        nodes = sorted(msg.get("nodes", []), key=lambda n: n.get("sequenceId", 0))
        edges = sorted(msg.get("edges", []), key=lambda e: e.get("sequenceId", 0))
        self.order_id, self.order_update_id = order_id, update_id
        self.nodes = [
            _Node(
                n["nodeId"],
                int(n["sequenceId"]),
                bool(n.get("released", True)),
                (n.get("nodePosition") or {}).get("x"),
                (n.get("nodePosition") or {}).get("y"),
                list(n.get("actions", [])),
            )
            for n in nodes
        ]
        self.edges = [
            _Edge(
                e["edgeId"],
                int(e["sequenceId"]),
                bool(e.get("released", True)),
                e["startNodeId"],
                e["endNodeId"],
            )
            for e in edges
        ]
        for node in self.nodes:
            for a in node.actions:
                self.actions[a["actionId"]] = _Action(a["actionId"], a["actionType"])
        self._dirty = True

    def on_instant_actions(self, msg: dict[str, Any]) -> None:
        self.received_instant_actions += 1
        for a in msg.get("actions", []):
            kind = a.get("actionType")
            action = _Action(a.get("actionId", ""), kind or "", status="FINISHED")
            if kind == "startPause":
                self.paused = True
                self.driving = False
            elif kind == "stopPause":
                self.paused = False
            elif kind == "cancelOrder":
                self.nodes.clear()
                self.edges.clear()
                self.driving = False
                for other in self.actions.values():
                    if other.status not in ("FINISHED", "FAILED"):
                        other.status = "FAILED"
            elif kind == "startCharging":
                self.charging = True
            elif kind == "stopCharging":
                self.charging = False
            elif kind == "stateRequest":
                pass
            else:
                action.status = "FAILED"
                action.description = f"unsupported instant action {kind}"
            self.actions[action.action_id] = action
        self._dirty = True

    def step(self, dt: float) -> None:
        """Advance the simulation by ``dt`` seconds."""
        self.battery = max(0.0, self.battery - self.spec.idle_drain_pct_s * dt)
        if self.charging:
            self.battery = min(100.0, self.battery + self.spec.charge_pct_s * dt)
            if self.battery >= 100.0:
                self.charging = False
                self._dirty = True
        running = [a for a in self.actions.values() if a.status == "RUNNING"]
        for a in running:
            a.remaining_s -= dt
            if a.remaining_s <= 0:
                a.status = "FINISHED"
                self._dirty = True
        if running or self.paused or not self.nodes:
            if self.driving:
                self.driving = False
                self._dirty = True
            return
        target = self.nodes[0]
        if not target.released:
            self.driving = False
            return
        if target.x is None or target.y is None:
            self._arrive(target)
            return
        dx, dy = target.x - self.x, target.y - self.y
        dist = math.hypot(dx, dy)
        travel = self.spec.speed_mps * dt
        if dist <= travel:
            self.x, self.y = target.x, target.y
            self.battery = max(0.0, self.battery - self.spec.move_drain_pct_m * dist)
            self._arrive(target)
            return
        self.theta = math.atan2(dy, dx)
        self.x += dx / dist * travel
        self.y += dy / dist * travel
        self.battery = max(0.0, self.battery - self.spec.move_drain_pct_m * travel)
        if not self.driving:
            self.driving = True
            self._dirty = True

    def _arrive(self, node: _Node) -> None:
        self.nodes.pop(0)
        if self.edges and self.edges[0].end_node_id == node.node_id:
            self.edges.pop(0)
        self.last_node_id, self.last_node_seq = node.node_id, node.sequence_id
        for a in node.actions:
            action = self.actions.get(a["actionId"])
            if action is None:
                continue
            kind = a["actionType"]
            if kind == "startCharging":
                self.charging = True
                action.status = "FINISHED"
            elif kind == "stopCharging":
                self.charging = False
                action.status = "FINISHED"
            else:
                action.status = "RUNNING"
                action.remaining_s = _ACTION_SECONDS.get(kind, 1.0)
        self.driving = False
        self._dirty = True

    # --- main loop ----------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, announce, then publish state and obey orders until cancelled."""
        will = aiomqtt.Will(
            self.topic("connection"),
            json.dumps(self.connection_message("CONNECTIONBROKEN")),
            qos=1,
            retain=True,
        )
        async with aiomqtt.Client(
            self._host,
            self._port,
            identifier=f"sim-{self.spec.manufacturer}-{self.spec.serial}",
            will=will,
            keepalive=10,
        ) as client:
            await client.subscribe(self.topic("order"), qos=1)
            await client.subscribe(self.topic("instantActions"), qos=1)
            await client.publish(
                self.topic("connection"),
                json.dumps(self.connection_message("ONLINE")),
                qos=1,
                retain=True,
            )
            self.connected.set()
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._receive(client), name=f"sim.robot.{self.spec.serial}.rx")
                    tg.create_task(
                        self._publish_loop(client), name=f"sim.robot.{self.spec.serial}.tx"
                    )
            finally:
                # An orderly shutdown says goodbye; a killed process leaves it to the Last Will.
                with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                    async with asyncio.timeout(1.0):
                        await client.publish(
                            self.topic("connection"),
                            json.dumps(self.connection_message("OFFLINE")),
                            qos=1,
                            retain=True,
                        )

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            try:
                msg = json.loads(bytes(message.payload))
            except (ValueError, TypeError):
                continue
            if message.topic.matches(self.topic("order")):
                self.on_order(msg)
            elif message.topic.matches(self.topic("instantActions")):
                self.on_instant_actions(msg)

    async def _publish_loop(self, client: aiomqtt.Client) -> None:
        last_state = 0.0
        last_step = time.monotonic()
        while True:
            await asyncio.sleep(self._tick)
            now = time.monotonic()
            self.step(now - last_step)
            last_step = now
            if self._dirty or now - last_state >= self._state_interval:
                await client.publish(self.topic("state"), json.dumps(self.state_message()), qos=0)
                last_state = now
                self._dirty = False
                # Finished actions are reported once more, then forgotten.
                self.actions = {
                    k: a for k, a in self.actions.items() if a.status not in ("FINISHED", "FAILED")
                }

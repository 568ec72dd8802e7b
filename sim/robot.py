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

import math
from dataclasses import dataclass, field
from typing import Any

import structlog

from sim.device import Handler, VirtualDevice
from sim.robot_orders import OrderRefused, SameOrder, SimEdge, SimNode, Where, take_order

log = structlog.get_logger(__name__)

_ACTION_SECONDS = {"pick": 3.0, "drop": 3.0, "startCharging": 0.5}
#: The error types with which the robot refuses an order (cleared by the next good one).
_ORDER_ERRORS = ("orderError", "orderUpdateError", "noRouteError", "validationError")


@dataclass
class RobotSpec:
    manufacturer: str
    serial: str
    map_id: str = "campus"
    x: float = 0.0
    y: float = 0.0
    theta: float = 0.0
    #: The layout node the robot starts on ("" when it starts off the route graph).
    last_node_id: str = ""
    speed_mps: float = 1.2
    battery_pct: float = 90.0
    #: Percent per second while powered, per metre while moving, and charged per second.
    idle_drain_pct_s: float = 0.005
    move_drain_pct_m: float = 0.02
    charge_pct_s: float = 0.5
    #: Seconds each order action runs (pick, drop, startCharging); 1 s for others.
    action_seconds: dict[str, float] = field(default_factory=lambda: dict(_ACTION_SECONDS))


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


class VirtualRobot(VirtualDevice):
    """One simulated robot. ``await robot.run()`` until cancelled."""

    report_topic = "state"
    report_qos = 0  # VDA 5050: state is QoS 0

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
        super().__init__(
            base_topic=f"{prefix}/{spec.manufacturer}/{spec.serial}",
            identity={
                "version": "2.0.0",
                "manufacturer": spec.manufacturer,
                "serialNumber": spec.serial,
            },
            client_id=f"sim-{spec.manufacturer}-{spec.serial}",
            task_name=f"sim.robot.{spec.serial}",
            host=host,
            port=port,
            report_interval_s=state_interval_s,
            tick_s=tick_s,
        )
        self.spec = spec
        self.x, self.y, self.theta = spec.x, spec.y, spec.theta
        self.battery = spec.battery_pct
        self.charging = False
        self.paused = False
        self.driving = False
        #: VDA 5050 operatingMode; tests switch it to MANUAL etc.
        self.operating_mode = "AUTOMATIC"
        self.order_id = ""
        self.order_update_id = 0
        self.last_node_id = spec.last_node_id
        self.last_node_seq = 0
        self.nodes: list[SimNode] = []
        self.edges: list[SimEdge] = []
        self.actions: dict[str, _Action] = {}
        self.errors: list[dict[str, Any]] = []
        self.received_orders = 0
        self.received_instant_actions = 0
        self._dirty = True

    # --- wire ---------------------------------------------------------------------------

    def inbound(self) -> dict[str, Handler]:
        return {"order": self.on_order, "instantActions": self.on_instant_actions}

    def report_message(self) -> dict[str, Any]:
        return self.state_message()

    def _reported(self) -> None:
        # Finished actions are reported once more, then forgotten.
        self.actions = {
            k: a for k, a in self.actions.items() if a.status not in ("FINISHED", "FAILED")
        }

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
                        {
                            "nodePosition": {
                                "x": n.x,
                                "y": n.y,
                                # Required in the state schema's nodePosition.
                                "theta": n.theta if n.theta is not None else 0.0,
                                "mapId": self.spec.map_id,
                            }
                        }
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
            "operatingMode": self.operating_mode,
            "agvPosition": {
                "x": round(self.x, 4),
                "y": round(self.y, 4),
                "theta": round(self.theta, 4),
                "mapId": self.spec.map_id,
                "positionInitialized": True,
            },
            "velocity": {
                "vx": self._speed() if self.driving else 0.0,
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
        where = Where(
            self.order_id,
            self.order_update_id,
            self.last_node_id,
            self.last_node_seq,
            self.x,
            self.y,
            self.nodes,
            self.edges,
        )
        try:
            nodes, edges = take_order(where, msg)
        except SameOrder:
            return  # a re-send of what we have: the standard says ignore it
        except OrderRefused as exc:
            self.errors = [_order_error(exc, order_id)]
            self._dirty = True
            return
        self.errors = [e for e in self.errors if e.get("errorType") not in _ORDER_ERRORS]
        if order_id != self.order_id:
            # A new order: the actions of the last one are history.
            self.actions = {
                k: a for k, a in self.actions.items() if a.status not in ("FINISHED", "FAILED")
            }
        self.order_id, self.order_update_id = order_id, int(msg.get("orderUpdateId", 0))
        self.nodes, self.edges = nodes, edges
        for node in self.nodes:
            for a in node.actions:
                self.actions.setdefault(a["actionId"], _Action(a["actionId"], a["actionType"]))
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
                pass  # _dirty below: the state goes out on the next tick
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
        travel = self._speed() * dt
        if dist <= travel:
            self.x, self.y = target.x, target.y
            self.odometer_m += dist
            self.battery = max(0.0, self.battery - self.spec.move_drain_pct_m * dist)
            self._arrive(target)
            return
        self.theta = math.atan2(dy, dx)
        self.x += dx / dist * travel
        self.y += dy / dist * travel
        self.odometer_m += travel
        self.battery = max(0.0, self.battery - self.spec.move_drain_pct_m * travel)
        if not self.driving:
            self.driving = True
            self.charging = False  # driving off unplugs it
            self._dirty = True

    def _speed(self) -> float:
        """The robot's top speed, or the edge's maxSpeed on the way to the next node."""
        edge = self.edges[0] if self.edges else None
        limit = edge.max_speed if edge is not None else None
        if limit and self.nodes and edge is not None and edge.end_node_id == self.nodes[0].node_id:
            return min(self.spec.speed_mps, limit)
        return self.spec.speed_mps

    def _arrive(self, node: SimNode) -> None:
        self.nodes.pop(0)
        if self.edges and self.edges[0].end_node_id == node.node_id:
            self.edges.pop(0)
        self.last_node_id, self.last_node_seq = node.node_id, node.sequence_id
        if node.theta is not None:
            self.theta = node.theta  # a node's theta is the heading to take on it
        for a in node.actions:
            action = self.actions.get(a["actionId"])
            if action is None:
                continue
            kind = a["actionType"]
            if kind == "startCharging":
                # Charging starts with the action; the action finishes once it has.
                self.charging = True
                action.status = "RUNNING"
                action.remaining_s = self.spec.action_seconds.get(kind, 1.0)
            elif kind == "stopCharging":
                self.charging = False
                action.status = "FINISHED"
            else:
                action.status = "RUNNING"
                action.remaining_s = self.spec.action_seconds.get(kind, 1.0)
        self.driving = False
        self._dirty = True


def _order_error(exc: OrderRefused, order_id: str) -> dict[str, Any]:
    return {
        "errorType": exc.error_type,
        "errorLevel": "WARNING",
        "errorDescription": exc.description,
        "errorReferences": [{"referenceKey": "orderId", "referenceValue": order_id}],
    }

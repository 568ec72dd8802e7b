"""A scripted driver phone speaking fleetd's driver protocol (docs/protocols/driver.md).

Like the virtual robot, it writes plain JSON from the protocol document rather than
fleetd's models, so the tests exercise the documented protocol. It drives a loop of
waypoints around the facility at ``speed_mps``, reports its status every
``status_interval_s``, accepts job offers after a short think (or declines when on a
break), reports trip progress, and obeys commands (pause, resume, cancel_job, ...).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

import structlog

from sim.device import Handler, VirtualDevice

log = structlog.get_logger(__name__)

_M_PER_DEG_LAT = 111_320.0


@dataclass
class DriverSpec:
    driver_id: str
    waypoints: list[tuple[float, float]]  # (lat, lon) loop
    speed_mps: float = 8.0
    phone_battery_pct: float = 80.0
    accept_offers: bool = True
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class ScriptedDriver(VirtualDevice):
    """One simulated driver device. ``await driver.run()`` until cancelled."""

    report_topic = "status"
    report_qos = 1

    def __init__(
        self,
        spec: DriverSpec,
        *,
        host: str = "127.0.0.1",
        port: int = 1883,
        prefix: str = "fleetd/driver/v1",
        status_interval_s: float = 2.0,
        tick_s: float = 0.2,
    ) -> None:
        super().__init__(
            base_topic=f"{prefix}/{spec.driver_id}",
            identity={"version": "1.0", "driverId": spec.driver_id},
            client_id=f"sim-driver-{spec.driver_id}",
            task_name=f"sim.driver.{spec.driver_id}",
            host=host,
            port=port,
            report_interval_s=status_interval_s,
            tick_s=tick_s,
        )
        self.spec = spec
        self._rng = random.Random(spec.seed)
        self.lat, self.lon = spec.waypoints[0]
        self.heading = 0.0
        self._next_wp = 1 % len(spec.waypoints)
        self.availability = "online"
        self.paused = False
        self.mission_id: str | None = None
        self.battery = spec.phone_battery_pct
        self.offers: list[dict[str, Any]] = []
        self.commands: list[dict[str, Any]] = []

    def inbound(self) -> dict[str, Handler]:
        return {"offer": self.on_offer, "command": self.on_command}

    def report_message(self) -> dict[str, Any]:
        return self.status_message()

    def status_message(self) -> dict[str, Any]:
        moving = not self.paused and self.availability != "break"
        msg: dict[str, Any] = {
            **self._header("status"),
            "availability": self.availability,
            "lat": round(self.lat, 7),
            "lon": round(self.lon, 7),
            "accuracyM": 5.0,
            "headingDeg": round(self.heading % 360.0, 1),
            "speedMps": self.spec.speed_mps if moving else 0.0,
            "phoneBatteryPct": round(self.battery, 1),
        }
        if self.mission_id:
            msg["missionId"] = self.mission_id
        return msg

    def step(self, dt: float) -> None:
        self.battery = max(1.0, self.battery - 0.002 * dt)
        if self.paused or self.availability == "break":
            return
        tlat, tlon = self.spec.waypoints[self._next_wp]
        cos_lat = math.cos(math.radians(self.lat))
        dy = (tlat - self.lat) * _M_PER_DEG_LAT
        dx = (tlon - self.lon) * _M_PER_DEG_LAT * cos_lat
        dist = math.hypot(dx, dy)
        travel = self.spec.speed_mps * dt
        if dist <= travel:
            self.lat, self.lon = tlat, tlon
            self._next_wp = (self._next_wp + 1) % len(self.spec.waypoints)
            return
        self.heading = math.degrees(math.atan2(dx, dy))
        self.lat += dy / dist * travel / _M_PER_DEG_LAT
        self.lon += dx / dist * travel / (_M_PER_DEG_LAT * cos_lat)

    def on_offer(self, msg: dict[str, Any]) -> None:
        self.offers.append(msg)
        accept = self.spec.accept_offers and self.availability == "online" and not self.mission_id
        response: dict[str, Any] = {
            **self._header("offerResponse"),
            "offerId": msg.get("offerId", ""),
            "decision": "accept" if accept else "decline",
        }
        if not accept:
            response["reason"] = "busy" if self.mission_id else "unavailable"
        else:
            self.mission_id = msg.get("missionId")
            self.availability = "busy"
        self.send("offerResponse", response)

    def on_command(self, msg: dict[str, Any]) -> None:
        self.commands.append(msg)
        kind = msg.get("command")
        if kind == "pause":
            self.paused = True
        elif kind == "resume":
            self.paused = False
        elif kind == "cancel_job":
            self.mission_id = None
            self.availability = "online"
        elif kind == "maintenance":
            self.availability = "break"

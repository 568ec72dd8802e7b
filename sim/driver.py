"""A scripted driver phone speaking fleetd's driver protocol (docs/protocols/driver.md).

Like the virtual robot, it writes plain JSON from the protocol document rather than
fleetd's models, so the tests exercise the documented protocol. Between jobs it drives a
loop of waypoints around the facility at ``speed_mps``; it reports its status every
``status_interval_s``. Offered a job, it accepts when free (declining with a seeded
probability ``decline_probability``, or when on a break or busy; or, with
``ignore_offers``, not answering at all, as a phone left in a pocket), then drives along
the geodesic to the pickup and the dropoff, waits ``service_s`` at each, and reports the
trip (``to_pickup``, ``arrived_pickup``, ``picked_up``, ``to_dropoff``,
``arrived_dropoff``, ``dropped_off``). It answers every command with a ``commandAck``
and obeys it (pause, resume, cancel_job, go_to_charge, maintenance). An offer that
arrives after its ``expiresAt`` is dropped unanswered, as the protocol asks.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import structlog
from pyproj import Geod

from sim.device import Handler, VirtualDevice

log = structlog.get_logger(__name__)

_GEOD = Geod(ellps="WGS84")
_COMMANDS = frozenset({"pause", "resume", "cancel_job", "go_to_charge", "maintenance"})


class TripPhase(StrEnum):
    """Where the driver is in a job."""

    TO_PICKUP = "to_pickup"
    AT_PICKUP = "at_pickup"
    TO_DROPOFF = "to_dropoff"
    AT_DROPOFF = "at_dropoff"


@dataclass
class Job:
    """An accepted job and how far the driver got with it."""

    mission_id: str
    offer_id: str
    pickup: tuple[float, float]
    dropoff: tuple[float, float]
    phase: TripPhase = TripPhase.TO_PICKUP
    #: Seconds left at the current stop (service time).
    wait_s: float = 0.0


@dataclass
class DriverSpec:
    driver_id: str
    waypoints: list[tuple[float, float]]  # (lat, lon) loop
    speed_mps: float = 8.0
    phone_battery_pct: float = 80.0
    accept_offers: bool = True
    seed: int = 0
    #: Chance (0-1, drawn from the seeded generator) of declining an offer it could take.
    decline_probability: float = 0.0
    #: Leave offers unanswered (they expire at fleetd).
    ignore_offers: bool = False
    #: Seconds spent at the pickup and at the dropoff (helping the passenger in and out).
    service_s: float = 1.0
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
        self.job: Job | None = None
        self.battery = spec.phone_battery_pct
        self.offers: list[dict[str, Any]] = []
        self.commands: list[dict[str, Any]] = []
        #: Trip events sent, in order, as (missionId, event).
        self.trip_events: list[tuple[str, str]] = []
        #: Jobs dropped on a cancel_job, and jobs completed (mission ids).
        self.cancelled: list[str] = []
        self.completed: list[str] = []

    @property
    def mission_id(self) -> str | None:
        """The mission of the job in hand, if any."""
        return self.job.mission_id if self.job is not None else None

    def inbound(self) -> dict[str, Handler]:
        return {"offer": self.on_offer, "command": self.on_command}

    def report_message(self) -> dict[str, Any]:
        return self.status_message()

    def status_message(self) -> dict[str, Any]:
        moving = not self.paused and self.availability != "break" and self._waiting() == 0.0
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

    # --- moving ---------------------------------------------------------------------------

    def step(self, dt: float) -> None:
        self.battery = max(1.0, self.battery - 0.002 * dt)
        if self.paused or self.availability == "break":
            return
        if self.job is not None:
            self._trip_step(self.job, dt)
            return
        if self._drive_to(self.spec.waypoints[self._next_wp], dt):
            self._next_wp = (self._next_wp + 1) % len(self.spec.waypoints)

    def _drive_to(self, target: tuple[float, float], dt: float) -> bool:
        """Move towards ``target`` along the geodesic; True once there."""
        tlat, tlon = target
        azimuth, _, dist = _GEOD.inv(self.lon, self.lat, tlon, tlat)
        travel = self.spec.speed_mps * dt
        if dist <= travel:
            self.lat, self.lon = tlat, tlon
            self.odometer_m += dist
            return True
        self.heading = azimuth % 360.0
        lon, lat, _ = _GEOD.fwd(self.lon, self.lat, azimuth, travel)
        self.lat, self.lon = lat, lon
        self.odometer_m += travel
        return False

    def _trip_step(self, job: Job, dt: float) -> None:
        """Drive, arrive, wait at the stop, carry on: the trip events in their order."""
        if job.phase is TripPhase.TO_PICKUP and self._drive_to(job.pickup, dt):
            job.phase, job.wait_s = TripPhase.AT_PICKUP, self.spec.service_s
            self._trip(job, "arrived_pickup")
        elif job.phase is TripPhase.AT_PICKUP:
            job.wait_s -= dt
            if job.wait_s <= 0:
                self._trip(job, "picked_up")
                job.phase = TripPhase.TO_DROPOFF
                self._trip(job, "to_dropoff")
        elif job.phase is TripPhase.TO_DROPOFF and self._drive_to(job.dropoff, dt):
            job.phase, job.wait_s = TripPhase.AT_DROPOFF, self.spec.service_s
            self._trip(job, "arrived_dropoff")
        elif job.phase is TripPhase.AT_DROPOFF:
            job.wait_s -= dt
            if job.wait_s <= 0:
                self._trip(job, "dropped_off")
                self.completed.append(job.mission_id)
                self._end_job()

    def _waiting(self) -> float:
        job = self.job
        if job is None or job.phase not in (TripPhase.AT_PICKUP, TripPhase.AT_DROPOFF):
            return 0.0
        return max(job.wait_s, 0.0) or 0.001

    def _trip(self, job: Job, event: str) -> None:
        self.trip_events.append((job.mission_id, event))
        self.send(
            "trip",
            {
                **self._header("trip"),
                "missionId": job.mission_id,
                "event": event,
                "lat": round(self.lat, 7),
                "lon": round(self.lon, 7),
            },
        )
        self._dirty = True

    def _end_job(self) -> None:
        self.job = None
        self.availability = "online"
        self._dirty = True

    # --- offers and commands --------------------------------------------------------------

    def on_offer(self, msg: dict[str, Any]) -> None:
        self.offers.append(msg)
        if self.spec.ignore_offers or _expired(msg):
            return
        free = self.availability == "online" and self.job is None
        accept = free and self.spec.accept_offers
        if accept and self.spec.decline_probability > 0:
            accept = self._rng.random() >= self.spec.decline_probability
        response: dict[str, Any] = {
            **self._header("offerResponse"),
            "offerId": msg.get("offerId", ""),
            "decision": "accept" if accept else "decline",
        }
        if not accept:
            response["reason"] = "busy" if self.job else "unavailable" if not free else "not now"
        self.send("offerResponse", response)
        if accept:
            self._take(msg)

    def _take(self, offer: dict[str, Any]) -> None:
        pickup, dropoff = offer.get("pickup", {}), offer.get("dropoff", {})
        self.job = Job(
            mission_id=str(offer.get("missionId", "")),
            offer_id=str(offer.get("offerId", "")),
            pickup=(float(pickup.get("lat", self.lat)), float(pickup.get("lon", self.lon))),
            dropoff=(float(dropoff.get("lat", self.lat)), float(dropoff.get("lon", self.lon))),
        )
        self.availability = "busy"
        self._trip(self.job, "to_pickup")

    def on_command(self, msg: dict[str, Any]) -> None:
        self.commands.append(msg)
        kind = msg.get("command")
        if kind not in _COMMANDS:
            self._ack(msg, "rejected", f"unknown command {kind!r}")
            return
        if kind == "pause":
            self.paused = True
        elif kind == "resume":
            self.paused = False
        elif kind == "cancel_job":
            self._cancel(msg)
        elif kind == "maintenance":
            self.availability = "break" if msg.get("enabled", True) else "online"
        self._ack(msg, "accepted")
        self._dirty = True

    def _cancel(self, msg: dict[str, Any]) -> None:
        """Drop the job the command names (by offer, else by mission, else the current one);
        a job not in hand (an offer only shown, or already done) leaves nothing to drop."""
        job = self.job
        if job is None:
            return
        offer_id, mission_id = msg.get("offerId"), msg.get("missionId")
        if offer_id is not None:
            match = offer_id == job.offer_id
        else:
            match = mission_id is None or mission_id == job.mission_id
        if match:
            self.cancelled.append(job.mission_id)
            self._end_job()

    def _ack(self, msg: dict[str, Any], result: str, reason: str | None = None) -> None:
        ack: dict[str, Any] = {
            **self._header("commandAck"),
            "correlationId": msg.get("correlationId", ""),
            "result": result,
        }
        if reason:
            ack["reason"] = reason
        self.send("commandAck", ack)


def _expired(offer: dict[str, Any]) -> bool:
    """Whether an offer's ``expiresAt`` has passed (an unreadable one counts as expired)."""
    try:
        expires = datetime.fromisoformat(str(offer.get("expiresAt", "")).replace("Z", "+00:00"))
    except ValueError:
        return True
    return expires <= datetime.now(UTC)

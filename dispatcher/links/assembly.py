"""Putting the vehicle links together: bus, inbound links, MQTT session, adapters, commander.

The order is forced by who needs whom: the inbound links need the telemetry sink and the
event bus; the MQTT session needs the links' routes; the outbox needs the session; each
adapter pairs its kind's inbound link with the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from dispatcher.config import Settings
from dispatcher.links.commander import VehicleCommander
from dispatcher.links.driver import DriverVehicles
from dispatcher.links.driver_link import DriverLink
from dispatcher.links.event_bus import VehicleEventBus
from dispatcher.links.mqtt import MqttTransport
from dispatcher.links.outbox import Outbox
from dispatcher.links.robot import RobotVehicles
from dispatcher.links.robot_link import RobotLink
from dispatcher.links.vehicle import TelemetrySink
from fleet.registry import FleetRegistry


@dataclass(frozen=True, slots=True)
class VehicleLinks:
    """Everything that talks to vehicles, built once by the supervisor."""

    events: VehicleEventBus
    robot: RobotVehicles
    driver: DriverVehicles
    transport: MqttTransport
    commander: VehicleCommander


def build_vehicle_links(
    settings: Settings,
    registry: FleetRegistry,
    redis: aioredis.Redis,
    telemetry: TelemetrySink,
    *,
    events: VehicleEventBus | None = None,
) -> VehicleLinks:
    """Build the vehicle links over one MQTT session (not connected yet: run the transport)."""
    bus = events if events is not None else VehicleEventBus()
    robot_link = RobotLink(settings, registry, telemetry, bus)
    driver_link = DriverLink(settings, registry, telemetry, bus)
    routes = [
        RobotVehicles.route_for(settings, robot_link),
        DriverVehicles.route_for(settings, driver_link),
    ]
    transport = MqttTransport(settings.mqtt, client_id=settings.mqtt_client_id, routes=routes)
    outbox = Outbox(transport, redis, key_prefix=settings.redis.key_prefix)
    robot = RobotVehicles(settings, robot_link, outbox)
    driver = DriverVehicles(settings, driver_link, outbox)
    return VehicleLinks(bus, robot, driver, transport, VehicleCommander(registry, [robot, driver]))

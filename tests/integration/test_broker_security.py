"""The daemon's MQTT session against a broker running the SHIPPED Mosquitto configuration:
client-id takeover, takeover detection, TLS, and drivers' logins naming their facility."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import gmqtt
import pytest
from gmqtt.mqtt.constants import MQTTv311

from dispatcher.config import FacilitySettings, MqttSettings, Settings
from dispatcher.links.driver_link import DriverLink
from dispatcher.links.mqtt import MqttTransport, Route
from dispatcher.links.vehicle_events import VehicleEvent
from dispatcher.metrics import MQTT_SESSION_TAKEOVERS
from dispatcher.storage.telemetry import TelemetryRow
from fleet.model import VehicleKey, VehicleKind
from fleet.record import VehicleRecord
from fleet.registry import FleetRegistry
from geo.facility_maps import FacilityMaps
from protocols.driver.codec import make_header
from tests.conftest import eventually
from tests.shipped_broker import ShippedBroker, shipped_broker

LOGINS = {"fleetd": "fleetd-pw", "acme.R1": "robot-pw"}


@pytest.fixture
def broker(tmp_path: Path, mqtt_namespace: str) -> Iterator[ShippedBroker]:
    with shipped_broker(
        tmp_path / "broker",
        LOGINS,
        "acme R1\n",
        vda_prefix=f"{mqtt_namespace}/v2",
        driver_prefix=f"{mqtt_namespace}/driver/v1",
    ) as running:
        yield running


def _settings(broker: ShippedBroker, namespace: str, **extra: object) -> MqttSettings:
    base: dict[str, object] = {
        "host": "127.0.0.1",
        "port": broker.port,
        "username": "fleetd",
        "password": LOGINS["fleetd"],
        "vda_interface": namespace,
        "persistent_session": False,
        "takeover_disconnects": 2,
        "takeover_window_s": 30.0,
    }
    return MqttSettings.model_validate({**base, **extra})


class _Running:
    def __init__(self, settings: MqttSettings, client_id: str) -> None:
        self.received: list[str] = []
        prefix = settings.vda_prefix
        route = Route("vda5050", prefix, [f"{prefix}/#"], lambda t, p, r: self.received.append(t))
        self.transport = MqttTransport(settings, client_id=client_id, routes=[route])


@contextlib.asynccontextmanager
async def _run(*sessions: _Running | _FleetdDrivers) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(s.transport.run(), name="test.mqtt") for s in sessions]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class TestClientIdTakeover:
    async def test_a_stranger_reusing_fleetds_client_id_cannot_knock_it_off(
        self, broker: ShippedBroker, mqtt_namespace: str
    ) -> None:
        """A robot's login connecting with fleetd's client id gets its own id (its
        username) from the broker: fleetd's session survives and keeps working."""
        fleetd = _Running(_settings(broker, mqtt_namespace), "fleetd-main")
        async with _run(fleetd):
            await asyncio.wait_for(fleetd.transport.wait_connected(), 15)
            stranger = gmqtt.Client("fleetd-main", clean_session=True)
            stranger.set_auth_credentials("acme.R1", LOGINS["acme.R1"])
            await stranger.connect("127.0.0.1", broker.port, version=MQTTv311)
            try:
                # A round trip after the stranger's CONNACK: had the broker dropped fleetd
                # for it, that happened before the CONNACK and this could not complete.
                topic = f"{mqtt_namespace}/v2/acme/R1/order"
                fleetd.transport.publish(topic, b"{}")
                await eventually(lambda: topic in fleetd.received, timeout=15)
                assert fleetd.transport.sessions == 1
                assert fleetd.transport.is_healthy()
            finally:
                await stranger.disconnect()

    async def test_a_fight_over_the_id_is_reported(
        self, broker: ShippedBroker, mqtt_namespace: str
    ) -> None:
        """Two clients on fleetd's own login (a second fleetd, or leaked credentials) keep
        knocking each other off: fleetd notices, counts it and reports itself unready."""
        before = MQTT_SESSION_TAKEOVERS._value.get()
        first = _Running(_settings(broker, mqtt_namespace), "fleetd-a")
        second = _Running(_settings(broker, mqtt_namespace), "fleetd-b")
        async with _run(first, second):
            await eventually(lambda: first.transport.takeover_suspected(), timeout=60)
            assert not first.transport.is_healthy()
            assert MQTT_SESSION_TAKEOVERS._value.get() > before

    async def test_two_daemons_on_logins_of_their_own_share_the_broker(
        self, tmp_path: Path, mqtt_namespace: str
    ) -> None:
        """An active and a standby daemon, each with its own login (gen_acl.py
        --fleetd-user per daemon) and even the same configured client id: neither knocks
        the other off, and both have fleetd's rights."""
        logins = {"fleetd-a": "a-pw", "fleetd-b": "b-pw"}
        with shipped_broker(
            tmp_path / "broker",
            logins,
            "acme R1\n",
            vda_prefix=f"{mqtt_namespace}/v2",
            driver_prefix=f"{mqtt_namespace}/driver/v1",
            fleetd_users=tuple(logins),
        ) as broker:
            daemons = [
                _Running(
                    _settings(broker, mqtt_namespace, username=user, password=pw), "fleetd-main"
                )
                for user, pw in logins.items()
            ]
            async with _run(daemons[0]):
                await asyncio.wait_for(daemons[0].transport.wait_connected(), 15)
                async with _run(daemons[1]):
                    await asyncio.wait_for(daemons[1].transport.wait_connected(), 15)
                    # Sent after the second CONNACK: a takeover would have happened before it.
                    topics = [
                        f"{mqtt_namespace}/v2/acme/R1/order",
                        f"{mqtt_namespace}/v2/acme/R1/instantActions",
                    ]
                    for daemon, topic in zip(daemons, topics, strict=True):
                        daemon.transport.publish(topic, b"{}")
                    await eventually(
                        lambda: all(set(topics) <= set(d.received) for d in daemons), timeout=15
                    )
                    assert [d.transport.sessions for d in daemons] == [1, 1]


class TestTls:
    async def test_fleetd_connects_over_tls_checking_the_broker(
        self, broker: ShippedBroker, mqtt_namespace: str
    ) -> None:
        """mqtt.tls with the deployment's CA reaches the shipped TLS listener."""
        settings = _settings(
            broker, mqtt_namespace, port=broker.tls_port, tls=True, tls_ca_file=broker.certs.ca
        )
        fleetd = _Running(settings, "fleetd-tls")
        async with _run(fleetd):
            await asyncio.wait_for(fleetd.transport.wait_connected(), 15)
            topic = f"{mqtt_namespace}/v2/acme/R1/instantActions"
            fleetd.transport.publish(topic, b"{}")
            await eventually(lambda: topic in fleetd.received, timeout=15)


# Drivers' facility from their login (issue 13, item 8) -------------------------------------

DRIVER_LOGINS = {
    "fleetd": "fleetd-pw",
    "north.anna": "anna-pw",  # a driver of facility 'north', by its login
    "south.bob": "bob-pw",
    "acme.R1": "robot-pw",  # a robot (gen_acl's default username)
}
NORTH = FacilitySettings(key="north", name="North")
SOUTH = FacilitySettings(key="south", name="South")


@dataclass
class _Recorder:
    """Telemetry sink and event bus of the driver link (no database in these tests)."""

    rows: list[TelemetryRow] = field(default_factory=list)
    events: list[VehicleEvent] = field(default_factory=list)

    def add(self, row: TelemetryRow) -> None:
        self.rows.append(row)

    def publish(self, event: VehicleEvent) -> None:
        self.events.append(event)


@pytest.fixture
def driver_broker(tmp_path: Path, mqtt_namespace: str) -> Iterator[ShippedBroker]:
    with shipped_broker(
        tmp_path / "broker",
        DRIVER_LOGINS,
        "acme R1\n",
        vda_prefix=f"{mqtt_namespace}/v2",
        driver_prefix=f"{mqtt_namespace}/driver/v1",
    ) as running:
        yield running


class _FleetdDrivers:
    """fleetd's driver link behind its MQTT session: facilities north and south, unknown
    vehicles refused, drivers' facility from their login. Every topic fleetd receives is
    recorded (both prefixes), before the link judges it."""

    def __init__(self, broker: ShippedBroker, namespace: str) -> None:
        self.settings = Settings(
            facilities=[NORTH, SOUTH],
            fleet={"unknown_vehicles": "reject", "driver_facility_from_login": True},
            mqtt=_settings(broker, namespace, driver_prefix=f"{namespace}/driver/v1"),
        )
        self.registry = FleetRegistry(
            maps=FacilityMaps(self.settings.facility_specs),
            default_facility_id=self.settings.default_facility.id,
            heartbeat_timeout_s=3600,
        )
        recorder = _Recorder()
        self.link = DriverLink(self.settings, self.registry, recorder, recorder)
        self.received: list[str] = []
        mqtt = self.settings.mqtt

        def driver(topic: str, payload: bytes, retained: bool) -> None:
            self.received.append(topic)
            self.link.handle(topic, payload, retained)

        routes = [
            Route("driver", mqtt.driver_prefix, [f"{mqtt.driver_prefix}/#"], driver),
            Route(
                "vda5050",
                mqtt.vda_prefix,
                [f"{mqtt.vda_prefix}/#"],
                lambda t, p, r: self.received.append(t),
            ),
        ]
        self.transport = MqttTransport(mqtt, client_id="fleetd-drivers", routes=routes)

    def driver(self, driver_id: str) -> VehicleRecord | None:
        return self.registry.record_by_key(VehicleKey(VehicleKind.DRIVER, "", driver_id))


@contextlib.asynccontextmanager
async def _device(broker: ShippedBroker, username: str) -> AsyncIterator[gmqtt.Client]:
    """A phone or robot logged in as ``username`` (its client id is replaced by it)."""
    client = gmqtt.Client(f"device-{username}", clean_session=True)
    client.set_auth_credentials(username, DRIVER_LOGINS[username])
    await client.connect("127.0.0.1", broker.port, version=MQTTv311)
    try:
        yield client
    finally:
        await client.disconnect()


def _connection(driver_id: str) -> bytes:
    return json.dumps({**make_header(1, driver_id), "connectionState": "ONLINE"}).encode()


class TestDriverLogins:
    """A driver's login names its facility, and the shipped ACL ties the driverId a login
    may speak for to that login: so the facility fleetd reads from a driverId is the one
    the broker authenticated. How the negative checks conclude: one client's QoS 1
    publishes reach a subscriber in the order they were sent (Mosquitto queues them as it
    reads them), so once a message sent after a forged one has arrived, the forged one
    would have arrived before it had the broker let it through."""

    async def test_a_driver_login_registers_in_its_facility_and_speaks_only_for_itself(
        self, driver_broker: ShippedBroker, mqtt_namespace: str
    ) -> None:
        fleetd = _FleetdDrivers(driver_broker, mqtt_namespace)
        prefix = fleetd.settings.mqtt.driver_prefix
        vda = fleetd.settings.mqtt.vda_prefix
        async with _run(fleetd):
            await asyncio.wait_for(fleetd.transport.wait_connected(), 15)
            async with _device(driver_broker, "north.anna") as anna:
                # Posing as a driver of another facility, and as a robot: dropped.
                anna.publish(f"{prefix}/south.bob/connection", _connection("south.bob"), qos=1)
                anna.publish(f"{prefix}/south.anna/connection", _connection("south.anna"), qos=1)
                anna.publish(f"{vda}/acme/R1/state", b"{}", qos=1)
                # Then as itself.
                anna.publish(f"{prefix}/north.anna/connection", _connection("north.anna"), qos=1)
                await eventually(lambda: fleetd.driver("north.anna") is not None, timeout=15)
            rec = fleetd.driver("north.anna")
            assert rec is not None
            assert rec.facility_id == NORTH.id and rec.facility_pinned
            assert fleetd.received == [f"{prefix}/north.anna/connection"]
            assert fleetd.driver("south.bob") is None and fleetd.driver("south.anna") is None

            # The other facility's driver, on its own login, lands in its own facility.
            async with _device(driver_broker, "south.bob") as bob:
                bob.publish(f"{prefix}/south.bob/connection", _connection("south.bob"), qos=1)
                await eventually(lambda: fleetd.driver("south.bob") is not None, timeout=15)
            bob_rec = fleetd.driver("south.bob")
            assert bob_rec is not None and bob_rec.facility_id == SOUTH.id

    async def test_a_robot_login_cannot_pose_as_a_driver(
        self, driver_broker: ShippedBroker, mqtt_namespace: str
    ) -> None:
        """A robot's username has the driver form (``acme.R1``): its ACL block's ``deny``
        keeps the driver pattern from granting it a driver's topics."""
        fleetd = _FleetdDrivers(driver_broker, mqtt_namespace)
        prefix = fleetd.settings.mqtt.driver_prefix
        own_state = f"{fleetd.settings.mqtt.vda_prefix}/acme/R1/state"
        async with _run(fleetd):
            await asyncio.wait_for(fleetd.transport.wait_connected(), 15)
            async with _device(driver_broker, "acme.R1") as robot:
                robot.publish(f"{prefix}/acme.R1/connection", _connection("acme.R1"), qos=1)
                robot.publish(own_state, b"{}", qos=1)
                await eventually(lambda: own_state in fleetd.received, timeout=15)
            assert fleetd.received == [own_state]
            assert fleetd.driver("acme.R1") is None

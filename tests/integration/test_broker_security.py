"""The daemon's MQTT session against a broker running the SHIPPED Mosquitto configuration:
client-id takeover, takeover detection, and TLS."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import gmqtt
import pytest
from gmqtt.mqtt.constants import MQTTv311

from dispatcher.config import MqttSettings
from dispatcher.links.mqtt import MqttTransport, Route
from dispatcher.metrics import MQTT_SESSION_TAKEOVERS
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
async def _run(*sessions: _Running) -> AsyncIterator[None]:
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

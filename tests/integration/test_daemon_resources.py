"""The supervisor owns the daemon's resources: the event hub and its listening task, and the
vehicle event path from the links to their consumer. An embedded daemon, real services."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from dispatcher.auth.roles import Role
from dispatcher.config import DispatchSettings, Settings
from dispatcher.daemon import Daemon
from fleet.model import VehicleKind, vehicle_id
from protocols.driver.models import JobOffer
from sim.driver import DriverSpec, ScriptedDriver
from tests.conftest import api_client, db_pool, eventually, running_daemon
from tests.unit.api.harness import new_token

WAIT_S = 15.0


@pytest.fixture
async def daemon(settings: Settings) -> AsyncIterator[Daemon]:
    async with running_daemon(settings, ready_timeout_s=20) as run:
        yield run.daemon


@pytest.fixture
async def daemon_without_dispatch(settings: Settings) -> AsyncIterator[Daemon]:
    """A daemon whose dispatch engine is off: no stream is subscribed to the hub but the
    API's."""
    off = settings.model_copy(update={"dispatch": DispatchSettings(enabled=False)})
    async with running_daemon(off, ready_timeout_s=20) as run:
        yield run.daemon


def task_names() -> set[str]:
    return {t.get_name() for t in asyncio.all_tasks()}


def offers_answered() -> float:
    sample = REGISTRY.get_sample_value("fleetd_vehicle_events_total", {"type": "OfferAnswered"})
    return sample or 0.0


class TestEventHub:
    async def test_the_hub_listens_on_the_supervisors_task_not_a_requests(
        self, daemon_without_dispatch: Daemon, settings: Settings
    ) -> None:
        daemon = daemon_without_dispatch
        assert daemon.services is not None
        async with db_pool(settings.database.dsn, max_size=1) as pool:
            secret = await new_token(pool, Role.ADMIN, None)
        base_url = f"http://127.0.0.1:{settings.api.port}"
        async with (
            api_client(base_url, secret, timeout=WAIT_S) as client,
            client.stream("GET", "/v1/events") as response,
        ):
            assert response.status_code == 200
            hub = daemon.event_hub
            assert hub is not None
            await eventually(lambda: hub.listening, timeout=WAIT_S)
            assert "fleetd.events" in task_names()
            assert "fleetd.events.listen" not in task_names()
        await eventually(lambda: not hub.listening, timeout=WAIT_S)  # last stream left
        assert hub.running and not hub.closed

    async def test_the_dispatch_engine_keeps_the_hub_listening(self, daemon: Daemon) -> None:
        """The engine's mission intake is a subscriber for the daemon's life: the hub
        listens on the supervisor's task with no API stream open."""
        hub = daemon.event_hub
        assert hub is not None and daemon.dispatch is not None
        await eventually(lambda: hub.listening and hub.subscribers == 1, timeout=WAIT_S)
        assert "fleetd.events" in task_names() and "fleetd.dispatch" in task_names()
        assert "fleetd.events.listen" not in task_names()


class TestVehicleEvents:
    async def test_a_drivers_answer_reaches_the_consumer_through_the_bus(
        self, daemon: Daemon, settings: Settings
    ) -> None:
        driver = ScriptedDriver(
            DriverSpec(f"d-{uuid.uuid4().hex[:6]}", [(52.52, 13.405)]),
            prefix=settings.mqtt.driver_prefix,
            status_interval_s=0.1,
        )
        vid = vehicle_id(VehicleKind.DRIVER, "", driver.spec.driver_id)
        task = asyncio.create_task(driver.run())
        try:
            registry = daemon.registry
            assert registry is not None and daemon.services is not None
            await eventually(lambda: (v := registry.get(vid)) is not None and v.online, WAIT_S)
            before = offers_answered()
            commander = daemon.services.commander
            assert commander is not None
            place = {"name": "Ward 3", "lat": 52.52, "lon": 13.405}
            offer = JobOffer.model_validate(
                {
                    "headerId": 0,
                    "timestamp": datetime.now(UTC),
                    "version": "1.0",
                    "driverId": "x",
                    "offerId": "offer-1",
                    "missionId": "m-1",
                    "pickup": place,
                    "dropoff": place,
                    "expiresAt": datetime.now(UTC) + timedelta(minutes=2),
                }
            )
            assert (await commander.offer_job(vid, offer)).ok
            bus = daemon.vehicle_events
            assert bus is not None
            await eventually(lambda: offers_answered() > before, WAIT_S)
            await eventually(lambda: bus.pending == 0, WAIT_S)  # the consumer took it
            # With dispatch on, its forwarder is the consumer (it logs and observes).
            assert "fleetd.dispatch.events" in task_names()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

"""Live dispatch end to end: a whole daemon, simulated driver phones, missions via the API.

Nothing here is a double: the daemon runs its dispatch engine with the real driver
channel, the phones are :class:`sim.driver.ScriptedDriver` over the broker, missions are
created and cancelled through ``/v1/missions`` with a real token, and the test reads what
happened through the same API an operator uses.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from dispatcher.config import Settings
from sim.driver import DriverSpec, ScriptedDriver
from tests.conftest import api_client, daemon_settings, eventually, running_daemon
from tests.integration.operator_tokens import operator_token

WAIT_S = 30.0


def _settings(pg_dsn: str, mqtt_namespace: str, redis_prefix: str) -> Settings:
    return daemon_settings(
        pg_dsn,
        mqtt_namespace,
        redis_prefix,
        dispatch={"tick_s": 0.5, "debounce_s": 0.05, "offer_timeout_s": 3.0, "service_s": 1},
        planner={"time_limit_s": 0.3},
    )


@asynccontextmanager
async def _drivers(
    settings: Settings, count: int, **spec: Any
) -> AsyncIterator[list[ScriptedDriver]]:
    """``count`` phones at the facility's first place, fast, answering within 50 ms."""
    first = settings.default_facility.places[0]
    phones = [
        ScriptedDriver(
            DriverSpec(
                f"e2e-{i}-{uuid.uuid4().hex[:6]}",
                [(first.lat, first.lon)],
                **{"speed_mps": 60.0, "service_s": 0.2, **spec},
            ),
            prefix=settings.mqtt.driver_prefix,
            status_interval_s=0.2,
            tick_s=0.05,
        )
        for i in range(count)
    ]
    tasks = [asyncio.create_task(p.run(), name=f"test.{p.spec.driver_id}") for p in phones]
    try:
        yield phones
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _mission(client: httpx.AsyncClient, pickup: str, dropoff: str) -> str:
    body = {"pickup": {"place": pickup}, "dropoff": {"place": dropoff}}
    response = await client.post("/v1/missions", json=body)
    assert response.status_code == 201, response.text
    mission_id: str = response.json()["id"]
    return mission_id


async def _status(client: httpx.AsyncClient, mission_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/missions/{mission_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


class TestDriversEndToEnd:
    async def test_missions_created_through_the_api_are_completed(
        self, pg_dsn: str, mqtt_namespace: str, redis_prefix: str
    ) -> None:
        """Three missions for two phones: each is offered, driven and completed, in order."""
        settings = _settings(pg_dsn, mqtt_namespace, redis_prefix)
        places = [p.name for p in settings.default_facility.places]
        async with running_daemon(settings) as d, _drivers(settings, 2):
            secret = await operator_token(settings)
            async with api_client(d.base_url, secret) as client:
                ids = [await _mission(client, places[i], places[i + 1]) for i in range(3)]

                async def all_done() -> bool:
                    statuses = [(await _status(client, m))["status"] for m in ids]
                    return all(status == "completed" for status in statuses)

                await eventually(all_done, WAIT_S)
                for mission_id in ids:
                    events = [e["event"] for e in (await _status(client, mission_id))["timeline"]]
                    assert events[0] == "created" and events[-1] == "completed"
                    for step in ("assigned", "pickup_completed", "dropoff_completed"):
                        assert step in events, (step, events)
                    assert events.index("pickup_completed") < events.index("dropoff_completed")

    async def test_a_declined_offer_goes_to_another_driver(
        self, pg_dsn: str, mqtt_namespace: str, redis_prefix: str
    ) -> None:
        """A phone that declines everything never gets the mission; the other one does it."""
        settings = _settings(pg_dsn, mqtt_namespace, redis_prefix)
        places = [p.name for p in settings.default_facility.places]
        async with (
            running_daemon(settings) as d,
            _drivers(settings, 1, decline_probability=1.0) as decliners,
        ):
            secret = await operator_token(settings)
            async with api_client(d.base_url, secret) as client:
                mission_id = await _mission(client, places[0], places[1])

                async def declined() -> bool:
                    events = [e["event"] for e in (await _status(client, mission_id))["timeline"]]
                    return "declined" in events

                await eventually(declined, WAIT_S)
                async with _drivers(settings, 1) as takers:

                    async def completed() -> bool:
                        return bool((await _status(client, mission_id))["status"] == "completed")

                    await eventually(completed, WAIT_S)
                    done = await _status(client, mission_id)
                    assert done["vehicle_id"] is not None
                    assert decliners[0].spec.driver_id != takers[0].spec.driver_id

    async def test_an_expired_offer_goes_to_another_driver(
        self, pg_dsn: str, mqtt_namespace: str, redis_prefix: str
    ) -> None:
        """A phone that never answers lets the offer expire (``expired``, back to pending);
        the next driver gets it as ``reassigned`` with reason ``offer_expired``, and the
        silent phone is not offered it again."""
        settings = _settings(pg_dsn, mqtt_namespace, redis_prefix)
        places = [p.name for p in settings.default_facility.places]
        async with (
            running_daemon(settings) as d,
            _drivers(settings, 1, ignore_offers=True) as silent,
        ):
            secret = await operator_token(settings)
            async with api_client(d.base_url, secret) as client:
                mission_id = await _mission(client, places[0], places[1])

                async def expired() -> bool:
                    events = [e["event"] for e in (await _status(client, mission_id))["timeline"]]
                    return "expired" in events

                await eventually(expired, WAIT_S)
                async with _drivers(settings, 1):

                    async def completed() -> bool:
                        return bool((await _status(client, mission_id))["status"] == "completed")

                    await eventually(completed, WAIT_S)
                done = await _status(client, mission_id)
        [lapsed] = [e for e in done["timeline"] if e["event"] == "expired"]
        [again] = [e for e in done["timeline"] if e["event"] == "reassigned"]
        assert lapsed["details"]["reason"] == "offer_expired"
        assert again["details"]["reason"] == "offer_expired"
        assert again["vehicle_id"] == done["vehicle_id"] != lapsed["vehicle_id"]
        offered_to = {e["vehicle_id"] for e in done["timeline"] if e["event"] == "offered"}
        assert len(offered_to) == 2, silent[0].spec.driver_id

    async def test_a_cancel_stops_the_driver(
        self, pg_dsn: str, mqtt_namespace: str, redis_prefix: str
    ) -> None:
        """Cancelling an assigned mission withdraws the job from the phone that had it."""
        settings = _settings(pg_dsn, mqtt_namespace, redis_prefix)
        places = [p.name for p in settings.default_facility.places]
        async with running_daemon(settings) as d, _drivers(settings, 1, speed_mps=0.5) as phones:
            secret = await operator_token(settings)
            async with api_client(d.base_url, secret) as client:
                mission_id = await _mission(client, places[0], places[-1])

                async def assigned() -> bool:
                    return (await _status(client, mission_id))["status"] in (
                        "assigned",
                        "in_progress",
                    )

                await eventually(assigned, WAIT_S)
                response = await client.post(f"/v1/missions/{mission_id}/cancel", json={})
                assert response.status_code == 200, response.text
                await eventually(lambda: phones[0].job is None, WAIT_S)
                assert (await _status(client, mission_id))["status"] == "cancelled"

"""A simulated vehicle that gmqtt reconnects by itself (a broker restart, a cut link)
subscribes again and says ONLINE again, as a real vehicle does: its session is clean, so
the broker has forgotten its subscriptions (found by the soak: after a broker restart
the simulated fleet took no more orders)."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import queue
from typing import Any

import aiomqtt

from sim.host import Host, HostPlan
from sim.robot import RobotSpec
from tests.conftest import eventually


async def test_a_reconnected_vehicle_subscribes_again_and_says_online(
    mqtt_namespace: str,
) -> None:
    prefix = f"{mqtt_namespace}/v2/reconnect"
    plan = HostPlan(
        index=0,
        host="127.0.0.1",
        port=1883,
        username=None,
        password=None,
        vda_prefix=prefix,
        driver_prefix=f"{mqtt_namespace}/drivers",
        robots=(RobotSpec(manufacturer="reconnect", serial="R1"),),
        drivers=(),
        state_interval_s=1.0,
        driver_status_interval_s=1.0,
        time_scale=1.0,
        faults=(),
    )
    out: queue.Queue[Any] = queue.Queue()
    host = Host(plan, out, multiprocessing.Event(), multiprocessing.Value("d", 0.0))
    slot = host.slots[0]
    online_seen: list[str] = []

    async with aiomqtt.Client("127.0.0.1", 1883) as watcher:
        await watcher.subscribe(slot.device.topic("connection"), qos=1)

        async def watch() -> None:
            async for message in watcher.messages:
                body = json.loads(bytes(message.payload))
                online_seen.append(str(body.get("connectionState")))

        watching = asyncio.create_task(watch())
        try:
            await host.connect(slot)
            await eventually(lambda: online_seen.count("ONLINE") >= 1, 10)
            assert slot.client is not None
            # Cut the link under gmqtt (no DISCONNECT), leaving its reconnect on.
            slot.client._connection._transport.abort()
            await eventually(lambda: online_seen.count("ONLINE") >= 2, 15)
            before = host.received
            order_topic = slot.device.topic("instantActions")
            for _ in range(20):  # until the new subscription has been granted
                await watcher.publish(order_topic, json.dumps({"actions": []}), qos=1)
                await asyncio.sleep(0.2)
                if host.received > before:
                    break
            assert host.received > before
        finally:
            watching.cancel()
            await host.disconnect(slot, clean=True)


async def test_a_vanished_vehicle_stays_away_until_the_fault_brings_it_back(
    mqtt_namespace: str,
) -> None:
    """The ``vanish`` fault cuts the link with no DISCONNECT: the broker publishes the Last
    Will, and gmqtt must not reconnect by itself (it did 2 s later, and then fought the
    vehicle's next connection for its client id, so fleetd saw no second vanish)."""
    plan = HostPlan(
        index=0,
        host="127.0.0.1",
        port=1883,
        username=None,
        password=None,
        vda_prefix=f"{mqtt_namespace}/v2/vanish",
        driver_prefix=f"{mqtt_namespace}/drivers",
        robots=(RobotSpec(manufacturer="vanish", serial="V1"),),
        drivers=(),
        state_interval_s=1.0,
        driver_status_interval_s=1.0,
        time_scale=1.0,
        faults=(),
    )
    host = Host(plan, queue.Queue(), multiprocessing.Event(), multiprocessing.Value("d", 0.0))
    slot = host.slots[0]
    seen: list[str] = []

    async with aiomqtt.Client("127.0.0.1", 1883) as watcher:
        await watcher.subscribe(slot.device.topic("connection"), qos=1)

        async def watch() -> None:
            async for message in watcher.messages:
                body = json.loads(bytes(message.payload))
                seen.append(str(body.get("connectionState")))

        watching = asyncio.create_task(watch())
        try:
            await host.connect(slot)
            await eventually(lambda: seen.count("ONLINE") >= 1, 10)
            await host.disconnect(slot, clean=False)
            await eventually(lambda: "CONNECTIONBROKEN" in seen, 10)
            # gmqtt's reconnect delay is 2 s: well past it, still gone.
            await asyncio.sleep(5.0)
            assert seen[-1] == "CONNECTIONBROKEN" and seen.count("ONLINE") == 1, seen
            await host.connect(slot)  # the fault's end
            await eventually(lambda: seen.count("ONLINE") >= 2, 10)
            await asyncio.sleep(4.0)  # and no fight over the client id afterwards
            assert (
                seen[-1] == "ONLINE" and "CONNECTIONBROKEN" not in seen[seen.index("ONLINE", 1) :]
            )
        finally:
            watching.cancel()
            await host.disconnect(slot, clean=True)

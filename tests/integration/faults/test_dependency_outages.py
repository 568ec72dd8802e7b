"""The broker restarted, Redis flushed and restarted, robot states duplicated and replayed,
each under a running daemon, simulated robots and a continuous mission workload."""

from __future__ import annotations

import asyncio
import json
import time

import aiomqtt
import httpx
import redis.asyncio as aioredis

from tests.conftest import eventually
from tests.integration.faults.conftest import FleetdProcess, SimProcess, Stack
from tests.integration.faults.scenario import run_scenario


async def _metric(stack: Stack, name: str, label: str = "") -> float:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=3) as client:
        text = (await client.get("/metrics")).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and label in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_broker_restart_keeps_missions_and_vehicles(
    stack: Stack, fleetd: FleetdProcess, sim: SimProcess
) -> None:
    """A broker away for 3 s: fleetd reconnects (jittered), the robots too; nobody is
    declared offline for fleetd's own cut-off, nor for the Last Wills the broker publishes
    as it shuts down (issue 18: every leg was lost, robots drove on while their missions
    went to others, a rider on board was held for an operator); the missions all finish."""

    async def fault() -> None:
        await asyncio.to_thread(stack.broker.restart, 3.0)

    outcome = await run_scenario(stack, fleetd, sim, fault, missions=10, per_second=1.5)
    assert not outcome.not_final, f"not final: {outcome.not_final}\n{fleetd.tail()}"
    assert outcome.report.ok, outcome.report.describe()
    assert await _metric(stack, "fleetd_mqtt_reconnects_total") >= 1
    assert fleetd.log_events("liveness.resumed_after_broker_outage") >= 1


async def test_redis_flush_and_restart_rebuild_the_live_index(
    stack: Stack, fleetd: FleetdProcess, sim: SimProcess
) -> None:
    """FLUSHALL, then Redis down for 2 s: candidates come from PostGIS meanwhile, the
    GEO index is written again from the registry, and the missions all finish."""

    async def fault() -> None:
        await stack.redis.flushall()
        client = aioredis.from_url(stack.redis.url)
        try:
            key = f"{stack.namespace}:geo:written"

            async def rebuilt() -> bool:
                return bool(await client.exists(key))

            await eventually(rebuilt, timeout=15)
        finally:
            await client.aclose()
        await asyncio.to_thread(stack.redis.restart, 2.0)

    outcome = await run_scenario(stack, fleetd, sim, fault, missions=10, per_second=1.5)
    assert not outcome.not_final, f"not final: {outcome.not_final}\n{fleetd.tail()}"
    assert outcome.report.ok, outcome.report.describe()
    assert fleetd.log_events("live_positions.rebuilding") >= 2  # start, flush (and restart)
    client = aioredis.from_url(stack.redis.url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{stack.namespace}:geo:*")]
    finally:
        await client.aclose()
    assert len(keys) >= 2, keys  # the marker and at least one facility's index


async def test_duplicated_and_replayed_robot_states_change_nothing_twice(
    stack: Stack, fleetd: FleetdProcess, sim: SimProcess
) -> None:
    """Every robot state is published again at once (a duplicate) and 1 s later (a late,
    reordered copy) for 8 s: refused as replayed; the histories hold no step twice."""
    replayed = 0

    async def fault() -> None:
        nonlocal replayed
        later: list[tuple[float, str, bytes]] = []
        async with aiomqtt.Client("127.0.0.1", stack.broker.port) as client:
            await client.subscribe(f"{stack.vda_prefix}/+/+/state")
            end = time.monotonic() + 8.0
            async with asyncio.timeout(12.0):
                async for msg in client.messages:
                    state = json.loads(bytes(msg.payload))
                    if state.get("_replayed"):
                        continue  # our own copy coming back
                    # The same state (same headerId and timestamp), marked so this loop
                    # does not copy its copies; fleetd ignores fields it does not know.
                    payload = json.dumps({**state, "_replayed": True}).encode()
                    now = time.monotonic()
                    if now > end:
                        break
                    topic = str(msg.topic)
                    await client.publish(topic, payload)
                    later.append((now + 1.0, topic, payload))
                    while later and later[0][0] <= now:
                        _, t, p = later.pop(0)
                        await client.publish(t, p)
                        replayed += 1

    outcome = await run_scenario(stack, fleetd, sim, fault, missions=10, per_second=1.5)
    assert not outcome.not_final, f"not final: {outcome.not_final}\n{fleetd.tail()}"
    assert outcome.report.ok, outcome.report.describe()
    assert replayed > 0
    rejected = await _metric(stack, "fleetd_messages_rejected_total", 'reason="replayed"')
    assert rejected >= replayed

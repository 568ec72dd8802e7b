"""``fleetd sim run`` stopped (Ctrl-C, SIGTERM) while a mission is being created: the
mission fleetd created is in the run's record, and no mission is created after the stop."""

from __future__ import annotations

import asyncio
import time

import httpx

from sim.live import LiveState, _create_missions, _stop_workload
from sim.workload_draw import DrawnMission


def _mission(n: int, created_s: float) -> DrawnMission:
    return DrawnMission(f"w{n}", created_s, "normal", "robot", "Entrance", "Ward A")


async def test_a_mission_created_at_the_stop_is_in_the_record() -> None:
    sent: list[str] = []
    in_flight = asyncio.Event()
    answer = asyncio.Event()

    async def fleetd(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        in_flight.set()
        await answer.wait()  # fleetd creates the mission while the stop comes
        return httpx.Response(201, json={"id": f"m{len(sent)}"})

    # The first mission is due now, the second long after the stop.
    state = LiveState(t0=time.time(), time_scale=1.0)
    planned = [_mission(1, 0.0), _mission(2, 3600.0)]
    transport = httpx.MockTransport(fleetd)
    async with httpx.AsyncClient(transport=transport, base_url="http://fleetd") as client:
        workload = asyncio.create_task(_create_missions(client, planned, state, "demo"))
        await in_flight.wait()
        stopping = asyncio.create_task(_stop_workload(state, workload))
        await asyncio.sleep(0)  # the stop has begun: Ctrl-C while the request is out
        assert state.no_more_missions.is_set() and not stopping.done()
        answer.set()
        await stopping
    assert workload.done() and not workload.cancelled()
    assert list(state.missions) == ["m1"]  # recorded, and nothing created after the stop
    assert sent == ["/v1/missions"]


async def test_a_stop_between_missions_ends_the_workload_at_once() -> None:
    """Waiting for the next mission's time, the workload ends at the stop (it does not sit
    out the wait)."""
    state = LiveState(t0=time.time(), time_scale=1.0)

    def fleetd(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no mission is due")

    transport = httpx.MockTransport(fleetd)
    async with httpx.AsyncClient(transport=transport, base_url="http://fleetd") as client:
        workload = asyncio.create_task(
            _create_missions(client, [_mission(1, 3600.0)], state, "demo")
        )
        await asyncio.sleep(0)
        await _stop_workload(state, workload)
    assert workload.done() and not workload.cancelled() and state.missions == {}

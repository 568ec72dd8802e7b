"""One fault scenario: a simulated fleet, a steady workload, a fault in the middle, checks.

:func:`run_scenario` starts the robots and an :class:`OrderTap`, waits until every robot
has reported (on a loaded machine the simulator takes seconds to start, and a fault that
strikes before the fleet is there tests nothing), creates ``missions`` missions through
the API at ``per_second``, calls ``fault`` once the workload is under way (it may kill and
restart anything), waits until every accepted mission is final and returns the
invariants' :class:`Report`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from dispatcher.config import Settings
from sim.invariants import OrderTap, Report, check_all, wait_settled
from tests.conftest import db_pool, eventually
from tests.integration.faults.conftest import (
    FleetdProcess,
    MissionWorkload,
    SimProcess,
    Stack,
    operator_token,
)

#: Longest a workload may take to finish after the fault (a loaded CI machine).
SETTLE_S = 90.0
#: Longest the simulated fleet may take to report for the first time.
FLEET_UP_S = 60.0


@dataclass
class Outcome:
    report: Report
    workload: MissionWorkload
    not_final: list[object]


async def workload_for(stack: Stack, *, per_second: float = 2.0) -> MissionWorkload:
    """Missions between the places of the default facility that robots can reach."""
    facility = Settings().default_facility
    token = await operator_token(stack.dsn, facility.id)
    places = tuple(p.name for p in facility.places if p.node_id)
    return MissionWorkload([stack.base_url], token, places, per_second=per_second)


async def run_scenario(
    stack: Stack,
    fleetd: FleetdProcess,
    sim: SimProcess,
    fault: Callable[[], Awaitable[None]],
    *,
    missions: int = 16,
    per_second: float = 2.0,
    fault_after_s: float = 3.0,
) -> Outcome:
    sim.start()
    tap = OrderTap("127.0.0.1", stack.broker.port, stack.vda_prefix)
    workload = await workload_for(stack, per_second=per_second)
    tap_task = asyncio.create_task(tap.run(), name="test.order_tap")
    try:
        await eventually(lambda: len(tap.serials) >= sim.robots, timeout=FLEET_UP_S)
        work = asyncio.create_task(workload.run(missions), name="test.workload")
        await asyncio.sleep(fault_after_s)
        await fault()
        await work
        async with db_pool(stack.dsn) as pool:
            left = await wait_settled(pool, workload.created, SETTLE_S)
            report = await check_all(pool, created=workload.created, orders=tap)
    finally:
        tap_task.cancel()
        await asyncio.gather(tap_task, return_exceptions=True)
    return Outcome(report, workload, list(left))

"""kill -9 of the daemon in the middle of a mission workload, then a restart.

Every mission the API accepted is there afterwards and ends final; the histories follow
the lifecycle, no vehicle held two missions and no two robots drove one mission; the
audit chain verifies. The workload keeps re-sending unanswered requests with their
Idempotency-Key, so a request cut off by the kill is neither lost nor doubled.
"""

from __future__ import annotations

import asyncio

from tests.integration.faults.conftest import FleetdProcess, SimProcess, Stack
from tests.integration.faults.scenario import run_scenario


async def test_kill_9_and_restart_loses_and_doubles_nothing(
    stack: Stack, fleetd: FleetdProcess, sim: SimProcess
) -> None:
    async def fault() -> None:
        for _ in range(2):
            fleetd.kill9()
            await asyncio.sleep(1.0)
            fleetd.start()
            await fleetd.wait_ready()
            await asyncio.sleep(3.0)

    sim.robots = 8
    outcome = await run_scenario(stack, fleetd, sim, fault, missions=10, per_second=1.5)
    assert len(outcome.workload.created) == 10
    assert not outcome.not_final, f"not final: {outcome.not_final}\n{fleetd.tail()}"
    assert outcome.report.ok, outcome.report.describe()

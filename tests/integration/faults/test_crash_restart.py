"""kill -9 of the daemon in the middle of a mission workload, then a restart.

Every mission the API accepted is there afterwards and ends final; the histories follow
the lifecycle, no vehicle held two missions and no two robots drove one mission; the
audit chain verifies. The workload keeps re-sending unanswered requests with their
Idempotency-Key, so a request cut off by the kill is neither lost nor doubled. The first
kill waits for a rider on board, so the restart must hand that rider's drop-off back to
the same robot.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from tests.integration.faults.conftest import FleetdProcess, SimProcess, Stack
from tests.integration.faults.scenario import run_scenario

_RIDER_ON_BOARD = """
SELECT count(*) FROM missions m
WHERE m.status = 'in_progress' AND EXISTS (
    SELECT 1 FROM mission_events e WHERE e.mission_id = m.id AND e.event = 'pickup_completed')
"""


async def _rider_on_board(dsn: str, timeout_s: float) -> bool:
    """Wait until some mission has its rider on board (False if none within the time)."""
    conn = await asyncpg.connect(dsn)
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while not await conn.fetchval(_RIDER_ON_BOARD):  # noqa: ASYNC110 - polling the DB
                    await asyncio.sleep(0.05)
                return True
    finally:
        await conn.close()
    return False


async def test_kill_9_and_restart_loses_and_doubles_nothing(
    stack: Stack, fleetd: FleetdProcess, sim: SimProcess
) -> None:
    on_board = False

    async def fault() -> None:
        nonlocal on_board
        for i in range(2):
            if i == 0:
                on_board = await _rider_on_board(stack.dsn, 30.0)
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
    assert on_board, "no rider was on board at the first kill"
    assert fleetd.log_events("dispatch.recovering_rider_on_board") >= 1, fleetd.tail()
    assert fleetd.log_events("dispatch.rider_resumed") >= 1, fleetd.tail()

"""PostgreSQL restarted (and away for seconds) under a running daemon and workload.

Mission events and audit rows written while it is away go to the local spool and are
flushed in order when it is back: every accepted mission ends final, the histories hold,
the audit chain verifies, and readiness said "degraded" meanwhile.
"""

from __future__ import annotations

import asyncio

import asyncpg
import httpx

from tests.integration.faults.conftest import FleetdProcess, SimProcess, Stack
from tests.integration.faults.scenario import run_scenario


async def test_postgres_restart_loses_no_event(
    stack: Stack, fleetd: FleetdProcess, sim: SimProcess
) -> None:
    seen: list[dict[str, list[str]]] = []

    async def fault() -> None:
        await asyncio.to_thread(stack.pg.stop, "immediate")
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=3) as client:
            for _ in range(16):  # ~8 s away
                r = await client.get("/readyz")
                seen.append(r.json())
                await asyncio.sleep(0.5)
        await asyncio.to_thread(stack.pg.start)

    outcome = await run_scenario(stack, fleetd, sim, fault, missions=10, per_second=1.5)
    assert not outcome.not_final, f"not final: {outcome.not_final}\n{fleetd.tail()}"
    assert outcome.report.ok, outcome.report.describe()
    assert any("postgres" in s.get("degraded", []) for s in seen), seen
    assert fleetd.proc is not None and fleetd.proc.poll() is None, "the daemon died"
    conn = await asyncpg.connect(stack.dsn)
    try:
        spooled = await conn.fetchval("SELECT count(*) FROM spool_applied")
    finally:
        await conn.close()
    # Robots kept reporting progress while the database was away: some of it was spooled.
    assert spooled > 0, fleetd.tail()

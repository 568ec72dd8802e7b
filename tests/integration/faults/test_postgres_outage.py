"""PostgreSQL restarted (and away for seconds) under a running daemon and workload.

Mission events and audit rows written while it is away go to the local spool and are
flushed in order when it is back: every accepted mission ends final, the histories hold,
the audit chain verifies, and readiness said "degraded" meanwhile.

Run twice: with a facility lease longer than the outage (``leadership.takeover_s`` 60 s),
the daemon stays active and dispatch carries on from memory, spooling what the robots
report; with the default lease (10 s), shorter than the outage, the daemon cannot renew
it and steps down before it could expire (a standby elsewhere might take over), then
takes the facility again once the database is back: it waits for its spool to be
flushed, loads the open missions and recovers them as after a restart.
"""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest

from tests.integration.faults.conftest import FleetdProcess, SimProcess, Stack
from tests.integration.faults.scenario import run_scenario


@pytest.fixture(params=["long_lease", "default_lease"])
def stack(stack: Stack, request: pytest.FixtureRequest) -> Stack:
    """The stack, with a facility lease longer than the outage (or the default one)."""
    if request.param == "long_lease":
        stack.extra_env["FLEETD_LEADERSHIP__TAKEOVER_S"] = "60"
    return stack


async def test_postgres_restart_loses_no_event(
    stack: Stack, fleetd: FleetdProcess, sim: SimProcess
) -> None:
    long_lease = "FLEETD_LEADERSHIP__TAKEOVER_S" in stack.extra_env
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
    if long_lease:
        # Robots kept reporting progress while the database was away: some was spooled.
        assert spooled > 0, fleetd.tail()
        assert fleetd.log_events("leadership.lost") == 0, fleetd.tail()
    else:
        # The outage outlasted the lease: stepped down, then took the facility back.
        assert fleetd.log_events("leadership.lost") >= 1, fleetd.tail()
        assert fleetd.log_events("dispatch.facility_taken_over") >= 1, fleetd.tail()

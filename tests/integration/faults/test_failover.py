"""Kill the active of two daemons (``kill -9``) in the middle of a mission workload.

Two ``fleetd run`` processes share the private PostgreSQL, broker and Redis; the first
started is active for the facility, the second standby. The workload goes through the
standby's API all along (operator writes are plain database writes, accepted by any
daemon; only the leader dispatches). Once a rider is on board, the active daemon is
killed: the standby takes over when the lease expires (``leadership.takeover_s``, the
default 10 s here), loads the open missions and recovers them as a restart does (the
rider's drop-off goes back to the same robot; orders the dead leader gave are cancelled
before another robot takes a mission). Then the suite's invariants must hold: every
mission final, consistent histories, one holder at a time, no two robots driving one
mission, the audit chain verifying.

The standby does not reclaim the dead daemon's lease by its pid
(``leadership.reclaim_dead_local`` off): the two daemons play two machines, so the
takeover waits for the lease to expire.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

from dispatcher.config import Settings
from sim.harness import free_port
from tests.integration.faults.conftest import FleetdProcess, SimProcess, Stack
from tests.integration.faults.scenario import run_scenario
from tests.integration.faults.test_crash_restart import _rider_on_board

#: The default takeover time (what a deployment gets without configuring it).
TAKEOVER_S = Settings().leadership.takeover_s
#: What a loaded 2-core machine may add (the standby's poll, the load, scheduling).
MARGIN_S = 10.0


def _daemon(stack: Stack, name: str, *, own_port: bool) -> FleetdProcess:
    overrides = {
        "FLEETD_DAEMON__INSTANCE_ID": f"{name}-{stack.namespace}",
        "FLEETD_MQTT__CLIENT_ID": f"fleetd-{name}-{stack.namespace}",
        "FLEETD_DAEMON__STATE_DIR": str(Path(stack.root) / f"state-{name}"),
        "FLEETD_LEADERSHIP__RECLAIM_DEAD_LOCAL": "false",
    }
    if own_port:
        overrides["FLEETD_API__PORT"] = str(free_port())
    return FleetdProcess(stack, name=name, overrides=overrides)


async def _leadership(proc: FleetdProcess) -> dict[str, Any] | None:
    try:
        async with httpx.AsyncClient(base_url=proc.base_url, timeout=2.0) as c:
            body: dict[str, Any] = (await c.get("/readyz")).json()
    except httpx.HTTPError:
        return None
    roles: dict[str, Any] | None = body.get("leadership")
    return roles


async def test_kill_the_active_of_two_daemons(stack: Stack, sim: SimProcess) -> None:
    active = _daemon(stack, "fleetd-a", own_port=True)
    standby = _daemon(stack, "fleetd-b", own_port=False)  # the workload's API
    facility = Settings().default_facility.key
    failover_s: float | None = None
    on_board = False
    try:
        active.start()
        await active.wait_ready()
        standby.start()
        await standby.wait_ready()
        assert await _leadership(active) == {facility: "active"}, active.tail()
        assert await _leadership(standby) == {facility: "standby"}, standby.tail()

        async def fault() -> None:
            nonlocal failover_s, on_board
            on_board = await _rider_on_board(stack.dsn, 30.0)
            killed_at = time.monotonic()
            active.kill9()
            deadline = killed_at + TAKEOVER_S + MARGIN_S
            while await _leadership(standby) != {facility: "active"}:
                assert time.monotonic() < deadline, f"no takeover\n{standby.tail()}"
                await asyncio.sleep(0.1)
            failover_s = time.monotonic() - killed_at

        sim.robots = 8
        outcome = await run_scenario(stack, standby, sim, fault, missions=12, per_second=1.5)
    finally:
        active.kill9()
        standby.kill9()
    print(f"failover after kill -9: {failover_s:.1f} s (takeover_s {TAKEOVER_S:g})")  # noqa: T201 - the figure
    assert len(outcome.workload.created) == 12
    assert not outcome.not_final, f"not final: {outcome.not_final}\n{standby.tail()}"
    assert outcome.report.ok, outcome.report.describe()
    assert on_board, "no rider was on board at the kill"
    assert failover_s is not None and failover_s < TAKEOVER_S + MARGIN_S
    assert standby.log_events("leadership.acquired") == 1, standby.tail()
    assert standby.log_events("dispatch.facility_taken_over") == 1, standby.tail()
    # The standby wrote no mission event before it took over, the dead leader none after.
    assert active.log_events("dispatch.write_fenced_out") == 0


async def test_sigterm_hands_over_at_once(stack: Stack) -> None:
    """SIGTERM: the active daemon stops dispatching, releases its lease and exits 0; the
    standby is active at its next poll, long before the lease would have expired."""
    active = _daemon(stack, "fleetd-a", own_port=True)
    standby = _daemon(stack, "fleetd-b", own_port=False)
    facility = Settings().default_facility.key
    try:
        active.start()
        await active.wait_ready()
        standby.start()
        await standby.wait_ready()
        assert await _leadership(standby) == {facility: "standby"}, standby.tail()
        stopping = time.monotonic()
        assert active.proc is not None
        active.proc.terminate()  # SIGTERM; the exit status is checked below
        while await _leadership(standby) != {facility: "active"}:
            assert time.monotonic() - stopping < TAKEOVER_S, f"no handover\n{standby.tail()}"
            await asyncio.sleep(0.1)
        handover_s = time.monotonic() - stopping
        status = await asyncio.to_thread(active.proc.wait, 30)
        assert status == 0, active.tail()
    finally:
        active.kill9()
        standby.kill9()
    print(f"handover after SIGTERM: {handover_s:.1f} s")  # noqa: T201
    assert active.log_events("leadership.released") == 1, active.tail()

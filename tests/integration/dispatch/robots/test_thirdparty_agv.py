"""A VDA 5050 virtual AGV that fleetd did not write completes an order from fleetd.

The AGV is the npm package vda-5050-lib (its AgvController with the VirtualAgvAdapter,
unchanged), pinned in tests/thirdparty/package-lock.json and installed with ``npm ci``
into tests/thirdparty/node_modules on first use. It connects to the test broker under the
test's own interface name; fleetd's robot channel sends it a charge leg along the
corridor; it drives, charges, and its state shows the order finished.

That AGV's own ``pick``/``drop`` actions require vendor parameters (``stationType``
"floor…", ``loadType`` "EPAL"): fleetd gives them through ``[dispatch.robot_actions]``, and
tests/integration/dispatch/test_robots_end_to_end.py has this AGV complete a whole mission
through the daemon that way. Here the charge leg exercises the channel's order path
(nodes, edges, positions, a HARD node action) without that vendor detail.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dispatcher.dispatch.legs import LegProgressKind, Stop, StopAction
from dispatcher.links.vehicle_events import OrderStateSeen
from fleet.model import VehicleKind, vehicle_id
from tests.conftest import eventually
from tests.integration.dispatch.robots.conftest import WAIT_S, Loop

HERE = Path(__file__).resolve().parents[3] / "thirdparty"
K = LegProgressKind


def _installed() -> Path:
    """The package's folder, ``npm ci`` run first if needed; skips when npm is missing."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        pytest.skip("node/npm are not installed: the third-party VDA 5050 AGV cannot run")
    marker = HERE / "node_modules" / "vda-5050-lib" / "package.json"
    if not marker.exists():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True, timeout=300)
    return HERE


@pytest.fixture
async def agv(loop: Loop) -> AsyncIterator[uuid.UUID]:
    folder = await asyncio.to_thread(_installed)
    serial = f"tp-{uuid.uuid4().hex[:6]}"
    opts = {
        "brokerUrl": f"mqtt://{loop.settings.mqtt.host}:{loop.settings.mqtt.port}",
        "interfaceName": loop.settings.mqtt.vda_interface,
        "manufacturer": "thirdparty",
        "serialNumber": serial,
        "mapId": "campus",
        "x": 0.0,
        "y": 0.0,
        "lastNodeId": "n0",
    }
    proc = await asyncio.create_subprocess_exec(
        "node",
        "virtual_agv.js",
        json.dumps(opts),
        cwd=folder,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), WAIT_S)
        assert line.strip() == b"ready", line
        yield vehicle_id(VehicleKind.ROBOT, "thirdparty", serial)
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), WAIT_S)


async def test_a_thirdparty_virtual_agv_completes_an_order_from_fleetd(
    loop: Loop, agv: uuid.UUID
) -> None:
    await eventually(
        lambda: (
            (r := loop.registry.record(agv)) is not None and r.online and r.last_node_id == "n0"
        ),
        WAIT_S,
    )
    leg = loop.leg(agv, Stop("charger", "n4", 0, 0, StopAction.CHARGE))
    sent = await loop.channel.release(leg)
    assert sent.ok, sent.detail
    await eventually(lambda: K.FINISHED in loop.kinds(leg) or K.REFUSED in loop.kinds(leg), 60)
    assert loop.kinds(leg) == [K.ACCEPTED, K.CHARGING, K.FINISHED], loop.progress
    done = [
        e
        for e in loop.events
        if isinstance(e, OrderStateSeen) and e.vehicle_id == agv and e.order_id == leg.leg_id
    ][-1]
    assert done.last_node_id == "n4" and done.node_ids_left == ()
    rec = loop.registry.record(agv)
    assert rec is not None and rec.charging

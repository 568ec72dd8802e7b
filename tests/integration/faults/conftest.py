"""Fixtures of the fault tests: fleetd's dependencies killed and restarted at will.

The services, the stack, the daemon process and the mission workload (re-sent with its
Idempotency-Key until answered) live in :mod:`sim.harness` (the soak,
``benchmarks/soak.py``, runs on them too); this file makes fixtures of them and adds
:class:`SimProcess`: ``fleetd sim`` with N robots, in a subprocess.

Everything is torn down by the fixtures, whatever the test did. Tests here are marked
``faults`` (``pytest -m faults``). The failover test imports these fixtures and
:mod:`sim.invariants`.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sim.harness import (
    REPO,
    FleetdProcess,
    MissionWorkload,
    PrivateBroker,
    PrivatePostgres,
    PrivateRedis,
    Stack,
    operator_token,
)

__all__ = [
    "FleetdProcess",
    "MissionWorkload",
    "PrivateBroker",
    "PrivatePostgres",
    "PrivateRedis",
    "SimProcess",
    "Stack",
    "operator_token",
]

#: Longest one fault test may take (pytest-timeout), whatever it waits for.
FAULT_TEST_TIMEOUT_S = 300


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/faults/" in str(item.path):
            item.add_marker(pytest.mark.faults)
            # A daemon, a fleet and several services started, killed and restarted.
            item.add_marker(pytest.mark.timeout(FAULT_TEST_TIMEOUT_S))


@pytest.fixture(scope="session")
def private_pg() -> Iterator[PrivatePostgres]:
    """One private cluster per session (initdb is the slow part); tests restart it."""
    root = Path(tempfile.mkdtemp(prefix="fleetd-fault-pg-"))
    pg = PrivatePostgres(root)
    pg.init()
    pg.start()
    try:
        yield pg
    finally:
        pg.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


# Mosquitto ------------------------------------------------------------------------------


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    root = tmp_path / "mosquitto"
    root.mkdir()
    broker = PrivateBroker(root)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop(signal.SIGKILL)


# Redis ------------------------------------------------------------------------------------


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    root = tmp_path / "redis"
    root.mkdir()
    server = PrivateRedis(root)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# The daemon and the simulator --------------------------------------------------------------


@dataclass
class SimProcess:
    """``fleetd sim`` with ``robots`` robots (and ``drivers`` phones) in a subprocess."""

    stack: Stack
    robots: int = 6
    drivers: int = 0
    time_scale: float = 50.0
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.stack.root / "sim.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dispatcher.cli", "sim", "--robots", str(self.robots),
             "--drivers", str(self.drivers), "--time-scale", str(self.time_scale),
             "--state-interval", "0.5", "--manufacturer", f"sim{self.stack.namespace}",
             # Full batteries: at 50x a robot that starts low can reach a critical level
             # with a rider on board, and that mission is rightly held for an operator,
             # which these cases (about faults, not batteries) do not play.
             "--battery-start", "90", "100"],
            env=self.stack.env(FLEETD_DAEMON__LOG_LEVEL="warning"), cwd=REPO,
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@pytest.fixture
async def stack(
    private_pg: PrivatePostgres,
    private_broker: PrivateBroker,
    private_redis: PrivateRedis,
    tmp_path: Path,
) -> Stack:
    """A fresh database in the private cluster, a private broker and Redis."""
    if not private_pg.data.exists() or not (private_pg.data / "postmaster.pid").exists():
        private_pg.start()  # a previous test left it stopped
    dsn = await private_pg.new_database()
    root = tmp_path / "stack"
    root.mkdir()
    return Stack(dsn=dsn, broker=private_broker, redis=private_redis, pg=private_pg, root=root)


@pytest.fixture
async def fleetd(stack: Stack) -> AsyncIterator[FleetdProcess]:
    """The daemon, started and ready; killed at the end whatever happened."""
    proc = FleetdProcess(stack)
    proc.start()
    try:
        await proc.wait_ready()
        yield proc
    finally:
        proc.kill9()


@pytest.fixture
def sim(stack: Stack) -> Iterator[SimProcess]:
    """The simulated fleet (not started: the test sets its size, then calls start)."""
    fleet = SimProcess(stack)
    try:
        yield fleet
    finally:
        fleet.stop()

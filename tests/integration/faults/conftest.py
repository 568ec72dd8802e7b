"""Private services for fault tests: fleetd's dependencies killed and restarted at will.

The machine's shared PostgreSQL, Redis and Mosquitto must never be stopped (other people
run tests on them). Every fault test therefore runs against services of its own, started
here on free ports in a temporary directory:

- :class:`PrivatePostgres`: a cluster made by ``initdb`` (once per session, ~5 s) and run
  by ``pg_ctl``; PostGIS is available (``CREATE EXTENSION postgis`` works). Each test gets
  a database of its own in it (:meth:`PrivatePostgres.new_database`).
- :class:`PrivateBroker`: ``mosquitto -c`` with persistence in its directory, so a restart
  keeps persistent sessions and their queued QoS 1 messages.
- :class:`PrivateRedis`: ``redis-server`` without persistence (a restart is a flush).
- :class:`FleetdProcess`: the real daemon as a subprocess (``python -m dispatcher.cli
  run``), configured by environment variables, that can be killed with SIGKILL and
  started again on the same database and session.
- :class:`SimProcess`: ``fleetd sim`` with N robots, in a subprocess.
- :class:`MissionWorkload`: a continuous mission workload through the HTTP API, each
  request with an Idempotency-Key it keeps re-sending until answered, so a daemon killed
  mid-request never makes the test forget or double a mission.

Everything is torn down by the fixtures, whatever the test did. Tests here are marked
``faults`` (``pytest -m faults``). The other engineer's failover test imports these
fixtures and :mod:`tests.integration.faults.invariants`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest

from dispatcher.auth.roles import Role
from dispatcher.auth.tokens import create_token
from tests.conftest import REPO, free_port

#: Seconds a service or the daemon may take to come up on a loaded 2-core machine.
START_TIMEOUT_S = 60.0
#: Longest one fault test may take (pytest-timeout), whatever it waits for.
FAULT_TEST_TIMEOUT_S = 300


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/faults/" in str(item.path):
            item.add_marker(pytest.mark.faults)
            # A daemon, a fleet and several services started, killed and restarted.
            item.add_marker(pytest.mark.timeout(FAULT_TEST_TIMEOUT_S))


def _as_postgres_user() -> list[str]:
    """``initdb``/``pg_ctl`` refuse to run as root: run them as ``postgres`` then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"]
    return []


def _pg_bin(name: str) -> str:
    for candidate in (shutil.which(name), f"/usr/lib/postgresql/15/bin/{name}"):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError(f"{name} not found (PostgreSQL 15 server binaries)")


def _wait_port(
    port: int, timeout_s: float, what: str, proc: subprocess.Popen[bytes] | None
) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout_s}s")


# PostgreSQL ----------------------------------------------------------------------------


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of this test run only."""

    root: Path
    port: int = field(default_factory=free_port)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        subprocess.run(
            [*_as_postgres_user(), _pg_bin("initdb"), "-D", str(self.data), "-A", "trust",
             "-U", "postgres", "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip

    def start(self) -> None:
        opts = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=200"
        )
        subprocess.run(
            [*_as_postgres_user(), _pg_bin("pg_ctl"), "-D", str(self.data), "-l",
             str(self.root / "postgres.log"), "-w", "-t", "60", "-o", opts, "start"],
            check=True, capture_output=True, timeout=90,
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` (clean) or ``immediate`` (as if it crashed)."""
        subprocess.run(
            [*_as_postgres_user(), _pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode,
             "-w", "stop"],
            check=False, capture_output=True, timeout=90,
        )  # fmt: skip

    def restart(self, mode: str = "immediate", down_s: float = 0.0) -> None:
        self.stop(mode)
        if down_s:
            time.sleep(down_s)
        self.start()

    async def new_database(self) -> str:
        """A new empty database (the daemon migrates it on start); its DSN."""
        name = f"fleetd_fault_{uuid.uuid4().hex[:10]}"
        conn = await asyncpg.connect(self.dsn())
        try:
            await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()
        return self.dsn(name)


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

#: Queue and in-flight sizing copied from configs/mosquitto/fleetd.conf (what fleetd ships).
BROKER_SIZING = """
max_queued_messages 100000
max_queued_bytes 0
max_inflight_messages 100
persistent_client_expiration 1d
sys_interval 1
"""


@dataclass
class PrivateBroker:
    """A Mosquitto of this test only; persistence on, so a restart keeps sessions."""

    root: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        conf = self.root / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {self.root}/\nautosave_interval 1\n"
            f"log_dest file {self.root / 'mosquitto.log'}\nlog_type error\nlog_type warning\n"
            + BROKER_SIZING
        )
        if os.geteuid() == 0:
            shutil.chown(self.root, "mosquitto") if _has_user("mosquitto") else None
        self.proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)
        _wait_port(self.port, START_TIMEOUT_S, "mosquitto", self.proc)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def restart(self, down_s: float = 0.0, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        if down_s:
            time.sleep(down_s)
        self.start()


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


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


@dataclass
class PrivateRedis:
    """A redis-server of this test only, without persistence."""

    root: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.root), "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait_port(self.port, START_TIMEOUT_S, "redis-server", self.proc)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        if down_s:
            time.sleep(down_s)
        self.start()

    async def flushall(self) -> None:
        import redis.asyncio as aioredis

        client = aioredis.from_url(self.url)
        try:
            await client.flushall()
        finally:
            await client.aclose()


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
class Stack:
    """Where one test's fleetd, simulator and workload find their services."""

    dsn: str
    broker: PrivateBroker
    redis: PrivateRedis
    pg: PrivatePostgres
    root: Path
    namespace: str = field(default_factory=lambda: f"f{uuid.uuid4().hex[:8]}")
    api_port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def vda_prefix(self) -> str:
        return f"{self.namespace}/v2"

    def env(self, **overrides: str) -> dict[str, str]:
        """Environment for ``fleetd run`` / ``fleetd sim`` (FLEETD_* from the caller dropped)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETD_")}
        env.update(
            {
                "FLEETD_DATABASE__DSN": self.dsn,
                "FLEETD_REDIS__URL": self.redis.url,
                "FLEETD_REDIS__KEY_PREFIX": f"{self.namespace}:",
                "FLEETD_MQTT__PORT": str(self.broker.port),
                "FLEETD_MQTT__VDA_INTERFACE": self.namespace,
                "FLEETD_MQTT__DRIVER_PREFIX": f"{self.namespace}/driver/v1",
                "FLEETD_MQTT__CLIENT_ID": f"fleetd-{self.namespace}",
                "FLEETD_API__PORT": str(self.api_port),
                "FLEETD_DAEMON__INSTANCE_ID": f"fault-{self.namespace}",
                "FLEETD_DAEMON__LOG_FORMAT": "json",
                "FLEETD_DAEMON__STATE_DIR": str(self.root / "state"),
                "FLEETD_FLEET__UNKNOWN_VEHICLES": "register",
                "FLEETD_FLEET__HEARTBEAT_TIMEOUT_S": "5",
                "FLEETD_FLEET__ROBOT_HEARTBEAT_TIMEOUT_S": "6",
                "FLEETD_DATABASE__POSITION_FLUSH_INTERVAL_S": "0.3",
                "FLEETD_DISPATCH__TICK_S": "0.5",
                "FLEETD_DISPATCH__DEBOUNCE_S": "0.05",
                "FLEETD_PLANNER__TIME_LIMIT_S": "0.3",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        env.update(overrides)
        return env


@dataclass
class FleetdProcess:
    """``fleetd run`` in a subprocess; each (re)start appends to one log file.

    ``name`` and ``overrides`` (environment variables over the stack's) make a second
    daemon on the same stack (the failover test): its own log, instance id, MQTT client
    id and API port."""

    stack: Stack
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    name: str = "fleetd"
    overrides: dict[str, str] = field(default_factory=dict)

    @property
    def log_path(self) -> Path:
        return self.stack.root / f"{self.name}.log"

    @property
    def base_url(self) -> str:
        port = self.overrides.get("FLEETD_API__PORT")
        return f"http://127.0.0.1:{port}" if port else self.stack.base_url

    def start(self) -> None:
        self.starts += 1
        with self.log_path.open("ab") as out:
            out.write(f"\n--- start {self.starts} ---\n".encode())
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dispatcher.cli", "run"],
                env=self.stack.env(**self.overrides), cwd=REPO, stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip

    async def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Until ``/healthz`` answers 200 and the daemon logged ``daemon.ready``."""
        deadline = time.monotonic() + timeout_s
        marker = b'"daemon.ready"'
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2.0) as client:
            while True:
                if self.proc is None or self.proc.poll() is not None:
                    raise AssertionError(f"fleetd exited; log:\n{self.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    ok = (await client.get("/healthz")).status_code == 200
                    if ok and self._last_start_log().count(marker):
                        return
                if time.monotonic() > deadline:
                    raise AssertionError(f"fleetd not ready in {timeout_s}s; log:\n{self.tail()}")
                await asyncio.sleep(0.2)

    def _last_start_log(self) -> bytes:
        text = self.log_path.read_bytes()
        return text.rsplit(f"--- start {self.starts} ---".encode(), 1)[-1]

    def kill9(self) -> None:
        """SIGKILL: no shutdown, no drain, no goodbye to the broker."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def terminate(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM and wait; the exit status (None if it had to be killed)."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return None if proc is None else proc.returncode
        proc.terminate()
        try:
            return proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            return None

    def tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_events(self, event: str) -> int:
        """How many log lines of this event name the daemon wrote (all starts)."""
        return self.log_path.read_text(errors="replace").count(f'"event": "{event}"')


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
             "--state-interval", "0.5", "--manufacturer", f"sim{self.stack.namespace}"],
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


async def operator_token(dsn: str, facility_id: uuid.UUID) -> str:
    """An operator token in the test's database (the daemon has synced facilities)."""
    conn = await asyncpg.connect(dsn)
    try:
        _, secret = await create_token(
            conn, role=Role.OPERATOR, facility_id=facility_id, name="faults", expires_at=None
        )
    finally:
        await conn.close()
    return secret


@dataclass
class MissionWorkload:
    """Missions created through the API at a steady rate, never lost, never doubled.

    Each mission has an Idempotency-Key; a request that gets no answer (daemon killed,
    503 while a dependency is down) is re-sent with the same key until the daemon says
    201 or 200, so ``created`` holds exactly the missions the daemon accepted.
    """

    base_url: str
    token: str
    places: tuple[str, ...]
    per_second: float = 2.0
    created: list[uuid.UUID] = field(default_factory=list)
    retries: int = 0
    refused: dict[int, int] = field(default_factory=dict)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    def stop(self) -> None:
        self._stop.set()

    async def run(self, count: int) -> None:
        """Create ``count`` missions (or fewer if stopped), one every 1/per_second s."""
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=5) as c:
            for i in range(count):
                if self._stop.is_set():
                    return
                pickup = self.places[i % len(self.places)]
                dropoff = self.places[(i * 7 + 3) % len(self.places)]
                if dropoff == pickup:
                    dropoff = self.places[(i + 1) % len(self.places)]
                body = {"pickup": {"place": pickup}, "dropoff": {"place": dropoff},
                        "priority": "normal", "notes": f"fault workload {i}"}  # fmt: skip
                await self._create(c, body, f"fault-{uuid.uuid4().hex}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 1.0 / self.per_second)

    async def _create(self, c: httpx.AsyncClient, body: Mapping[str, object], key: str) -> None:
        while True:
            try:
                r = await c.post("/v1/missions", json=body, headers={"Idempotency-Key": key})
            except httpx.HTTPError:
                self.retries += 1
                await asyncio.sleep(0.3)
                continue
            if r.status_code in (200, 201):
                mid = uuid.UUID(r.json()["id"])
                if mid not in self.created:
                    self.created.append(mid)
                return
            self.refused[r.status_code] = self.refused.get(r.status_code, 0) + 1
            if r.status_code in (500, 502, 503, 504):
                self.retries += 1
                await asyncio.sleep(0.3)
                continue
            raise AssertionError(f"mission refused: {r.status_code} {r.text}")


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

"""fleetd and its dependencies as subprocesses of their own, to kill and restart at will.

The machine's shared PostgreSQL, Redis and Mosquitto must never be stopped (other people
run tests on them). The fault suite (``tests/integration/faults``) and the soak
(``benchmarks/soak.py``) therefore run against services started here on free ports in a
directory of their own:

- :class:`PrivatePostgres`: a cluster made by ``initdb`` (~5 s) and run by ``pg_ctl``;
  PostGIS is available. Each run gets a database of its own in it
  (:meth:`PrivatePostgres.new_database`).
- :class:`PrivateBroker`: ``mosquitto -c`` with persistence in its directory, so a restart
  keeps persistent sessions and their queued QoS 1 messages.
- :class:`PrivateRedis`: ``redis-server`` without persistence (a restart is a flush).
- :class:`Stack`: where a daemon, the simulator and a workload find those services.
- :class:`FleetdProcess`: the real daemon (``python -m dispatcher.cli run``), configured by
  environment variables, that can be killed with SIGKILL and started again on the same
  database and session.
- :class:`MissionWorkload`: missions created through the HTTP API at a steady rate, each
  request with an Idempotency-Key it keeps re-sending (to the next daemon when there are
  several) until answered, so a daemon killed mid-request never makes the caller forget
  or double a mission.

Not part of the running product: tooling for the tests and the soak, like the rest of
``sim``. Everything here blocks (``subprocess``, ``time.sleep``) except the ``async``
methods: call the blocking ones from a thread when an event loop must keep running.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from dispatcher.auth.roles import Role
from dispatcher.auth.tokens import create_token

#: The repository (``python -m dispatcher.cli`` runs from here).
REPO = Path(__file__).resolve().parent.parent
#: Seconds a service or the daemon may take to come up on a loaded 2-core machine.
START_TIMEOUT_S = 60.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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
    daemon on the same stack (failover): its own log, instance id, MQTT client id and API
    port (``FLEETD_API__PORT`` in ``overrides``)."""

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

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def env(self) -> dict[str, str]:
        """The environment the daemon starts with."""
        return self.stack.env(**self.overrides)

    def start(self) -> None:
        self.starts += 1
        with self.log_path.open("ab") as out:
            out.write(f"\n--- start {self.starts} ---\n".encode())
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dispatcher.cli", "run"],
                env=self.env(), cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    async def wait_serving(self, timeout_s: float = START_TIMEOUT_S) -> float:
        """Until ``/healthz`` answers 200; the seconds it took."""
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2.0) as client:
            while True:
                if not self.alive:
                    raise RuntimeError(f"{self.name} exited; log:\n{self.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/healthz")).status_code == 200:
                        return time.monotonic() - started
                if time.monotonic() - started > timeout_s:
                    raise RuntimeError(f"{self.name} not serving in {timeout_s}s")
                await asyncio.sleep(0.2)

    async def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Until ``/healthz`` answers 200 and the daemon logged ``daemon.ready`` (the log
        is JSON: ``FLEETD_DAEMON__LOG_FORMAT=json``, the stack's default)."""
        deadline = time.monotonic() + timeout_s
        marker = b'"daemon.ready"'
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2.0) as client:
            while True:
                if not self.alive:
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

    def last_error(self) -> str:
        """The last exception line the current start logged (``module.Error: text``)."""
        text = self._last_start_log().decode(errors="replace")
        found = re.findall(r"\b([\w.]+\.[A-Z]\w+: [^\n\"]+)", text)
        return found[-1][:300] if found else "(no exception in the log)"

    def rss_mb(self) -> float | None:
        """The daemon's resident memory (``VmRSS``) in MB; None when it is not running."""
        if not self.alive or self.proc is None:
            return None
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return None
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        return int(match.group(1)) / 1024 if match else None


#: Answers that mean "not now" (the daemon restarting, a dependency down): sent again.
UNAVAILABLE = frozenset({500, 502, 503, 504})


class MissionRefused(AssertionError):
    """The daemon refused a mission for good (an answer not in ``retry_statuses``)."""


@dataclass
class MissionWorkload:
    """Missions created through the API at a steady rate, never lost, never doubled.

    Each mission has an Idempotency-Key; a request that gets no answer (daemon killed) or
    an answer in ``retry_statuses`` (503 while a dependency is down) is sent again with the
    same key, after ``retry_after_s``, to the next of ``base_urls`` (a list, or a function
    giving the list at each attempt: the soak's running daemons first), until a daemon says
    201 or 200. So ``created`` holds exactly the missions the daemons accepted.

    Any other answer is a refusal for good: :class:`MissionRefused` is raised (a test
    fails), or, with ``on_refused``, that is called and the workload goes on without it.

    The pace: one mission every ``1 / per_second`` s after the previous one was answered;
    with ``catch_up`` on a fixed schedule instead, so missions an outage held up are sent
    right after it and a long run creates its planned number.
    """

    base_urls: Sequence[str] | Callable[[], Sequence[str]]
    token: str
    places: tuple[str, ...]
    per_second: float = 2.0
    #: Idempotency keys are ``<name>-<hex>``; notes ``<name> workload <i>``.
    name: str = "fault"
    timeout_s: float = 5.0
    retry_after_s: float = 0.3
    retry_statuses: frozenset[int] = UNAVAILABLE
    on_refused: Callable[[httpx.Response], None] | None = None
    catch_up: bool = False
    #: The HTTP transport (a test's mock); None: the network.
    transport: httpx.AsyncBaseTransport | None = None
    created: list[uuid.UUID] = field(default_factory=list)
    #: Requests sent again (no answer, or an answer in ``retry_statuses``).
    retries: int = 0
    #: Answers other than 200/201, by status.
    refused: dict[int, int] = field(default_factory=dict)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        if isinstance(self.base_urls, str):
            self.base_urls = (self.base_urls,)  # one URL, not a sequence of characters

    def stop(self) -> None:
        self._stop.set()

    def urls(self) -> Sequence[str]:
        urls = self.base_urls() if callable(self.base_urls) else self.base_urls
        if not urls:
            raise ValueError("MissionWorkload: no base URL")
        return urls

    async def run(self, count: int | None = None) -> None:
        """Create ``count`` missions (without a count, until stopped; fewer if stopped)."""
        headers = {"Authorization": f"Bearer {self.token}"}
        interval = 1.0 / self.per_second
        next_at = time.monotonic()
        i = 0
        async with httpx.AsyncClient(
            headers=headers, timeout=self.timeout_s, transport=self.transport
        ) as client:
            while count is None or i < count:
                if self._stop.is_set():
                    return
                pickup = self.places[i % len(self.places)]
                dropoff = self.places[(i * 7 + 3) % len(self.places)]
                if dropoff == pickup:
                    dropoff = self.places[(i + 1) % len(self.places)]
                body = {"pickup": {"place": pickup}, "dropoff": {"place": dropoff},
                        "priority": "normal", "notes": f"{self.name} workload {i}"}  # fmt: skip
                await self._create(client, body, f"{self.name}-{uuid.uuid4().hex}")
                i += 1
                next_at += interval
                pause = max(0.0, next_at - time.monotonic()) if self.catch_up else interval
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), pause)

    async def _create(self, client: httpx.AsyncClient, body: object, key: str) -> None:
        attempt = 0
        while True:
            urls = self.urls()
            url = urls[attempt % len(urls)]
            attempt += 1
            try:
                r = await client.post(
                    f"{url}/v1/missions", json=body, headers={"Idempotency-Key": key}
                )
            except httpx.HTTPError:
                self.retries += 1
                await asyncio.sleep(self.retry_after_s)
                continue
            if r.status_code in (200, 201):
                mid = uuid.UUID(r.json()["id"])
                if mid not in self.created:
                    self.created.append(mid)
                return
            self.refused[r.status_code] = self.refused.get(r.status_code, 0) + 1
            if r.status_code in self.retry_statuses:
                self.retries += 1
                await asyncio.sleep(self.retry_after_s)
                continue
            if self.on_refused is None:
                raise MissionRefused(f"mission refused: {r.status_code} {r.text}")
            self.on_refused(r)
            return


async def operator_token(dsn: str, facility_id: uuid.UUID) -> str:
    """An operator token in ``dsn``'s database (the daemon has synced facilities)."""
    conn = await asyncpg.connect(dsn)
    try:
        _, secret = await create_token(
            conn, role=Role.OPERATOR, facility_id=facility_id, name="faults", expires_at=None
        )
    finally:
        await conn.close()
    return secret

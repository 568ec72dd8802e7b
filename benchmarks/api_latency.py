"""API latency benchmark: p50/p95/p99 and throughput of mission create and get, under load.

What it does:

1. creates a fresh database ``fleetd_bench_api_<pid>`` and runs ``fleetd migrate`` on it,
   picks a Redis key prefix and MQTT topic prefixes of its own, and creates one operator
   token per client process with ``fleetd token create --role operator --facility
   demo-campus``;
2. starts ``fleetd run`` as its own process on a free port and waits for ``/readyz``;
3. drives it from ``--clients`` separate client processes on uvloop (``--client raw``, a
   minimal HTTP/1.1 client, by default: ``httpx`` costs a whole core at 1,000/s on this
   2-core machine, taken from the server it measures), open loop: the requests are
   scheduled at fixed intervals at ``--rate`` requests/s whatever the responses do, and
   each latency is measured from the request's *scheduled* send time, so a stalled server
   shows up as latency instead of silently lowering the load (no coordinated omission).
   Each phase runs ``--warmup`` s (not counted) then ``--duration`` s (counted):

   - ``create``: ``POST /v1/missions`` with named places of the demo campus and a fresh
     ``Idempotency-Key`` per request (what a careful client sends);
   - ``get``: ``GET /v1/missions/{id}`` over the missions the ``create`` phase made;
   - ``mixed``: both at once, one create per ``--mixed-write-every`` requests;

4. prints a table (or ``--json``): per phase and operation, the target and achieved rate,
   the requests, the errors by status, latency percentiles, and the seed's target
   (read p95 < 50 ms, write p95 < 100 ms at 1,000 queries/s) with PASS/FAIL, and the
   goal of ten times better; below it, how much CPU the clients, fleetd and Postgres used,
   what fleetd's Postgres sessions were doing (pg_stat_activity), and how many missions
   fleetd stored after their client had already given up;
5. drops the database and the Redis keys and stops fleetd (also on Ctrl-C or a failure).

``--max-throughput`` instead runs closed loop: ``--concurrency`` workers each send the
next request as soon as the previous one answered, which finds the saturation throughput.

Not a test: figures, not assertions. Run: ``.venv/bin/python benchmarks/api_latency.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import multiprocessing as mp
import os
import random
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import uuid
from collections import Counter, deque
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

import asyncpg
import httpx
import redis

REPO = Path(__file__).resolve().parent.parent
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
FACILITY = "demo-campus"
MAP_FILE = REPO / "geo" / "maps" / "demo-campus.toml"
FLEETD = [sys.executable, "-m", "dispatcher.cli"]

#: The seed's targets: p95 latency in ms at 1,000 queries/s.
SEED_P95_MS = {"POST": 100.0, "GET": 50.0}
#: "Aim for ten times better."
GOAL_FACTOR = 10.0
#: Share of the target rate that counts as "ran at the target rate".
ON_TARGET = 0.95

OP_POST, OP_GET = 0, 1
OP_NAMES = ("POST", "GET")
#: Pseudo status codes for requests that got no HTTP response.
STATUS_TIMEOUT, STATUS_TRANSPORT = -1, -2
STATUS_NAMES = {STATUS_TIMEOUT: "timeout", STATUS_TRANSPORT: "conn-error"}
CLK_TCK = os.sysconf("SC_CLK_TCK")

T = TypeVar("T")


def log(message: str) -> None:
    """Progress goes to stderr; stdout holds only the results."""
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of already sorted values; NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


# --- request bodies ----------------------------------------------------------------------


def place_names() -> list[str]:
    """Named places of the demo campus, from the map file fleetd itself loads."""
    data = tomllib.loads(MAP_FILE.read_text(encoding="utf-8"))
    for facility in data["facilities"]:
        if facility["key"] == FACILITY:
            return [str(p["name"]) for p in facility["places"]]
    raise RuntimeError(f"{MAP_FILE} has no facility {FACILITY!r}")


def mission_bodies() -> list[bytes]:
    """Valid ``POST /v1/missions`` bodies: every ordered pair of places, four priorities."""
    places = place_names()
    bodies = []
    pairs = [(a, b) for a in places for b in places if a != b]
    for n, ((pickup, dropoff), priority) in enumerate(
        itertools.product(pairs, ("normal", "high", "low", "urgent"))
    ):
        body = {
            "pickup": {"place": pickup},
            "dropoff": {"place": dropoff},
            "priority": priority,
            "passenger": {"ref": f"bench-{n:04d}"},
            "notes": "api latency benchmark",
        }
        bodies.append(json.dumps(body, separators=(",", ":")).encode())
    return bodies


# --- client processes --------------------------------------------------------------------


@dataclass(frozen=True)
class PhaseSpec:
    """What one client process does in one phase."""

    name: str
    closed: bool  # closed loop (max throughput) instead of open loop
    write_every: int  # 1: all creates; 0: all gets; k: every k-th request a create
    rate: float  # open loop: this process's requests/s
    offset: float  # open loop: this process's first send after start_at (staggering)
    concurrency: int  # closed loop: this process's concurrent workers
    start_at: float  # time.monotonic() (the same clock in every process on Linux)
    warmup: float
    duration: float
    timeout: float
    connections: int
    client: str  # a key of CLIENTS
    ids: tuple[str, ...]
    seed: int


@dataclass
class WorkerResult:
    """One client process's measured requests (warm-up excluded) of one phase."""

    ops: list[int] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # s, from the scheduled send
    lags: list[float] = field(default_factory=list)  # s, actual send - scheduled send
    created: list[str] = field(default_factory=list)  # mission ids, warm-up included
    last_done: float = 0.0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    max_in_flight: int = 0


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class ClientError(Exception):
    """A request got no usable HTTP response (connection lost, malformed answer)."""


class HttpClient(Protocol):
    """What the load generator needs from an HTTP client."""

    async def create(self, body: bytes, idempotency_key: str) -> tuple[int, str | None]:
        """``POST /v1/missions``: (status, Location header or None)."""
        ...

    async def get(self, path: str) -> int:
        """``GET path``: the status."""
        ...

    async def aclose(self) -> None: ...


class HttpxClient:
    """httpx.AsyncClient: the usual Python client (about 1 ms of CPU per request here)."""

    def __init__(self, base_url: str, token: str, connections: int, timeout: float) -> None:
        self.client = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            timeout=timeout,
        )

    async def create(self, body: bytes, idempotency_key: str) -> tuple[int, str | None]:
        try:
            resp = await self.client.post(
                "/v1/missions", content=body, headers={"Idempotency-Key": idempotency_key}
            )
        except httpx.TimeoutException as exc:
            raise TimeoutError from exc
        except httpx.HTTPError as exc:
            raise ClientError(str(exc)) from exc
        return resp.status_code, resp.headers.get("location")

    async def get(self, path: str) -> int:
        try:
            return (await self.client.get(path)).status_code
        except httpx.TimeoutException as exc:
            raise TimeoutError from exc
        except httpx.HTTPError as exc:
            raise ClientError(str(exc)) from exc

    async def aclose(self) -> None:
        await self.client.aclose()


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection carrying one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.reusable = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).lower()
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" or (name == b"connection" and b"close" in value):
                self.reusable = False  # chunked is never sent by fleetd; don't guess at it
        if len(self.buf) < end + 4 + length:
            return
        del self.buf[: end + 4 + length]
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            try:
                waiter.set_result((int(head[9:12]), head))
            except ValueError:
                waiter.set_exception(ClientError(f"malformed status line {head[:40]!r}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ClientError(f"connection lost: {exc}"))

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()


class RawClient:
    """A minimal HTTP/1.1 client over asyncio: a keep-alive pool, pre-encoded requests.

    About 40 times cheaper in CPU than httpx, so that on a small machine the load
    generator takes as little as possible from the server it measures.
    """

    def __init__(self, base_url: str, token: str, connections: int, timeout: float) -> None:
        url = httpx.URL(base_url)
        self.host, self.port = url.host, url.port or 80
        self.max = connections
        self.timeout = timeout
        self.idle: list[_Connection] = []
        self.open = 0
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.common = (
            f"host: {self.host}:{self.port}\r\nauthorization: Bearer {token}\r\n"
        ).encode()

    async def _acquire(self) -> _Connection:
        loop = asyncio.get_running_loop()
        while True:
            while self.idle:
                conn = self.idle.pop()
                if conn.reusable:
                    return conn
                # Closed by the server while idle (uvicorn ends keep-alive connections
                # after 5 s without a request): writing to it would fail the request.
                conn.close()
                self.open -= 1
            if self.open < self.max:
                self.open += 1
                try:
                    _, conn = await loop.create_connection(_Connection, self.host, self.port)
                except OSError as exc:
                    self.open -= 1
                    raise ClientError(f"cannot connect: {exc}") from exc
                except BaseException:  # cancelled or timed out while connecting
                    self.open -= 1
                    raise
                return conn
            waiter: asyncio.Future[None] = loop.create_future()
            self.waiters.append(waiter)
            await waiter

    def _release(self, conn: _Connection) -> None:
        if conn.reusable:
            self.idle.append(conn)
        else:
            conn.close()
            self.open -= 1
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    async def _request(self, request: bytes) -> tuple[int, bytes]:
        conn: _Connection | None = None
        try:
            async with asyncio.timeout(self.timeout):
                conn = await self._acquire()
                return await conn.exchange(request)
        except BaseException:
            if conn is not None:
                conn.close()  # the answer may still come: this connection is spoiled
            raise
        finally:
            if conn is not None:
                self._release(conn)

    async def create(self, body: bytes, idempotency_key: str) -> tuple[int, str | None]:
        request = b"".join(
            (
                b"POST /v1/missions HTTP/1.1\r\n",
                self.common,
                b"content-type: application/json\r\nidempotency-key: ",
                idempotency_key.encode(),
                b"\r\ncontent-length: ",
                str(len(body)).encode(),
                b"\r\n\r\n",
                body,
            )
        )
        status, head = await self._request(request)
        start = head.find(b"\r\nlocation:")
        if start < 0:
            return status, None
        end = head.find(b"\r\n", start + 2)
        return status, head[start + 11 : end if end > 0 else None].strip().decode()

    async def get(self, path: str) -> int:
        status, _ = await self._request(
            b"GET " + path.encode() + b" HTTP/1.1\r\n" + self.common + b"\r\n"
        )
        return status

    async def aclose(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


CLIENTS: dict[str, type[HttpxClient] | type[RawClient]] = {"raw": RawClient, "httpx": HttpxClient}


class _Driver:
    """Sends one phase's requests from one client process and records them."""

    def __init__(self, spec: PhaseSpec, client: HttpClient, bodies: list[bytes]) -> None:
        self.spec = spec
        self.client = client
        self.bodies = bodies
        self.rng = random.Random(spec.seed)
        self.result = WorkerResult()
        self.measure_from = spec.start_at + spec.warmup
        self.in_flight = 0
        self.reported = False

    def op_for(self, i: int) -> int:
        every = self.spec.write_every
        if every == 1 or (every > 1 and (i + self.spec.seed) % every == 0):
            return OP_POST
        return OP_GET

    async def request(self, i: int, due: float) -> None:
        sent = time.monotonic()
        op = self.op_for(i)
        self.in_flight += 1
        self.result.max_in_flight = max(self.result.max_in_flight, self.in_flight)
        try:
            if op == OP_POST:
                body = self.bodies[i % len(self.bodies)]
                status, location = await self.client.create(body, uuid.uuid4().hex)
                if status == 201 and location:
                    self.result.created.append(location.rsplit("/", 1)[-1])
            else:
                mission_id = self.spec.ids[self.rng.randrange(len(self.spec.ids))]
                status = await self.client.get(f"/v1/missions/{mission_id}")
        except TimeoutError:
            status = STATUS_TIMEOUT
        except (ClientError, OSError):
            status = STATUS_TRANSPORT
        except Exception as exc:  # a bug here must not pass for a server error silently
            status = STATUS_TRANSPORT
            if not self.reported:
                self.reported = True
                log(f"client error ({type(exc).__name__}): {exc}")
        finally:
            self.in_flight -= 1
        done = time.monotonic()
        if due >= self.measure_from:
            r = self.result
            r.ops.append(op)
            r.statuses.append(status)
            r.latencies.append(done - due)
            r.lags.append(sent - due)
            r.last_done = max(r.last_done, done)

    async def open_loop(self) -> None:
        spec = self.spec
        interval = 1.0 / spec.rate
        first = spec.start_at + spec.offset
        total = max(1, round((spec.warmup + spec.duration) * spec.rate))
        pending: set[asyncio.Task[None]] = set()
        i = 0
        while i < total:
            now = time.monotonic()
            due = first + i * interval
            if due > now:
                await asyncio.sleep(due - now)
                now = time.monotonic()
            # Launch everything that is due; if the loop fell behind, the latencies (measured
            # from ``due``) and the send lag both show it.
            while i < total and (due := first + i * interval) <= now:
                task = asyncio.create_task(self.request(i, due))
                pending.add(task)
                task.add_done_callback(pending.discard)
                i += 1
        if pending:
            await asyncio.wait(pending)

    async def closed_loop(self) -> None:
        spec = self.spec
        end = self.measure_from + spec.duration
        counter = itertools.count()
        await asyncio.sleep(max(0.0, spec.start_at - time.monotonic()))

        async def worker() -> None:
            while (now := time.monotonic()) < end:
                await self.request(next(counter), now)

        await asyncio.gather(*(worker() for _ in range(spec.concurrency)))


async def _phase(spec: PhaseSpec, base_url: str, token: str, bodies: list[bytes]) -> WorkerResult:
    connections = max(spec.connections, spec.concurrency)
    client = CLIENTS[spec.client](base_url, token, connections, spec.timeout)
    try:
        driver = _Driver(spec, client, bodies)
        await asyncio.sleep(max(0.0, spec.start_at - 0.5 - time.monotonic()))
        cpu0, wall0 = _cpu_self(), time.monotonic()
        if spec.closed:
            await driver.closed_loop()
        else:
            await driver.open_loop()
        driver.result.cpu_s = _cpu_self() - cpu0
        driver.result.wall_s = time.monotonic() - wall0
        return driver.result
    finally:
        await client.aclose()


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop

        result: T = uvloop.run(coro)
        return result
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(coro)


def _client_main(conn: Connection, base_url: str, token: str) -> None:
    """A client process: run the phases the parent sends until it sends None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    bodies = mission_bodies()
    conn.send("ready")
    while True:
        spec = conn.recv()
        if spec is None:
            return
        conn.send(_run(_phase(spec, base_url, token, bodies)))


# --- the system under test -----------------------------------------------------------------


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process, 0 when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def postgres_cpu_s() -> float:
    """CPU seconds of every ``postgres`` process on the machine (all databases)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    total += proc_cpu_s(int(entry.name))
            except OSError:
                continue
    return total


def machine_cpu_s() -> float:
    """Busy CPU seconds of the whole machine, all cores (from /proc/stat)."""
    parts = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    return (sum(parts[:8]) - idle) / CLK_TCK


@dataclass(frozen=True)
class CpuSample:
    at: float
    fleetd: float
    postgres: float
    machine: float


_HIST = re.compile(
    r"^fleetd_http_request_duration_seconds_bucket\{(?P<labels>.*)\} (?P<value>\S+)$"
)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def scrape_histogram(client: httpx.Client) -> dict[tuple[str, str], dict[float, float]]:
    """fleetd's own request-duration histogram: (method, route) -> {le: count}."""
    out: dict[tuple[str, str], dict[float, float]] = {}
    try:
        text = client.get("/metrics").text
    except httpx.HTTPError:
        return out
    for line in text.splitlines():
        m = _HIST.match(line)
        if not m:
            continue
        labels = dict(_LABEL.findall(m["labels"]))
        if not labels.get("status", "").startswith("2"):
            continue
        buckets = out.setdefault((labels["method"], labels["route"]), {})
        le = math.inf if labels["le"] == "+Inf" else float(labels["le"])
        buckets[le] = buckets.get(le, 0.0) + float(m["value"])
    return out


def histogram_quantile(buckets: dict[float, float], q: float) -> float | None:
    """Upper bound (s) of the bucket holding quantile ``q`` (0..1), None without data."""
    items = sorted(buckets.items())
    if not items or items[-1][1] <= 0:
        return None
    want = q * items[-1][1]
    return next(le for le, count in items if count >= want)


class WaitSampler(threading.Thread):
    """What fleetd's Postgres sessions do, sampled from pg_stat_activity every 0.1 s.

    ``finish()`` returns the mean number of sessions per state: where the server's
    database time goes (waiting on a lock, on the WAL flush, on fleetd itself...).
    """

    SQL = """
        SELECT state, wait_event_type, wait_event FROM pg_stat_activity
        WHERE datname = $1 AND backend_type = 'client backend'
    """

    def __init__(self, db: str, interval_s: float = 0.1) -> None:
        super().__init__(name="wait-sampler", daemon=True)
        self.db = db
        self.interval_s = interval_s
        self.counts: Counter[str] = Counter()
        self.samples = 0
        self.done = threading.Event()

    @staticmethod
    def label(state: str | None, wait_type: str | None, wait: str | None) -> str:
        if state == "active":
            return f"waiting {wait_type}:{wait}" if wait_type else "running in postgres"
        if state == "idle in transaction":
            return "idle in transaction (waiting for fleetd)"
        return "idle in pool" if state == "idle" else str(state)

    def run(self) -> None:
        async def loop() -> None:
            conn = await asyncpg.connect(ADMIN_DSN)
            try:
                while not self.done.is_set():
                    for row in await conn.fetch(self.SQL, self.db):
                        key = self.label(row["state"], row["wait_event_type"], row["wait_event"])
                        self.counts[key] += 1
                    self.samples += 1
                    await asyncio.sleep(self.interval_s)
            finally:
                await conn.close()

        with contextlib.suppress(OSError, asyncpg.PostgresError):
            asyncio.run(loop())

    def finish(self) -> dict[str, float]:
        self.done.set()
        self.join(5)
        n = max(1, self.samples)
        return {k: round(v / n, 2) for k, v in self.counts.most_common()}


@dataclass(frozen=True)
class Window:
    """What the parent observed over one phase's measured window."""

    measure_from: float
    s0: CpuSample
    s1: CpuSample
    hist0: dict[tuple[str, str], dict[float, float]]
    hist1: dict[tuple[str, str], dict[float, float]]
    waits: dict[str, float]


class Fleetd:
    """A private fleetd: its own database, Redis prefix, MQTT prefixes, port and tokens."""

    def __init__(self, *, log_level: str, extra_env: dict[str, str]) -> None:
        pid = os.getpid()
        self.db = f"fleetd_bench_api_{pid}"
        self.redis_prefix = f"bench-api:{pid}:"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.dir = Path(tempfile.mkdtemp(prefix="fleetd-bench-api-"))
        self.log_path = self.dir / "fleetd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.db_created = False
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETD_")}
        env.update(
            {
                "FLEETD_DATABASE__DSN": f"postgresql://postgres@127.0.0.1:5432/{self.db}",
                "FLEETD_REDIS__KEY_PREFIX": self.redis_prefix,
                "FLEETD_MQTT__VDA_INTERFACE": f"benchapi{pid}",
                "FLEETD_MQTT__DRIVER_PREFIX": f"benchapi{pid}/driver/v1",
                "FLEETD_MQTT__PERSISTENT_SESSION": "false",
                "FLEETD_FLEET__UNKNOWN_VEHICLES": "register",  # ad hoc simulated vehicles
                "FLEETD_API__HOST": "127.0.0.1",
                "FLEETD_API__PORT": str(self.port),
                "FLEETD_DAEMON__INSTANCE_ID": f"bench-api-{pid}",
                "FLEETD_DAEMON__LOG_LEVEL": log_level,
                "FLEETD_DAEMON__LOG_FORMAT": "json",
            }
        )
        env.update(extra_env)
        self.env = env

    def _cli(self, *args: str) -> str:
        done = subprocess.run(
            [*FLEETD, *args], env=self.env, cwd=REPO, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"fleetd {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def start(self, tokens: int) -> list[str]:
        """Fresh database, migrations, ``tokens`` operator tokens, daemon up and ready."""

        async def create_db() -> None:
            conn = await asyncpg.connect(ADMIN_DSN)
            try:
                await conn.execute(f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")
                await conn.execute(f"CREATE DATABASE {self.db}")
            finally:
                await conn.close()

        asyncio.run(create_db())
        self.db_created = True
        self._cli("migrate")
        secrets = [
            self._cli(
                "token",
                "create",
                "--role",
                "operator",
                "--facility",
                FACILITY,
                "--name",
                f"bench-api-client-{n}",
            ).split()[-1]
            for n in range(tokens)
        ]
        with self.log_path.open("wb") as log_file:
            self.proc = subprocess.Popen(
                [*FLEETD, "run"],
                env=self.env,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us; we stop fleetd in order
            )
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=self.base_url, timeout=2) as http:
            while True:
                try:
                    if http.get("/readyz").status_code == 200:
                        return secrets
                except httpx.HTTPError:
                    pass
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"fleetd did not become ready:\n{self.log_tail()}")
                time.sleep(0.2)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def count_missions(self) -> int:
        async def count() -> int:
            conn = await asyncpg.connect(self.env["FLEETD_DATABASE__DSN"])
            try:
                n: int = await conn.fetchval("SELECT count(*) FROM missions")
                return n
            finally:
                await conn.close()

        return asyncio.run(count())

    def sample(self) -> CpuSample:
        pid = self.proc.pid if self.proc is not None else 0
        return CpuSample(time.monotonic(), proc_cpu_s(pid), postgres_cpu_s(), machine_cpu_s())

    def stop(self) -> None:
        """Stop fleetd, drop the database and the Redis keys, remove the temp dir."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.db_created:

            async def drop_db() -> None:
                conn = await asyncpg.connect(ADMIN_DSN)
                try:
                    await conn.execute(f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")
                finally:
                    await conn.close()

            try:
                asyncio.run(drop_db())
            except (OSError, asyncpg.PostgresError) as exc:
                log(f"could not drop database {self.db}: {exc}")
        try:
            r = redis.Redis()
            keys = list(r.scan_iter(f"{self.redis_prefix}*", count=1000))
            for i in range(0, len(keys), 500):
                r.delete(*keys[i : i + 500])
            r.close()
        except redis.RedisError as exc:
            log(f"could not delete Redis keys {self.redis_prefix}*: {exc}")
        for path in self.dir.iterdir():
            path.unlink(missing_ok=True)
        self.dir.rmdir()


# --- running phases ----------------------------------------------------------------------------


@dataclass
class OpStats:
    """One row of the results table."""

    phase: str
    op: str
    mode: str  # "open" or "closed"
    target_rate: float | None
    achieved_rate: float
    requests: int
    ok: int
    errors: dict[str, int]
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    server_p95_le_ms: float | None
    seed_p95_ms: float
    seed: str
    goal_p95_ms: float
    goal: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class PhaseStats:
    name: str
    mode: str
    target_rate: float | None
    concurrency: int | None
    ops: list[OpStats]
    clients: int
    client_cpu_cores: float
    client_cpu_per_process: list[float]
    fleetd_cpu_cores: float
    postgres_cpu_cores: float
    machine_busy_cores: float
    cores: int
    send_lag_p50_ms: float
    send_lag_p99_ms: float
    max_in_flight: int
    #: Mean number of fleetd's Postgres sessions in each state (pg_stat_activity samples).
    db_sessions: dict[str, float]
    warnings: list[str]
    #: Missions in the database after the phase minus before, and the 201s clients got.
    missions_stored: int = 0
    missions_answered: int = 0

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["ops"] = [o.as_dict() for o in self.ops]
        return d


class Bench:
    def __init__(self, args: argparse.Namespace, fleetd: Fleetd, tokens: list[str]) -> None:
        self.args = args
        self.fleetd = fleetd
        ctx = mp.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs: list[mp.process.BaseProcess] = []
        for token in tokens:
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=_client_main, args=(child, fleetd.base_url, token), daemon=True
            )
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)
        for conn in self.conns:
            if not conn.poll(60) or conn.recv() != "ready":
                raise RuntimeError("a client process did not start")
        self.ids: list[str] = []

    def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(None)
        for proc in self.procs:
            proc.join(2)
            if proc.is_alive():
                proc.terminate()
                proc.join(2)

    def _gather(self, timeout: float) -> list[WorkerResult]:
        results = []
        for conn in self.conns:
            if not conn.poll(timeout):
                raise RuntimeError("a client process did not report back in time")
            try:
                results.append(conn.recv())
            except EOFError as exc:
                raise RuntimeError("a client process died") from exc
        return results

    def run_phase(
        self, name: str, *, write_every: int, rate: float | None, concurrency: int | None
    ) -> PhaseStats:
        a = self.args
        n = len(self.conns)
        closed = rate is None
        log(
            f"-- {name}: "
            + (f"closed loop, {concurrency} workers" if closed else f"open loop, {rate:g}/s")
            + f", {a.warmup:g} s warm-up + {a.duration:g} s measured, {n} client process(es)"
        )
        missions_before = self.fleetd.count_missions()
        start_at = time.monotonic() + 1.0
        for w, conn in enumerate(self.conns):
            share = 0 if concurrency is None else concurrency // n + (w < concurrency % n)
            spec = PhaseSpec(
                name=name,
                closed=closed,
                write_every=write_every,
                rate=(rate or 0.0) / n,
                offset=w / rate if rate else 0.0,
                concurrency=share,
                start_at=start_at,
                warmup=a.warmup,
                duration=a.duration,
                timeout=a.timeout,
                connections=max(1, a.connections // n),
                client=a.client,
                ids=tuple(self.ids),
                seed=w + 1,
            )
            conn.send(spec)
        measure_from = start_at + a.warmup
        end = measure_from + a.duration
        with httpx.Client(base_url=self.fleetd.base_url, timeout=5) as http:
            time.sleep(max(0.0, measure_from - time.monotonic()))
            hist0 = scrape_histogram(http)
            s0 = self.fleetd.sample()
            sampler = WaitSampler(self.fleetd.db)
            sampler.start()
            time.sleep(max(0.0, end - time.monotonic()))
            s1 = self.fleetd.sample()
            waits = sampler.finish()
            results = self._gather(a.warmup + a.duration + a.timeout + 60)
            hist1 = scrape_histogram(http)
        if not self.fleetd.alive():
            raise RuntimeError(f"fleetd exited during {name}:\n{self.fleetd.log_tail()}")
        for r in results:
            self.ids.extend(r.created)
        window = Window(measure_from, s0, s1, hist0, hist1, waits)
        stats = self._stats(name, closed, rate, concurrency, write_every, results, window)
        self.settle()
        stats.missions_stored = self.fleetd.count_missions() - missions_before
        stats.missions_answered = sum(len(r.created) for r in results)
        if stats.missions_stored > stats.missions_answered:
            late = stats.missions_stored - stats.missions_answered
            stats.warnings.append(
                f"fleetd stored {stats.missions_stored:,} missions in this phase (warm-up "
                f"included) but answered 201 in time for {stats.missions_answered:,}: "
                f"{late:,} were created after their client had given up"
            )
        return stats

    def settle(self, limit_s: float = 60.0) -> None:
        """Wait until fleetd is idle again (requests the clients gave up on still run)."""
        started = time.monotonic()
        before = self.fleetd.sample()
        while time.monotonic() - started < limit_s:
            time.sleep(0.5)
            now = self.fleetd.sample()
            if (now.fleetd - before.fleetd) / (now.at - before.at) < 0.15:
                break
            before = now
        took = time.monotonic() - started
        if took > 1.5:
            log(f"   fleetd was still busy after the phase: waited {took:.1f} s for it to settle")

    def _stats(
        self,
        name: str,
        closed: bool,
        rate: float | None,
        concurrency: int | None,
        write_every: int,
        results: list[WorkerResult],
        window: Window,
    ) -> PhaseStats:
        a = self.args
        s0, s1, measure_from = window.s0, window.s1, window.measure_from
        wall = s1.at - s0.at
        cores = os.cpu_count() or 1
        lags = sorted(lag for r in results for lag in r.lags)
        end = max((r.last_done for r in results), default=measure_from + a.duration)
        span = a.duration if closed else max(a.duration, end - measure_from)
        routes = {OP_POST: ("POST", "/v1/missions"), OP_GET: ("GET", "/v1/missions/{mission_id}")}
        ops: list[OpStats] = []
        warnings: list[str] = []
        for op in (OP_POST, OP_GET):
            lat = sorted(
                x for r in results for o, x in zip(r.ops, r.latencies, strict=True) if o == op
            )
            if not lat:
                continue
            statuses = Counter(
                s for r in results for o, s in zip(r.ops, r.statuses, strict=True) if o == op
            )
            ok = sum(c for s, c in statuses.items() if 200 <= s < 300)
            errors = {
                STATUS_NAMES.get(s, str(s)): c
                for s, c in sorted(statuses.items())
                if not 200 <= s < 300
            }
            share = (
                1.0
                if write_every in (0, 1)
                else (1 / write_every if op == OP_POST else 1 - 1 / write_every)
            )
            target = rate * share if rate is not None else None
            achieved = ok / span
            p95 = percentile(lat, 95) * 1000
            seed_limit = SEED_P95_MS[OP_NAMES[op]]
            at_rate = target is not None and achieved >= ON_TARGET * target
            # The seed's figure is a p95 *at 1,000 queries/s*: a lower load cannot pass it.
            at_seed_load = rate is not None and rate >= 1000 * ON_TARGET
            before = window.hist0.get(routes[op], {})
            after = window.hist1.get(routes[op], {})
            delta = {le: c - before.get(le, 0.0) for le, c in after.items()}
            server_p95 = histogram_quantile(delta, 0.95)
            judged = not closed and at_seed_load
            passes = at_rate and not errors

            ops.append(
                OpStats(
                    phase=name,
                    op=OP_NAMES[op],
                    mode="closed" if closed else "open",
                    target_rate=target,
                    achieved_rate=achieved,
                    requests=len(lat),
                    ok=ok,
                    errors=errors,
                    p50_ms=percentile(lat, 50) * 1000,
                    p95_ms=p95,
                    p99_ms=percentile(lat, 99) * 1000,
                    max_ms=lat[-1] * 1000,
                    server_p95_le_ms=None if server_p95 is None else server_p95 * 1000,
                    seed_p95_ms=seed_limit,
                    seed=_verdict(judged, passes and p95 < seed_limit),
                    goal_p95_ms=seed_limit / GOAL_FACTOR,
                    goal=_verdict(judged, passes and p95 < seed_limit / GOAL_FACTOR),
                )
            )
            if target is not None and not at_rate:
                warnings.append(
                    f"{OP_NAMES[op]} achieved {achieved:,.0f}/s, SHORT of the {target:,.0f}/s "
                    "target: the figures are not at the target load"
                )
            if errors:
                warnings.append(f"{OP_NAMES[op]} had errors: {errors}")
        lag_p99 = percentile(lags, 99) * 1000
        if not closed and lag_p99 > 5:
            warnings.append(
                f"the clients sent late (send lag p99 {lag_p99:.1f} ms): they were short of CPU, "
                "and that delay is part of the latencies"
            )
        if rate is not None and rate < 1000 * ON_TARGET:
            warnings.append("the seed's targets are for 1,000 queries/s: not judged at this rate")
        return PhaseStats(
            name=name,
            mode="closed" if closed else "open",
            target_rate=rate,
            concurrency=concurrency,
            ops=ops,
            clients=len(results),
            client_cpu_cores=sum(r.cpu_s / max(1e-9, r.wall_s) for r in results),
            client_cpu_per_process=[r.cpu_s / max(1e-9, r.wall_s) for r in results],
            fleetd_cpu_cores=(s1.fleetd - s0.fleetd) / wall,
            postgres_cpu_cores=(s1.postgres - s0.postgres) / wall,
            machine_busy_cores=(s1.machine - s0.machine) / wall,
            cores=cores,
            send_lag_p50_ms=percentile(lags, 50) * 1000,
            send_lag_p99_ms=lag_p99,
            max_in_flight=sum(r.max_in_flight for r in results),
            db_sessions=window.waits,
            warnings=warnings,
        )


def _verdict(judged: bool, passed: bool) -> str:
    if not judged:
        return "n/a"
    return "PASS" if passed else "FAIL"


# --- output --------------------------------------------------------------------------------


def _ms(v: float | None) -> str:
    return "-" if v is None or math.isnan(v) else f"{v:.1f}"


def render(phases: list[PhaseStats], args: argparse.Namespace) -> Iterator[str]:
    header = (
        "phase",
        "op",
        "target/s",
        "achieved/s",
        "requests",
        "errors",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "srv p95<=",
        "seed p95",
        "seed",
        "10x p95",
        "10x",
    )
    rows: list[tuple[str, ...]] = []
    for ph in phases:
        for o in ph.ops:
            errs = ", ".join(f"{k}:{v}" for k, v in o.errors.items()) or "0"
            rows.append(
                (
                    ph.name,
                    o.op,
                    "-" if o.target_rate is None else f"{o.target_rate:,.0f}",
                    f"{o.achieved_rate:,.1f}",
                    f"{o.requests:,}",
                    errs,
                    _ms(o.p50_ms),
                    _ms(o.p95_ms),
                    _ms(o.p99_ms),
                    _ms(o.max_ms),
                    _ms(o.server_p95_le_ms),
                    f"<{o.seed_p95_ms:g} ms",
                    o.seed,
                    f"<{o.goal_p95_ms:g} ms",
                    o.goal,
                )
            )
    yield (
        f"fleetd API latency: {args.client} client x {args.clients} process(es), "
        f"{args.connections} connections, timeout {args.timeout:g} s, warm-up {args.warmup:g} s "
        f"+ {args.duration:g} s per phase, fleetd log level {args.server_log_level}, "
        f"{os.cpu_count()} cores, load average before the run {args.loadavg}"
    )
    yield ""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    left = {0, 1, 5}
    for r in [header, *rows]:
        yield "  ".join(
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
    yield ""
    for ph in phases:
        per_proc = " + ".join(f"{c:.2f}" for c in ph.client_cpu_per_process)
        load = (
            f"open loop {ph.target_rate:g}/s"
            if ph.target_rate is not None
            else f"closed loop, {ph.concurrency} workers"
        )
        yield (
            f"{ph.name} ({load}): CPU cores used: clients {ph.client_cpu_cores:.2f} "
            f"({ph.clients} procs: {per_proc}), fleetd {ph.fleetd_cpu_cores:.2f}, postgres "
            f"{ph.postgres_cpu_cores:.2f}, whole machine {ph.machine_busy_cores:.2f} of "
            f"{ph.cores}; client send lag p50/p99 {ph.send_lag_p50_ms:.2f}/"
            f"{ph.send_lag_p99_ms:.2f} ms; max in flight {ph.max_in_flight}"
        )
        if ph.db_sessions:
            sessions = ", ".join(f"{k} {v:.2f}" for k, v in ph.db_sessions.items())
            yield f"  fleetd's Postgres sessions, mean count by state: {sessions}"
        for w in ph.warnings:
            yield f"  WARNING: {w}"
    yield ""
    if args.max_throughput:
        yield (
            "Closed loop: each worker sends its next request when the previous one answered; "
            "achieved/s is the saturation throughput and latency the service time a waiting "
            "client sees (no verdicts: the seed's targets are for an open-loop 1,000/s)."
        )
    else:
        yield (
            "Open loop: latency counts from each request's scheduled send time, so queueing in "
            "the client or the server is included; achieved/s counts 2xx answers until the "
            "last answer."
        )
        yield (
            f"PASS needs p95 under the limit, achieved >= {ON_TARGET:.0%} of the target, a "
            "phase load of 1,000/s and no errors."
        )
    yield (
        "'srv p95<=' is the bucket bound from fleetd's own fleetd_http_request_duration_seconds "
        "(2xx, same window). CPU: cores used over the window; 'whole machine' includes other "
        "users of this machine."
    )


def _finite(value: Any) -> Any:
    """The document with NaN and infinities as null, so it is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def parse_env(values: list[str]) -> dict[str, str]:
    out = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not sep or not key.startswith("FLEETD_"):
            raise SystemExit(f"--server-env wants FLEETD_KEY=VALUE, got {v!r}")
        out[key] = value
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--rate", type=float, default=1000.0, help="open loop: requests/s")
    parser.add_argument("--duration", type=float, default=20.0, help="measured s per phase")
    parser.add_argument("--warmup", type=float, default=5.0, help="uncounted s before each")
    parser.add_argument(
        "--client",
        choices=sorted(CLIENTS),
        default="raw",
        help="HTTP client: raw (minimal asyncio HTTP/1.1, ~25 us CPU/request) or httpx "
        "(~1 ms CPU/request on this machine)",
    )
    parser.add_argument(
        "--clients", type=int, default=None, help="client processes (default: raw 1, httpx 2)"
    )
    parser.add_argument(
        "--connections", type=int, default=64, help="HTTP connections, all clients together"
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, s")
    parser.add_argument(
        "--mixed-write-every",
        type=int,
        default=5,
        metavar="K",
        help="mixed phase: one create per K requests, the others gets; 0 skips the phase",
    )
    parser.add_argument(
        "--max-throughput",
        action="store_true",
        help="closed loop instead: --concurrency workers, back to back, to find saturation",
    )
    parser.add_argument("--concurrency", type=int, default=32, help="closed-loop workers")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument(
        "--server-log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="fleetd's log level (info, the default, logs one line per request)",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="FLEETD_KEY=VALUE",
        help="extra setting for the fleetd under test, e.g. FLEETD_DATABASE__POOL_MAX=20",
    )
    args = parser.parse_args()
    if args.clients is None:
        args.clients = 1 if args.client == "raw" else 2
    args.loadavg = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    if args.rate <= 0 or args.duration <= 0 or args.warmup < 0 or args.clients < 1:
        parser.error("--rate and --duration must be positive, --clients at least 1")
    extra_env = parse_env(args.server_env)

    def on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    fleetd = Fleetd(log_level=args.server_log_level, extra_env=extra_env)
    bench: Bench | None = None
    phases: list[PhaseStats] = []
    try:
        log(
            f"-- setting up: database {fleetd.db}, Redis prefix {fleetd.redis_prefix!r}, "
            f"fleetd on {fleetd.base_url} (log: {fleetd.log_path})"
        )
        tokens = fleetd.start(args.clients)
        bench = Bench(args, fleetd, tokens)
        if args.max_throughput:
            phases.append(
                bench.run_phase("create", write_every=1, rate=None, concurrency=args.concurrency)
            )
            if not bench.ids:
                raise RuntimeError("the create phase created no mission; nothing to get")
            phases.append(
                bench.run_phase("get", write_every=0, rate=None, concurrency=args.concurrency)
            )
        else:
            phases.append(
                bench.run_phase("create", write_every=1, rate=args.rate, concurrency=None)
            )
            if not bench.ids:
                raise RuntimeError("the create phase created no mission; nothing to get")
            phases.append(bench.run_phase("get", write_every=0, rate=args.rate, concurrency=None))
            if args.mixed_write_every:
                phases.append(
                    bench.run_phase(
                        "mixed",
                        write_every=args.mixed_write_every,
                        rate=args.rate,
                        concurrency=None,
                    )
                )
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        return 130
    except RuntimeError as exc:
        log(f"benchmark failed: {exc}")
        return 1
    finally:
        if bench is not None:
            bench.close()
        fleetd.stop()
        log("-- cleaned up (fleetd stopped, database dropped, Redis keys deleted)")
    if args.json:
        doc = {
            "config": {k: v for k, v in vars(args).items() if k != "json"},
            "machine_cores": os.cpu_count(),
            "phases": [p.as_dict() for p in phases],
        }
        print(json.dumps(_finite(doc), indent=2))
    else:
        for line in render(phases, args):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

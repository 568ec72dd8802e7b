"""Dispatch latency benchmark: mission created through the API -> offer on MQTT, p50/p99.

What it does, per fleet size of ``--vehicles`` (default 50, 500 and 5,000):

1. starts a private fleetd (``api_latency.Fleetd``: its own database, Redis key prefix,
   MQTT topic prefixes, port and operator token) with live dispatch on;
2. brings that many simulated drivers online from one process (asyncio, ``aiomqtt``):
   ``--connections`` MQTT connections carry them all (drivers are spread over the
   connections; one more connection subscribes to every driver's ``offer`` topic). Each
   driver publishes its retained ``connection`` ONLINE and a ``status`` (QoS 0, where
   the protocol says 1: the load generator must not measure its own acks) every
   ``--status-interval`` s, at a random point of the demo campus, so it is online, in
   Redis GEO and a candidate. Offered a job, it accepts at once (``offerResponse``,
   ``trip`` to_pickup) and completes it ``--hold`` s later (the other trip events, then
   ``online`` again), so it keeps being eligible;
3. creates ``--missions`` missions through ``POST /v1/missions`` between named places of
   the campus, open loop at ``--rate``/s, and times each from just before its request is
   sent to the moment its ``offer`` reaches the load generator through the broker (so
   the broker's delivery is included). It prints p50/p99/max of that and of the POST.

Then ``--busy-vehicles`` drivers that keep their jobs are given every mission they can
take plus ``--backlog`` more, so the engine plans a large problem again and again (at
most ``MAX_PLANNED_MISSIONS`` missions of the backlog and their candidates, every
``dispatch.tick_s`` and on every change), and during ``--busy-duration`` s it measures
what the rest of the daemon gets meanwhile: ``GET /v1/missions/{id}`` latency (open loop,
``--busy-rate``/s), the driver ``status`` messages fleetd handled per second against those
sent, and the seconds the planner spent solving. The busy phase runs with the full
optimisation in the worker process (``dispatch.solver = "process"``, the default) and in
a thread of the daemon (``"thread"``) for comparison, unless ``--busy-solver`` says one.

Not a test: figures, not assertions. Run: ``.venv/bin/python benchmarks/dispatch_latency.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import multiprocessing as mp
import random
import shutil
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiomqtt
import api_latency as bench
import httpx

MQTT_HOST, MQTT_PORT = "127.0.0.1", 1883
#: aiomqtt's logger: it warns about every pending publish beyond ten, which the load
#: generator has by design.
QUIET = logging.getLogger("bench.mqtt")
QUIET.setLevel(logging.ERROR)
TRIP_AFTER_ACCEPT = ("arrived_pickup", "picked_up", "to_dropoff", "arrived_dropoff", "dropped_off")


@dataclass(frozen=True)
class Place:
    name: str
    lat: float
    lon: float


def campus_places() -> list[Place]:
    data = tomllib.loads(bench.MAP_FILE.read_text(encoding="utf-8"))
    for facility in data["facilities"]:
        if facility["key"] == bench.FACILITY:
            return [
                Place(str(p["name"]), float(p["lat"]), float(p["lon"])) for p in facility["places"]
            ]
    raise RuntimeError(f"{bench.MAP_FILE} has no facility {bench.FACILITY!r}")


def percentile(values: list[float], q: float) -> float:
    return bench.percentile(sorted(values), q)


# --- simulated drivers ----------------------------------------------------------------------


@dataclass
class Driver:
    driver_id: str
    lat: float
    lon: float
    slot: int  # which MQTT connection carries it
    headers: dict[str, int] = field(default_factory=dict)
    job: str | None = None  # mission id in hand

    def header(self, topic: str) -> dict[str, Any]:
        self.headers[topic] = self.headers.get(topic, -1) + 1
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return {
            "headerId": self.headers[topic],
            "timestamp": now,
            "version": "1.0",
            "driverId": self.driver_id,
        }


class DriverFleet:
    """Many simulated drivers on a few MQTT connections, one asyncio process."""

    def __init__(
        self,
        prefix: str,
        count: int,
        places: list[Place],
        *,
        connections: int,
        status_interval_s: float,
        hold_s: float,
        seed: int,
    ) -> None:
        rng = random.Random(seed)
        lats = [p.lat for p in places]
        lons = [p.lon for p in places]
        tag = uuid.uuid4().hex[:6]
        self.prefix = prefix
        self.drivers = [
            Driver(
                f"bd-{tag}-{i:05d}",
                rng.uniform(min(lats), max(lats)),
                rng.uniform(min(lons), max(lons)),
                slot=i,
            )
            for i in range(count)
        ]
        self.by_id = {d.driver_id: d for d in self.drivers}
        self.connections = max(1, min(connections, count))
        self.status_interval_s = status_interval_s
        self.hold_s = hold_s
        #: Mission id -> time.monotonic() its first offer arrived.
        self.offered: dict[str, float] = {}
        self.offers = 0
        self.status_sent = 0
        self._clients: list[aiomqtt.Client] = []
        self._jobs_due: list[tuple[float, Driver, str]] = []

    def topic(self, d: Driver, name: str) -> str:
        return f"{self.prefix}/{d.driver_id}/{name}"

    def client_of(self, d: Driver) -> aiomqtt.Client:
        return self._clients[d.slot % len(self._clients)]

    async def _send(
        self, d: Driver, name: str, body: dict[str, Any], qos: int = 1, retain: bool = False
    ) -> None:
        msg = {**d.header(name), **body}
        await self.client_of(d).publish(
            self.topic(d, name), json.dumps(msg), qos=qos, retain=retain
        )

    def status(self, d: Driver) -> dict[str, Any]:
        body: dict[str, Any] = {
            "availability": "busy" if d.job else "online",
            "lat": round(d.lat, 7),
            "lon": round(d.lon, 7),
            "accuracyM": 5.0,
            "headingDeg": 0.0,
            "speedMps": 0.0,
            "phoneBatteryPct": 80.0,
        }
        if d.job:
            body["missionId"] = d.job
        return body

    async def run(self, online: asyncio.Event) -> None:
        async with contextlib.AsyncExitStack() as stack:
            for n in range(self.connections):
                client = aiomqtt.Client(
                    MQTT_HOST,
                    MQTT_PORT,
                    identifier=f"bench-dispatch-{self.prefix}-{n}",
                    logger=QUIET,
                    max_queued_outgoing_messages=0,
                )
                self._clients.append(await stack.enter_async_context(client))
            listener = await stack.enter_async_context(
                aiomqtt.Client(
                    MQTT_HOST,
                    MQTT_PORT,
                    identifier=f"bench-dispatch-{self.prefix}-offers",
                    logger=QUIET,
                )
            )
            await listener.subscribe(f"{self.prefix}/+/offer", qos=1)
            await asyncio.gather(
                *(
                    self._send(d, "connection", {"connectionState": "ONLINE"}, retain=True)
                    for d in self.drivers
                )
            )
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._offers(listener))
                tg.create_task(self._statuses(online))
                tg.create_task(self._completions())

    async def _statuses(self, online: asyncio.Event) -> None:
        """Every driver's status once per interval, spread over it."""
        batch = max(1, len(self.drivers) // max(1, int(self.status_interval_s * 20)))
        while True:
            started = time.monotonic()
            for i in range(0, len(self.drivers), batch):
                chunk = self.drivers[i : i + batch]
                await asyncio.gather(
                    *(self._send(d, "status", self.status(d), qos=0) for d in chunk)
                )
                self.status_sent += len(chunk)
                due = started + self.status_interval_s * (i + batch) / len(self.drivers)
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            online.set()

    async def _offers(self, listener: aiomqtt.Client) -> None:
        async for message in listener.messages:
            now = time.monotonic()
            offer = json.loads(
                message.payload if isinstance(message.payload, bytes | str) else b"{}"
            )
            driver = self.by_id.get(str(offer.get("driverId")))
            mission = str(offer.get("missionId", ""))
            self.offers += 1
            self.offered.setdefault(mission, now)
            if driver is None:
                continue
            accept = driver.job is None
            body: dict[str, Any] = {
                "offerId": offer.get("offerId", ""),
                "decision": "accept" if accept else "decline",
            }
            if not accept:
                body["reason"] = "busy"
            await self._send(driver, "offerResponse", body)
            if accept:
                driver.job = mission
                await self._send(driver, "trip", self._trip(driver, mission, "to_pickup"))
                self._jobs_due.append((now + self.hold_s, driver, mission))

    def _trip(self, d: Driver, mission: str, event: str) -> dict[str, Any]:
        return {
            "missionId": mission,
            "event": event,
            "lat": round(d.lat, 7),
            "lon": round(d.lon, 7),
        }

    async def _completions(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            now = time.monotonic()
            due = [j for j in self._jobs_due if j[0] <= now]
            self._jobs_due = [j for j in self._jobs_due if j[0] > now]
            for _at, d, mission in due:
                for event in TRIP_AFTER_ACCEPT:
                    await self._send(d, "trip", self._trip(d, mission, event))
                d.job = None
                await self._send(d, "status", self.status(d), qos=1)

    async def clear_retained(self) -> None:
        """Remove the retained ``connection`` messages from the shared broker."""
        async with aiomqtt.Client(
            MQTT_HOST, MQTT_PORT, identifier=f"bench-dispatch-{self.prefix}-clear", logger=QUIET
        ) as c:
            # In chunks: thousands of QoS 1 publishes at once outrun the client's timeout.
            for i in range(0, len(self.drivers), 200):
                await asyncio.gather(
                    *(
                        c.publish(self.topic(d, "connection"), b"", qos=1, retain=True)
                        for d in self.drivers[i : i + 200]
                    )
                )


# --- metrics ------------------------------------------------------------------------------


def scrape(http: httpx.Client) -> dict[str, float]:
    """The counters this benchmark reads from fleetd's ``/metrics``."""
    out: dict[str, float] = {"status": 0.0, "plan_s": 0.0, "plans": 0.0}
    for line in http.get("/metrics").text.splitlines():
        if line.startswith("fleetd_messages_received_total{") and 'topic="status"' in line:
            out["status"] += float(line.rsplit(" ", 1)[1])
        elif 'strategy="greedy"' in line:
            continue  # the quick insertions: only the full plans count as "busy"
        elif line.startswith("fleetd_dispatch_plan_seconds_sum{"):
            out["plan_s"] += float(line.rsplit(" ", 1)[1])
        elif line.startswith("fleetd_dispatch_plan_seconds_count{"):
            out["plans"] += float(line.rsplit(" ", 1)[1])
    return out


# --- phases -------------------------------------------------------------------------------


@dataclass
class LatencyRow:
    vehicles: int
    missions: int
    offered: int
    post_ms: list[float]
    offer_ms: list[float]
    #: Cores fleetd used during the missions (its CPU seconds / wall seconds), and the
    #: whole machine's (other users included).
    fleetd_cores: float = 0.0
    machine_cores: float = 0.0


@dataclass
class BusyRow:
    solver: str
    vehicles: int
    open_missions: int
    seconds: float
    get_ms: list[float]
    get_errors: int
    status_sent_per_s: float
    status_handled_per_s: float
    planner_busy: float  # solver seconds per wall second (full plans)
    plans: int


def mission_body(rng: random.Random, places: list[Place], ref: str) -> dict[str, Any]:
    pickup, dropoff = rng.sample(places, 2)
    return {
        "pickup": {"place": pickup.name},
        "dropoff": {"place": dropoff.name},
        "priority": "normal",
        "requirements": {"vehicle_kind": "driver"},
        "passenger": {"ref": ref},
    }


async def create_missions(
    http: httpx.AsyncClient, token: str, places: list[Place], count: int, rate: float, seed: int
) -> tuple[dict[str, float], list[float], int]:
    """``count`` missions at ``rate``/s, open loop: mission id -> send time, POST ms, errors."""
    rng = random.Random(seed)
    sent: dict[str, float] = {}
    post_ms: list[float] = []
    errors = 0
    headers = {"Authorization": f"Bearer {token}"}
    start = time.monotonic()

    async def one(i: int) -> None:
        nonlocal errors
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        t0 = time.monotonic()
        try:
            r = await http.post(
                "/v1/missions",
                json=mission_body(rng, places, f"bench-{i}"),
                headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
            )
        except httpx.HTTPError:
            errors += 1
            return
        if r.status_code != 201:
            errors += 1
            return
        post_ms.append((time.monotonic() - t0) * 1000)
        sent[r.json()["id"]] = t0

    await asyncio.gather(*(one(i) for i in range(count)))
    return sent, post_ms, errors


async def wait_online(
    fleetd_http: httpx.AsyncClient, token: str, count: int, limit_s: float
) -> int:
    """Wait until fleetd counts ``count`` drivers online (from ``/metrics``)."""
    deadline = time.monotonic() + limit_s
    online = 0
    while time.monotonic() < deadline:
        text = (await fleetd_http.get("/metrics")).text
        for line in text.splitlines():
            if line.startswith('fleetd_vehicles_online{kind="driver"}'):
                online = int(float(line.rsplit(" ", 1)[1]))
        if online >= count:
            return online
        await asyncio.sleep(0.5)
    return online


@dataclass
class ProbeResult:
    """What the probe process measured: mission id -> send time, POST ms, POST errors,
    mission id -> first offer's arrival (``time.monotonic()``, the same clock in every
    process of the machine)."""

    sent: dict[str, float]
    post_ms: list[float]
    errors: int
    offered: dict[str, float]


async def _probe(args: ProbeArgs) -> ProbeResult:
    offered: dict[str, float] = {}

    async def listen(listener: aiomqtt.Client) -> None:
        async for message in listener.messages:
            now = time.monotonic()
            payload = message.payload if isinstance(message.payload, bytes | str) else b"{}"
            offered.setdefault(str(json.loads(payload).get("missionId", "")), now)

    async with (
        aiomqtt.Client(
            MQTT_HOST, MQTT_PORT, identifier=f"bench-dispatch-{args.prefix}-probe", logger=QUIET
        ) as listener,
        httpx.AsyncClient(base_url=args.base_url, timeout=30) as http,
    ):
        await listener.subscribe(f"{args.prefix}/+/offer", qos=1)
        task = asyncio.create_task(listen(listener))
        sent, post_ms, errors = await create_missions(
            http, args.token, campus_places(), args.missions, args.rate, args.seed
        )
        for _ in range(100):  # up to 10 s for the last offers
            if all(m in offered for m in sent):
                break
            await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return ProbeResult(sent, post_ms, errors, offered)


@dataclass(frozen=True)
class ProbeArgs:
    base_url: str
    token: str
    prefix: str
    missions: int
    rate: float
    seed: int


def _probe_main(conn: Connection, args: ProbeArgs) -> None:
    """The probe process: creates the missions and timestamps their offers."""
    conn.send(asyncio.run(_probe(args)))
    conn.close()


async def probe(args: ProbeArgs) -> ProbeResult:
    """Run :func:`_probe` in a process of its own, so the simulated drivers' traffic (a
    core's worth at 5,000 drivers) delays neither a POST's send nor an offer's arrival
    time: both would otherwise count the load generator's own queue against fleetd."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_probe_main, args=(child, args), daemon=True)
    proc.start()
    child.close()
    try:
        result: ProbeResult = await asyncio.to_thread(parent.recv)
    finally:
        await asyncio.to_thread(proc.join, 30)
    return result


async def latency_phase(
    args: argparse.Namespace, fleetd: bench.Fleetd, token: str, n: int
) -> LatencyRow:
    places = campus_places()
    prefix = fleetd.env["FLEETD_MQTT__DRIVER_PREFIX"]
    fleet = DriverFleet(
        prefix,
        n,
        places,
        connections=args.connections,
        status_interval_s=args.status_interval,
        hold_s=args.hold,
        seed=n,
    )
    online = asyncio.Event()
    async with httpx.AsyncClient(base_url=fleetd.base_url, timeout=30) as http:
        runner = asyncio.create_task(fleet.run(online))
        try:
            await asyncio.wait_for(online.wait(), 120)
            seen = await wait_online(http, token, n, 120)
            bench.log(f"   {seen} of {n} drivers online at fleetd")
            pid = fleetd.proc.pid if fleetd.proc is not None else 0
            cpu0, machine0, t0 = bench.proc_cpu_s(pid), bench.machine_cpu_s(), time.monotonic()
            got = await probe(
                ProbeArgs(fleetd.base_url, token, prefix, args.missions, args.rate, n)
            )
            wall = time.monotonic() - t0
            fleetd_cores = (bench.proc_cpu_s(pid) - cpu0) / wall
            machine_cores = (bench.machine_cpu_s() - machine0) / wall
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            await fleet.clear_retained()
    offer_ms = [(got.offered[m] - at) * 1000 for m, at in got.sent.items() if m in got.offered]
    if got.errors:
        bench.log(f"   {got.errors} POSTs failed")
    return LatencyRow(
        n, len(got.sent), len(offer_ms), got.post_ms, offer_ms, fleetd_cores, machine_cores
    )


async def busy_phase(
    args: argparse.Namespace, fleetd: bench.Fleetd, token: str, solver: str
) -> BusyRow:
    """Every driver holds its job; a backlog keeps the planner busy; measure the rest."""
    places = campus_places()
    n = args.busy_vehicles
    prefix = fleetd.env["FLEETD_MQTT__DRIVER_PREFIX"]
    fleet = DriverFleet(
        prefix,
        n,
        places,
        connections=args.connections,
        status_interval_s=args.status_interval,
        hold_s=3600.0,
        seed=7,
    )
    online = asyncio.Event()
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=fleetd.base_url, timeout=30) as http:
        runner = asyncio.create_task(fleet.run(online))
        try:
            await asyncio.wait_for(online.wait(), 120)
            await wait_online(http, token, n, 120)
            total = n + args.backlog
            sent, _post, _errors = await create_missions(
                http, token, places, total, args.busy_create_rate, 99
            )
            ids = list(sent)
            bench.log(f"   {len(ids)} missions created; {len(fleet.offered)} offered so far")
            await asyncio.sleep(3.0)  # the engine takes up the backlog
            with httpx.Client(base_url=fleetd.base_url, timeout=10) as sync_http:
                before = scrape(sync_http)
            sent_before = fleet.status_sent
            t0 = time.monotonic()
            get_ms: list[float] = []
            get_errors = 0

            async def get(i: int) -> None:
                nonlocal get_errors
                due = t0 + i / args.busy_rate
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                try:
                    r = await http.get(f"/v1/missions/{ids[i % len(ids)]}", headers=headers)
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if not ok:
                    get_errors += 1
                get_ms.append((time.monotonic() - due) * 1000)

            await asyncio.gather(*(get(i) for i in range(int(args.busy_rate * args.busy_duration))))
            wall = time.monotonic() - t0
            with httpx.Client(base_url=fleetd.base_url, timeout=10) as sync_http:
                after = scrape(sync_http)
            sent_during = fleet.status_sent - sent_before
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            await fleet.clear_retained()
    return BusyRow(
        solver=solver,
        vehicles=n,
        open_missions=args.backlog,
        seconds=wall,
        get_ms=get_ms,
        get_errors=get_errors,
        status_sent_per_s=sent_during / wall,
        status_handled_per_s=(after["status"] - before["status"]) / wall,
        planner_busy=(after["plan_s"] - before["plan_s"]) / wall,
        plans=int(after["plans"] - before["plans"]),
    )


def stop_fleetd(args: argparse.Namespace, fleetd: bench.Fleetd, name: str) -> None:
    if args.keep_logs:
        shutil.copy(fleetd.log_path, Path(args.keep_logs) / f"fleetd-{name}.log")
    fleetd.stop()


def with_fleetd(args: argparse.Namespace, extra: dict[str, str]) -> tuple[bench.Fleetd, str]:
    env = {
        "FLEETD_FLEET__DEFAULT_FACILITY": bench.FACILITY,
        "FLEETD_FLEET__HEARTBEAT_TIMEOUT_S": str(max(10.0, args.status_interval * 3)),
        **extra,
        **bench.parse_env(args.server_env),
    }
    fleetd = bench.Fleetd(log_level=args.server_log_level, extra_env=env)
    bench.log(f"-- fleetd on {fleetd.base_url} (log: {fleetd.log_path})")
    token = fleetd.start(1)[0]
    return fleetd, token


def render(rows: list[LatencyRow], busy: list[BusyRow], args: argparse.Namespace) -> Iterator[str]:
    yield (
        f"fleetd dispatch latency: {args.missions} missions at {args.rate}/s per fleet size, "
        f"simulated drivers on {args.connections} MQTT connections + 1 listener, missions "
        f"created and offers timestamped by a probe process of its own, status every "
        f"{args.status_interval} s, load average before the run {args.loadavg}"
    )
    yield ""
    yield (
        "vehicles  missions  offered  offer p50 ms  offer p99 ms  offer max ms  "
        "POST p50 ms  POST p99 ms  target p99      fleetd cores  machine cores"
    )
    for r in rows:
        target = 100.0 if r.vehicles <= 500 else 500.0
        p99 = percentile(r.offer_ms, 99)
        verdict = "pass" if r.offered == r.missions and p99 < target else "FAIL"
        yield (
            f"{r.vehicles:>8,}  {r.missions:>8}  {r.offered:>7}  "
            f"{percentile(r.offer_ms, 50):>12.1f}  "
            f"{p99:>12.1f}  {max(r.offer_ms, default=float('nan')):>12.1f}  "
            f"{percentile(r.post_ms, 50):>11.1f}  {percentile(r.post_ms, 99):>11.1f}  "
            f"<{target:.0f} ms {verdict:<4}  {r.fleetd_cores:>12.2f}  {r.machine_cores:>13.2f}"
        )
    if busy:
        yield ""
        yield (
            "planner busy: solver   vehicles  backlog  GET p50 ms  GET p99 ms  GET max ms  errors  "
            "status sent/s  handled/s  solver s per s  full plans"
        )
        for b in busy:
            yield (
                f"              {b.solver:<7}  {b.vehicles:>8,}  {b.open_missions:>7}  "
                f"{percentile(b.get_ms, 50):>10.1f}  {percentile(b.get_ms, 99):>10.1f}  "
                f"{max(b.get_ms, default=float('nan')):>10.1f}  {b.get_errors:>6}  "
                f"{b.status_sent_per_s:>13.0f}  {b.status_handled_per_s:>9.0f}  "
                f"{b.planner_busy:>14.2f}  {b.plans:>10}"
            )
    yield ""
    yield (
        "offer: from just before POST /v1/missions is sent to the offer's arrival at the "
        "probe (broker delivery included). solver s per s: wall seconds of full plans per "
        "second of the busy window."
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--vehicles", default="50,500,5000", help="fleet sizes, comma-separated")
    parser.add_argument("--missions", type=int, default=100, help="missions per fleet size")
    parser.add_argument("--rate", type=float, default=5.0, help="missions created per second")
    parser.add_argument("--hold", type=float, default=2.0, help="s a driver keeps a job")
    parser.add_argument("--connections", type=int, default=8, help="MQTT connections")
    parser.add_argument("--status-interval", type=float, default=4.0, help="s between statuses")
    parser.add_argument("--busy-vehicles", type=int, default=200)
    parser.add_argument("--backlog", type=int, default=400, help="missions beyond the fleet")
    parser.add_argument("--busy-create-rate", type=float, default=50.0, help="missions/s")
    parser.add_argument("--busy-duration", type=float, default=20.0)
    parser.add_argument("--busy-rate", type=float, default=50.0, help="GETs per second")
    parser.add_argument(
        "--busy-solver", choices=["process", "thread", "both", "none"], default="both"
    )
    parser.add_argument("--server-log-level", default="warning")
    parser.add_argument("--server-env", action="append", default=[], metavar="FLEETD_KEY=VALUE")
    parser.add_argument("--keep-logs", metavar="DIR", help="copy each fleetd's log there")
    args = parser.parse_args()
    with open("/proc/loadavg", encoding="ascii") as f:
        args.loadavg = " ".join(f.read().split()[:3])
    rows: list[LatencyRow] = []
    busy: list[BusyRow] = []
    for n in [int(v) for v in args.vehicles.split(",") if v.strip()]:
        fleetd, token = with_fleetd(args, {})
        try:
            bench.log(f"-- latency: {n} drivers, {args.missions} missions at {args.rate}/s")
            rows.append(asyncio.run(latency_phase(args, fleetd, token, n)))
            r = rows[-1]
            bench.log(
                f"   offer p50 {percentile(r.offer_ms, 50):.1f} ms, p99 "
                f"{percentile(r.offer_ms, 99):.1f} ms ({r.offered} of {r.missions} offered)"
            )
        finally:
            stop_fleetd(args, fleetd, f"latency-{n}")
    solvers = {"both": ["process", "thread"], "none": []}.get(args.busy_solver, [args.busy_solver])
    for solver in solvers:
        fleetd, token = with_fleetd(args, {"FLEETD_DISPATCH__SOLVER": solver})
        try:
            bench.log(f"-- planner busy: solver in a {solver}, {args.busy_vehicles} drivers")
            busy.append(asyncio.run(busy_phase(args, fleetd, token, solver)))
        finally:
            stop_fleetd(args, fleetd, f"busy-{solver}")
    for line in render(rows, busy, args):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

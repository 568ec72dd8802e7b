"""Soak: a simulated fleet and a steady mission workload for a long time, with faults.

Not a test: it prints figures and asserts nothing (the fault suite under
tests/integration/faults is what checks each fault on its own). Defaults: 1,000 vehicles
(80 % robots, 20 % drivers) and 30 missions a minute for 30 minutes; one of each fault
every few minutes, in turn:

- ``daemon_kill9``: kill -9 the active daemon, start it again;
- ``broker_restart``: restart Mosquitto (persistence on: sessions and queued QoS 1 kept);
- ``postgres_restart``: stop PostgreSQL as if it crashed (``pg_ctl -m immediate``), start it;
- ``redis_flush``: FLUSHALL;
- ``failover``: with two daemons (``[leadership]`` in the settings), kill -9 the active
  one; the standby takes over; the killed one comes back as the standby;
- vehicle faults all along: ``fleetd sim run`` with a scenario this script writes
  (vanish, reconnect, fatal_error, stuck, battery_fault, silent_driver, malformed_burst).

Everything runs against PostgreSQL, Mosquitto and Redis instances this script starts
itself on free ports in a temporary directory (:mod:`sim.harness`, which the fault suite
uses too), so the machine's shared services are never touched. Missions are created
through the API, each with an Idempotency-Key that is re-sent until the daemon answers
201/200 (a daemon killed mid-request never makes the workload forget or double a
mission). ``GET /v1/events`` is followed throughout, resumed with ``Last-Event-ID`` after
every outage.

It prints: missions created / completed / failed / cancelled / still open; lost events
(every mission the API returned and every mission event the stream delivered, looked up
in PostgreSQL at the end: must be 0); the invariants of the fault suite
(:mod:`sim.invariants`: histories, one holder at a time, the audit chain); the daemon's
RSS at start and end; each fault's recovery time (kill of the active -> the standby
active, read from ``/readyz``'s ``leadership`` and the gauge ``fleetd_facility_active``);
the broker's dropped messages (``fleetd_broker_dropped_messages``, summed over broker
restarts).

    .venv/bin/python benchmarks/soak.py                            # 1,000 vehicles, 30 min
    .venv/bin/python benchmarks/soak.py --vehicles 100 --minutes 3  # a short run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dispatcher.config import Settings  # noqa: E402
from dispatcher.storage.db import create_pool  # noqa: E402
from sim.harness import (  # noqa: E402
    UNAVAILABLE,
    FleetdProcess,
    MissionWorkload,
    PrivateBroker,
    PrivatePostgres,
    PrivateRedis,
    Stack,
    free_port,
    operator_token,
)
from sim.invariants import check_all, wait_settled  # noqa: E402
from sim.observe import sse_events  # noqa: E402

#: Seconds a daemon may take to come up (migrations, 1,000 vehicles, a loaded machine).
READY_TIMEOUT_S = 120.0
#: Vehicle fault kinds the simulator injects (sim/scenario.py FaultRates).
VEHICLE_FAULTS = (
    "vanish",
    "reconnect",
    "fatal_error",
    "stuck",
    "battery_fault",
    "silent_driver",
    "malformed_burst",
)


#: Faults of fleetd and its dependencies, injected in this order, in turn.
INFRA_FAULTS = ("daemon_kill9", "broker_restart", "postgres_restart", "redis_flush", "failover")


def has_leadership() -> bool:
    """Whether this fleetd has active/standby per facility (a ``[leadership]`` section)."""
    return "leadership" in Settings.model_fields


# The daemons ------------------------------------------------------------------------------


@dataclass
class Daemon(FleetdProcess):
    """One ``fleetd run`` of the soak (``label`` a, b) on its own API port; restartable."""

    label: str = "a"
    leadership: bool = False
    #: Set while a fault kills and restarts it on purpose (the supervisor keeps off).
    intentional: bool = False
    #: Exits nobody asked for: (exit status, the last error in its log).
    crashes: list[tuple[int | None, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.name = f"fleetd-{self.label}"
        extra = {
            "FLEETD_API__PORT": str(free_port()),
            "FLEETD_DAEMON__INSTANCE_ID": f"soak-{self.label}",
            "FLEETD_DAEMON__STATE_DIR": str(self.stack.root / f"state-{self.label}"),
            "FLEETD_MQTT__CLIENT_ID": f"fleetd-soak-{self.stack.namespace}-{self.label}",
            "FLEETD_MQTT__PERSISTENT_SESSION": "true",
            "FLEETD_DAEMON__LOG_LEVEL": "warning",
            # The soak's fleet is real time: the fault suite's short timeouts would declare
            # robots offline during the daemon's own restarts for no reason.
            "FLEETD_FLEET__HEARTBEAT_TIMEOUT_S": "10",
            "FLEETD_FLEET__ROBOT_HEARTBEAT_TIMEOUT_S": "15",
            "FLEETD_DISPATCH__TICK_S": "2",
            "FLEETD_PLANNER__TIME_LIMIT_S": "1",
        }
        if self.leadership:
            extra["FLEETD_LEADERSHIP__ENABLED"] = "true"
        self.overrides = {**extra, **self.overrides}

    async def wait_serving(self, timeout_s: float = READY_TIMEOUT_S) -> float:
        return await super().wait_serving(timeout_s)

    def terminate(self, timeout_s: float = 40.0) -> int | None:
        return super().terminate(timeout_s)

    async def readiness(self) -> dict[str, object] | None:
        try:
            async with httpx.AsyncClient(base_url=self.base_url, timeout=2.0) as client:
                body: dict[str, object] = (await client.get("/readyz")).json()
                return body
        except (httpx.HTTPError, ValueError):
            return None

    async def active_facilities(self) -> set[str]:
        """Facilities this daemon is active for (``/readyz`` leadership), all when
        there is no leadership and it answers."""
        body = await self.readiness()
        if body is None:
            return set()
        leadership = body.get("leadership")
        if isinstance(leadership, dict):
            return {k for k, v in leadership.items() if v == "active"}
        return {"*"}


# Event stream and operator ------------------------------------------------------------------


@dataclass
class EventFollower:
    """``GET /v1/events?types=mission`` from whichever daemon answers, resumed by id."""

    urls: Callable[[], list[str]]
    token: str
    #: seq -> (mission id, event name) of every mission event delivered.
    seen: dict[int, tuple[str, str]] = field(default_factory=dict)
    reconnects: int = 0

    async def run(self) -> None:
        last_id: str | None = None
        attempt = 0
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(10.0, read=30.0)) as c:
            while True:
                urls = self.urls()
                url = urls[attempt % len(urls)]
                attempt += 1
                resume = {"Last-Event-ID": last_id} if last_id else {}
                try:
                    async with c.stream(
                        "GET", f"{url}/v1/events", params={"types": "mission"}, headers=resume
                    ) as response:
                        if response.status_code != 200:
                            await asyncio.sleep(1.0)
                            continue
                        buffer: list[str] = []
                        async for line in response.aiter_lines():
                            buffer.append(line)
                            if line.strip():
                                continue
                            for event_id, data in sse_events(buffer):
                                last_id = event_id or last_id
                                self._take(data)
                            buffer = []
                except httpx.HTTPError:
                    pass
                self.reconnects += 1
                await asyncio.sleep(0.5)

    def _take(self, data: str) -> None:
        try:
            body = json.loads(data)
            self.seen[int(body["seq"])] = (str(body["mission_id"]), str(body["event"]))
        except (ValueError, KeyError, TypeError):
            pass


@dataclass
class Operator:
    """What staff do for held missions: a mission whose rider is on board and whose vehicle
    was lost (or whose daemon restarted) waits for an operator (docs/dispatch.md). The
    soak resolves each with ``reassign`` (``fail`` when reassigning is not allowed), as a
    dispatcher at the desk would, so the workload can finish."""

    dsn: str
    urls: Callable[[], list[str]]
    token: str
    resolved: dict[str, int] = field(default_factory=dict)

    async def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(headers=headers, timeout=10.0) as client:
            while True:
                await asyncio.sleep(5.0)
                try:
                    held = await self._held()
                except (OSError, asyncpg.PostgresError):
                    continue  # the soak's own PostgreSQL restart
                for mission_id, reason in held:
                    await self._resolve(client, mission_id, reason)

    async def _held(self) -> list[tuple[uuid.UUID, str]]:
        conn = await asyncpg.connect(self.dsn, timeout=5)
        try:
            rows = await conn.fetch(
                "SELECT id, held_reason FROM missions WHERE held_reason IS NOT NULL"
            )
        finally:
            await conn.close()
        return [(r["id"], str(r["held_reason"])) for r in rows]

    async def _resolve(self, client: httpx.AsyncClient, mission_id: uuid.UUID, why: str) -> None:
        for choice in ("reassign", "fail"):
            for url in self.urls():
                try:
                    r = await client.post(
                        f"{url}/v1/missions/{mission_id}/resolve",
                        json={"choice": choice, "reason": f"soak operator ({why})"},
                    )
                except httpx.HTTPError:
                    continue
                if r.status_code == 200:
                    key = f"{choice} ({why})"
                    self.resolved[key] = self.resolved.get(key, 0) + 1
                    return
                if r.status_code == 409:
                    break  # not allowed now: try the next choice
            else:
                return  # no daemon answered: the next round tries again


def soak_workload(soak: Soak, token: str, places: tuple[str, ...]) -> MissionWorkload:
    """Missions at a steady rate through whichever daemon answers (the running ones first);
    never lost, never doubled. Unlike a fault test, a run of many minutes keeps its planned
    number (missions an outage held up are sent right after it), re-sends a 409/429 too and
    goes on past a mission refused for good (a figure, not a failure)."""

    def refused(r: httpx.Response) -> None:
        print(f"[soak] mission refused for good: {r.status_code} {r.text[:200]}")

    return MissionWorkload(
        soak.urls, token, places, per_second=soak.args.missions_per_minute / 60.0,
        name="soak", timeout_s=10.0, retry_after_s=0.5,
        retry_statuses=UNAVAILABLE | {409, 429, *range(500, 600)}, on_refused=refused,
        catch_up=True,
    )  # fmt: skip


# Faults -------------------------------------------------------------------------------------


@dataclass
class FaultResult:
    kind: str
    at_s: float
    recovery_s: float | None
    note: str = ""


@dataclass
class Soak:
    args: argparse.Namespace
    stack: Stack
    pg: PrivatePostgres
    broker: PrivateBroker
    redis: PrivateRedis
    daemons: list[Daemon]
    started: float = field(default_factory=time.monotonic)
    results: list[FaultResult] = field(default_factory=list)
    dropped_total: int = 0
    _dropped_last: int | None = None

    def urls(self) -> list[str]:
        """Daemon URLs, the running ones first."""
        return [d.base_url for d in sorted(self.daemons, key=lambda d: not d.alive)]

    async def active(self) -> Daemon:
        """The daemon active for the facilities (the only one without leadership)."""
        for d in self.daemons:
            if d.alive and await d.active_facilities():
                return d
        return self.daemons[0]

    async def wait_ready(
        self, daemon: Daemon, *, need: Callable[[dict[str, object]], bool]
    ) -> float:
        """Seconds until ``daemon``'s /readyz body satisfies ``need``."""
        started = time.monotonic()
        while time.monotonic() - started < READY_TIMEOUT_S:
            body = await daemon.readiness()
            if body is not None and need(body):
                return time.monotonic() - started
            await asyncio.sleep(0.2)
        raise RuntimeError(f"not recovered within {READY_TIMEOUT_S}s")

    def _record(self, kind: str, at: float, recovery: float | None, note: str = "") -> None:
        result = FaultResult(kind, at - self.started, recovery, note)
        self.results.append(result)
        took = f"{recovery:.1f} s" if recovery is not None else "-"
        print(f"[soak] {result.at_s:7.1f} s  {kind:17s} recovered in {took}  {note}", flush=True)

    async def supervise(self) -> None:
        """What systemd's Restart=on-failure does: a daemon that exits by itself is
        restarted (after RestartSec); each such exit is counted with its last error."""
        while True:
            for d in self.daemons:
                if d.intentional or d.proc is None or d.proc.poll() is None:
                    continue
                crash = (d.proc.returncode, d.last_error())
                d.crashes.append(crash)
                at = time.monotonic() - self.started
                print(f"[soak] {at:7.1f} s  daemon {d.label} EXITED by itself (status "
                      f"{crash[0]}): {crash[1]}; restarting", flush=True)  # fmt: skip
                await asyncio.sleep(2.0)
                d.start()
            await asyncio.sleep(1.0)

    async def daemon_kill9(self) -> None:
        daemon = await self.active()
        at = time.monotonic()
        daemon.intentional = True
        daemon.kill9()
        if len(self.daemons) > 1:
            # The standby takes over; the killed one comes back as the standby.
            other = next(d for d in self.daemons if d is not daemon)
            took = await self._until_active(other, at)
            daemon.start()
            daemon.intentional = False
            await daemon.wait_serving()
            self._record("daemon_kill9", at, took, "kill -> standby active")
            return
        daemon.start()
        daemon.intentional = False
        await daemon.wait_serving()
        took = time.monotonic() - at + await self.wait_ready(daemon, need=_ready)
        self._record("daemon_kill9", at, took, "kill -> restarted daemon ready")

    async def broker_restart(self) -> None:
        daemon = await self.active()
        at = time.monotonic()
        await asyncio.to_thread(self.broker.restart, 2.0)
        await asyncio.sleep(0.5)
        took = time.monotonic() - at + await self.wait_ready(daemon, need=_broker_ok)
        self._record("broker_restart", at, took, "2 s down -> daemon's broker session up")

    async def postgres_restart(self) -> None:
        daemon = await self.active()
        at = time.monotonic()
        await asyncio.to_thread(self.pg.restart, "immediate", 3.0)
        took = time.monotonic() - at + await self.wait_ready(daemon, need=_ready)
        self._record("postgres_restart", at, took, "crash + 3 s down -> ready, spool empty")

    async def redis_flush(self) -> None:
        daemon = await self.active()
        at = time.monotonic()
        await self.redis.flushall()
        took = time.monotonic() - at + await self.wait_ready(daemon, need=_ready)
        self._record("redis_flush", at, took, "FLUSHALL -> ready")

    async def failover(self) -> None:
        if len(self.daemons) < 2:
            self._record(
                "failover", time.monotonic(), None,
                "SKIPPED: this fleetd's settings have no [leadership] section (active/standby "
                "per facility not built yet), so there is no standby to take over",
            )  # fmt: skip
            return
        await self.daemon_kill9_for_failover()

    async def daemon_kill9_for_failover(self) -> None:
        daemon = await self.active()
        other = next(d for d in self.daemons if d is not daemon)
        at = time.monotonic()
        daemon.intentional = True
        daemon.kill9()
        took = await self._until_active(other, at)
        self._record("failover", at, took, f"kill {daemon.label} -> {other.label} active")
        daemon.start()
        daemon.intentional = False
        await daemon.wait_serving()

    async def _until_active(self, daemon: Daemon, since: float) -> float | None:
        """Seconds from ``since`` until ``daemon`` is active for every facility."""
        want = {f.key for f in Settings().effective_facilities}
        while time.monotonic() - since < READY_TIMEOUT_S:
            active = await daemon.active_facilities()
            if want <= active or active == {"*"}:
                return time.monotonic() - since
            await asyncio.sleep(0.1)
        return None

    async def watch_drops(self) -> None:
        """Sum the broker's dropped-message count over its restarts (it starts at 0)."""
        while True:
            for d in self.daemons:
                value = await _metric(d, "fleetd_broker_dropped_messages")
                if value is None:
                    continue
                last = self._dropped_last
                if last is None or value < last:
                    self.dropped_total += int(value)
                else:
                    self.dropped_total += int(value - last)
                self._dropped_last = int(value)
                break
            await asyncio.sleep(5.0)


def _ready(body: dict[str, object]) -> bool:
    return body.get("status") == "ready"


def _broker_ok(body: dict[str, object]) -> bool:
    checks = body.get("checks")
    return isinstance(checks, dict) and bool(checks.get("broker", {}).get("ok"))


async def _metric(daemon: Daemon, name: str) -> float | None:
    try:
        async with httpx.AsyncClient(base_url=daemon.base_url, timeout=3.0) as client:
            text = (await client.get("/metrics")).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


# The simulator ------------------------------------------------------------------------------


def write_scenario(path: Path, args: argparse.Namespace, wall_s: float) -> None:
    """A scenario of vehicles and vehicle faults only: the soak creates the missions."""
    robots = round(args.vehicles * 0.8)
    drivers = args.vehicles - robots
    # Per simulated hour, so each kind strikes about every --vehicle-fault-every wall minutes.
    rate = 60.0 / args.vehicle_fault_every / args.time_scale
    faults = "\n".join(f"{k} = {rate:.3f}" for k in VEHICLE_FAULTS)
    path.write_text(
        f'name = "soak"\nseed = {args.seed}\nfacility = "demo-campus"\n'
        f"duration_s = {wall_s * args.time_scale:.0f}\ntime_scale = {args.time_scale}\n\n"
        f"[fleet]\nrobots = {robots}\ndrivers = {drivers}\nstate_interval_s = 1.0\n"
        'battery_start = [60.0, 100.0]\nmanufacturer = "soakbot"\n\n'
        "[workload]\nmissions_per_hour = 0.0\n\n"
        f"[faults]\n{faults}\n"
    )


def start_sim(stack: Stack, daemon: Daemon, scenario: Path, token: str) -> subprocess.Popen[bytes]:
    out = (stack.root / "sim.log").open("ab")
    env = stack.env(
        FLEETD_API__PORT=daemon.overrides["FLEETD_API__PORT"],
        FLEETD_TOKEN=token,
        FLEETD_DAEMON__LOG_LEVEL="warning",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "dispatcher.cli", "sim", "run", str(scenario), "--no-progress",
         "--report", str(stack.root / "sim-report")],
        env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
    )  # fmt: skip
    out.close()
    return proc


def sim_faults(stack: Stack) -> dict[str, int]:
    counts: dict[str, int] = {}
    for path in (stack.root / "sim-report").glob("*.json"):
        with contextlib.suppress(ValueError, OSError):
            for fault in json.loads(path.read_text()).get("faults", []):
                counts[fault["kind"]] = counts.get(fault["kind"], 0) + 1
    return counts


# The run ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def db_pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on ``dsn`` made as fleetd makes its own (codecs included), closed afterwards."""
    pool = await create_pool(dsn, min_size=1, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


async def lost_events(
    dsn: str, created: list[uuid.UUID], seen: dict[int, tuple[str, str]], cutoff: float
) -> tuple[int, int, int]:
    """(missions the API returned that are not stored, streamed events not stored as
    streamed, stored events of the run's missions, up to ``cutoff`` (epoch s), that the
    stream never delivered)."""
    conn = await asyncpg.connect(dsn)
    try:
        stored_missions = {
            r["id"]
            for r in await conn.fetch("SELECT id FROM missions WHERE id = ANY($1::uuid[])", created)
        }
        rows = await conn.fetch(
            "SELECT seq, mission_id, event, extract(epoch FROM at) AS at FROM mission_events "
            "WHERE mission_id = ANY($1::uuid[])",
            created,
        )
    finally:
        await conn.close()
    stored = {int(r["seq"]): (str(r["mission_id"]), str(r["event"])) for r in rows}
    missing_missions = sum(1 for m in created if m not in stored_missions)
    ours = {str(m) for m in created}
    lost = sum(1 for seq, ev in seen.items() if ev[0] in ours and stored.get(seq) != ev)
    before = {int(r["seq"]) for r in rows if float(r["at"]) <= cutoff}
    unseen = sum(1 for seq in before if seq not in seen)
    return missing_missions, lost, unseen


def _directories() -> tuple[Path, Path, Path, Path]:
    """The run's temporary directory and those of the broker, Redis and the daemons."""
    root = Path(tempfile.mkdtemp(prefix="fleetd-soak-"))
    root.chmod(0o755)  # PostgreSQL and Mosquitto run as their own users below it
    subdirs = [root / "mosquitto", root / "redis", root / "stack"]
    for sub in subdirs:
        sub.mkdir(parents=True)
    return root, subdirs[0], subdirs[1], subdirs[2]


async def run(args: argparse.Namespace) -> int:
    root, broker_root, redis_root, stack_root = _directories()
    print(f"[soak] private services and logs in {root}", flush=True)
    pg = PrivatePostgres(root / "pg")
    broker, redis = PrivateBroker(broker_root), PrivateRedis(redis_root)
    daemons: list[Daemon] = []
    sim: subprocess.Popen[bytes] | None = None
    try:
        pg.init()
        pg.start()
        broker.start()
        redis.start()
        dsn = await pg.new_database()
        stack = Stack(dsn=dsn, broker=broker, redis=redis, pg=pg, root=stack_root)
        leadership = has_leadership()
        names = ("a", "b") if leadership and not args.one_daemon else ("a",)
        if not leadership:
            print(
                "[soak] two-daemon failover SKIPPED: this fleetd's settings have no "
                "[leadership] section; one daemon runs",
                flush=True,
            )
        daemons = [Daemon(stack, label=n, leadership=leadership and len(names) > 1) for n in names]
        for d in daemons:
            d.start()
            await d.wait_serving()
        soak = Soak(args, stack, pg, broker, redis, daemons)
        first = await soak.active()
        await soak.wait_ready(first, need=_ready)
        facility = Settings().default_facility
        token = await operator_token(dsn, facility.id)
        places = tuple(p.name for p in facility.places if p.node_id)
        wall_s = args.minutes * 60.0
        scenario = root / "soak-scenario.toml"
        write_scenario(scenario, args, wall_s + args.settle_s + 60)
        sim = start_sim(stack, first, scenario, token)
        # Vehicles connect before the workload starts.
        await asyncio.sleep(min(60.0, 5.0 + args.vehicles / 50))
        rss_start = {d.label: d.rss_mb() for d in daemons}
        workload = soak_workload(soak, token, places)
        follower = EventFollower(soak.urls, token)
        operator = Operator(dsn, soak.urls, token)
        every_fault: dict[str, Callable[[], Awaitable[None]]] = {
            "daemon_kill9": soak.daemon_kill9, "broker_restart": soak.broker_restart,
            "postgres_restart": soak.postgres_restart, "redis_flush": soak.redis_flush,
            "failover": soak.failover,
        }  # fmt: skip
        wanted = [f for f in args.faults.split(",") if f and f != "none"]
        faults = [every_fault[name] for name in wanted]
        # One fault every 3 minutes in turn (each kind twice in 30 minutes); a short run
        # spreads one of each over its length.
        every = args.fault_every * 60.0 or min(180.0, wall_s / (len(faults) + 1))
        if not faults:
            every = wall_s + 1  # a baseline: vehicle faults only
        print(
            f"[soak] {args.vehicles} vehicles, {args.missions_per_minute:g} missions/min for "
            f"{args.minutes:g} min; a daemon/broker/database/Redis/failover fault every "
            f"{every:.0f} s in turn; vehicle faults of each kind every ~"
            f"{args.vehicle_fault_every:g} min",
            flush=True,
        )
        soak.started = time.monotonic()
        async with asyncio.TaskGroup() as tg:
            side = [
                tg.create_task(follower.run(), name="soak.events"),
                tg.create_task(soak.watch_drops(), name="soak.drops"),
                tg.create_task(operator.run(), name="soak.operator"),
                tg.create_task(soak.supervise(), name="soak.supervise"),
            ]
            work = tg.create_task(workload.run(), name="soak.workload")
            end = soak.started + wall_s
            n = 0
            while soak.started + (n + 1) * every < end:
                await asyncio.sleep(max(0.0, soak.started + (n + 1) * every - time.monotonic()))
                try:
                    await faults[n % len(faults)]()
                except RuntimeError as exc:
                    print(f"[soak] fault {faults[n % len(faults)].__name__} failed: {exc}")
                n += 1
            await asyncio.sleep(max(0.0, end - time.monotonic()))
            workload.stop()
            await work
            print(f"[soak] workload stopped: {len(workload.created)} missions created; "
                  f"waiting up to {args.settle_s:g} s for them to finish", flush=True)  # fmt: skip
            async with db_pool(dsn) as pool:
                left = await wait_settled(pool, workload.created, args.settle_s)
            rss_end = {d.label: d.rss_mb() for d in daemons}
            # Events stored up to now must have reached the stream within a few seconds;
            # the daemon keeps working after this, so later ones are not counted.
            cutoff = time.time()
            await asyncio.sleep(5.0)
            for task in side:
                task.cancel()
        async with db_pool(dsn) as pool:
            report = await check_all(pool, created=workload.created)
            rows = await pool.fetch(
                "SELECT status, count(*) AS n FROM missions WHERE id = ANY($1::uuid[]) "
                "GROUP BY status",
                workload.created,
            )
        by_status = {r["status"]: r["n"] for r in rows}
        missing, lost, unseen = await lost_events(dsn, workload.created, follower.seen, cutoff)
        if sim is not None and sim.poll() is None:
            sim.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(sim.wait, 90)
        print_summary(args, soak, workload, follower, operator, by_status, left, report.ok,
                      report.describe() if not report.ok else "", missing, lost, unseen,
                      rss_start, rss_end, sim_faults(stack))  # fmt: skip
        return 0
    finally:
        if sim is not None and sim.poll() is None:
            sim.kill()
        for d in daemons:
            d.terminate()
        broker.stop(signal.SIGKILL)
        redis.stop()
        pg.stop("immediate")
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def print_summary(
    args: argparse.Namespace,
    soak: Soak,
    workload: MissionWorkload,
    follower: EventFollower,
    operator: Operator,
    by_status: dict[str, int],
    left: list[uuid.UUID],
    invariants_ok: bool,
    invariants: str,
    missing: int,
    lost: int,
    unseen: int,
    rss_start: dict[str, float | None],
    rss_end: dict[str, float | None],
    vehicle_faults: dict[str, int],
) -> None:
    def mb(v: float | None) -> str:
        return f"{v:.0f} MB" if v is not None else "-"

    print()
    print(f"== soak: {args.vehicles} vehicles, {args.minutes:g} min, "
          f"{args.missions_per_minute:g} missions/min ==")  # fmt: skip
    print(f"missions created   {len(workload.created)}  (retried requests {workload.retries}, "
          f"answers by status {workload.refused or {}})")  # fmt: skip
    print(f"  completed        {by_status.get('completed', 0)}")
    print(f"  failed           {by_status.get('failed', 0)}")
    print(f"  cancelled        {by_status.get('cancelled', 0)}")
    print(f"  still open       {len(left)}  (after {args.settle_s:g} s to settle)")
    print(f"lost events        {missing + lost}  (missions the API returned but not stored: "
          f"{missing}; streamed events not stored: {lost})")  # fmt: skip
    print(f"  stream           {len(follower.seen)} mission events delivered, {unseen} stored "
          f"ones never delivered, {follower.reconnects} reconnects")  # fmt: skip
    print(f"held missions      resolved by the soak's operator: {operator.resolved or 'none'}")
    print(f"invariants         {'ok' if invariants_ok else 'PROBLEMS'}")
    if invariants:
        # Missions still open are counted above ("still open"); the rest is shown.
        lines = [
            ln for ln in invariants.splitlines()
            if not ("nothing_forgotten:" in ln and ("is still" in ln or "more" in ln))
        ][:15]  # fmt: skip
        print("  " + "\n  ".join(lines))
    for d in soak.daemons:
        crashes = "; ".join(f"status {c[0]}: {c[1]}" for c in d.crashes) or "none"
        print(f"daemon {d.label} exits by itself (restarted as systemd would): "
              f"{len(d.crashes)}  [{crashes}]")  # fmt: skip
        print(f"daemon {d.label} RSS      start {mb(rss_start.get(d.label))}, end "
              f"{mb(rss_end.get(d.label))}  ({d.starts} starts)")  # fmt: skip
    print("faults (recovery)")
    for r in soak.results:
        took = f"{r.recovery_s:.1f} s" if r.recovery_s is not None else "-"
        print(f"  {r.at_s:7.1f} s  {r.kind:17s} {took:>8s}  {r.note}")
    print(f"vehicle faults     {vehicle_faults or 'none recorded'}")
    print(f"broker drops       {soak.dropped_total}  ($SYS/broker/publish/messages/dropped, "
          "summed over broker restarts)")  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--vehicles", type=int, default=1000, help="simulated vehicles (default 1000)")
    p.add_argument("--minutes", type=float, default=30.0, help="workload length (default 30)")
    p.add_argument("--missions-per-minute", type=float, default=30.0, help="default 30")
    p.add_argument(
        "--fault-every",
        type=float,
        default=0.0,
        help="minutes between infrastructure faults (default 3, or one of each "
        "spread over a shorter run)",
    )
    p.add_argument(
        "--vehicle-fault-every",
        type=float,
        default=3.0,
        help="wall minutes between vehicle faults of one kind (default 3)",
    )
    p.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="simulated seconds per wall second for the fleet (default 1)",
    )
    p.add_argument(
        "--settle-s",
        type=float,
        default=180.0,
        help="seconds open missions may take to finish after the workload",
    )
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument(
        "--faults",
        default=",".join(INFRA_FAULTS),
        help="infrastructure faults to inject in turn, comma-separated, or none "
        f"(default {','.join(INFRA_FAULTS)})",
    )
    p.add_argument("--one-daemon", action="store_true", help="no standby even with [leadership]")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    args = p.parse_args()  # fmt: skip
    unknown = [f for f in args.faults.split(",") if f and f not in (*INFRA_FAULTS, "none")]
    if unknown:
        p.error(f"unknown fault(s) {unknown}; known: {', '.join(INFRA_FAULTS)}")
    if shutil.which("mosquitto") is None or shutil.which("redis-server") is None:
        print("soak: needs mosquitto and redis-server on the PATH", file=sys.stderr)
        return 2
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())

"""A vehicle host: one process running hundreds of simulated vehicles on one event loop.

``fleetd sim run`` starts several hosts (multiprocessing, one asyncio loop each, uvloop
when installed) so that thousands of vehicles fit on a small machine. Each vehicle keeps
its own MQTT connection with its own Last Will, as a real one does, but the hosts use
gmqtt (the client fleetd's own ingest uses: an asyncio-native reader, no task or queue
per message, see shared MEASURED figures in docs/simulator.md) instead of aiomqtt, and one
ticker per process instead of one task per vehicle:

- every ``tick_s`` the ticker steps a quarter of the vehicles (each moves every
  ``4 * tick_s`` on its own elapsed time), publishes the replies they queued and the
  reports that are due. A report is due on a fixed schedule per vehicle (its phase drawn
  at start), not "interval after the last one", so lateness does not accumulate; a
  vehicle whose state changed reports at once as well (VDA 5050: on change and
  periodically).
- the host measures each periodic report's interval (a histogram in milliseconds) and
  sends its figures, samples of every vehicle and the faults it injected to the parent
  through a multiprocessing queue (plain tuples and dicts).

The behaviour of each vehicle is :class:`sim.robot.VirtualRobot` or
:class:`sim.driver.ScriptedDriver`, the same classes the one-task-per-vehicle fleet uses.

Faults are injected here, on the schedule the parent drew (:mod:`sim.schedule`): see
:mod:`sim.faults` for what each one does to a vehicle.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import multiprocessing.synchronize
import random
import time
from dataclasses import dataclass, field
from typing import Any

import gmqtt
import structlog
from gmqtt.mqtt.constants import MQTTv311

from sim.device import VirtualDevice
from sim.driver import DriverSpec, ScriptedDriver
from sim.faults import NOISY_ACCURACY_M, FaultState, malformed_payloads
from sim.odometry import OdometerTrace
from sim.robot import RobotSpec, VirtualRobot
from sim.schedule import PlannedFault

log = structlog.get_logger(__name__)

#: Interval histogram: 1 ms bins up to this many ms (longer intervals land in the last).
HIST_MS = 10_000
#: Vehicles connecting at once, per host (a burst of thousands of CONNECTs is refused).
CONNECT_CONCURRENCY = 32
#: Each vehicle is stepped every STEP_EVERY ticks.
STEP_EVERY = 4
#: Wall seconds between odometer marks while a vehicle keeps moving (sim.odometry).
ODOMETER_MARK_EVERY_S = 2.0


@dataclass(frozen=True)
class HostPlan:
    """What one host process runs (picklable: it crosses the process boundary)."""

    index: int
    host: str
    port: int
    username: str | None
    password: str | None
    vda_prefix: str
    driver_prefix: str
    robots: tuple[RobotSpec, ...]
    drivers: tuple[DriverSpec, ...]
    state_interval_s: float
    driver_status_interval_s: float
    time_scale: float
    faults: tuple[PlannedFault, ...]
    tick_s: float = 0.05
    sample_interval_s: float = 5.0
    stats_interval_s: float = 1.0
    seed: int = 0
    keepalive_s: int = 10


@dataclass
class Slot:
    """One vehicle in a host: its behaviour, its connection and its fault state."""

    device: VirtualDevice
    kind: str  # robot | driver
    name: str
    report_topic: str
    report_qos: int
    client: gmqtt.Client | None = None
    online: bool = False
    next_due: float = 0.0
    last_periodic: float | None = None
    last_step: float = 0.0
    fault: FaultState = field(default_factory=FaultState)
    trace: OdometerTrace = field(default_factory=lambda: OdometerTrace(ODOMETER_MARK_EVERY_S))


class Host:
    """Runs :class:`HostPlan` until ``stop`` is set; reports through ``out``."""

    def __init__(
        self, plan: HostPlan, out: Any, stop: multiprocessing.synchronize.Event, t0: Any
    ) -> None:
        """``t0``: a shared ``multiprocessing.Value("d")``, the wall clock (time.time()) of
        the run's simulated t = 0, set by the parent once every host is connected (0 until
        then: vehicles report, but no fault is injected)."""
        self.plan = plan
        self.t0 = t0
        self.out = out
        self.stop = stop
        self.slots: list[Slot] = []
        self.by_name: dict[str, Slot] = {}
        self.sent = 0
        self.received = 0
        #: Periodic report intervals by vehicle kind, and lateness against the schedule.
        self.hist = {"robot": [0] * (HIST_MS + 1), "driver": [0] * (HIST_MS + 1)}
        self.late_hist = [0] * (HIST_MS + 1)
        self.malformed_sent = 0
        self._rng = random.Random(f"{plan.seed}:host:{plan.index}")
        for spec in plan.robots:
            robot = VirtualRobot(
                spec,
                host=plan.host,
                port=plan.port,
                prefix=plan.vda_prefix,
                state_interval_s=plan.state_interval_s,
                tick_s=plan.tick_s,
            )
            self._add(robot, "robot", spec.serial)
        for dspec in plan.drivers:
            driver = ScriptedDriver(
                dspec,
                host=plan.host,
                port=plan.port,
                prefix=plan.driver_prefix,
                status_interval_s=plan.driver_status_interval_s,
                tick_s=plan.tick_s,
            )
            self._add(driver, "driver", dspec.driver_id)
        self._faults = sorted(plan.faults, key=lambda f: f.at_s)
        #: Tasks a fault started (a reconnect later, an error cleared later): cancelled at
        #: the end of the run, awaited by the run's task group.
        self._fault_tasks: list[asyncio.Task[None]] = []

    def _add(self, device: VirtualDevice, kind: str, name: str) -> None:
        device.time_scale = self.plan.time_scale
        slot = Slot(device, kind, name, device.topic(device.report_topic), device.report_qos)
        slot.trace.every_s = ODOMETER_MARK_EVERY_S * self.plan.time_scale
        self.slots.append(slot)
        self.by_name[name] = slot

    # --- connections --------------------------------------------------------------------

    def _new_client(self, slot: Slot) -> gmqtt.Client:
        dev = slot.device
        will = gmqtt.Message(
            dev.topic("connection"),
            json.dumps(dev.connection_message("CONNECTIONBROKEN")),
            qos=1,
            retain=True,
        )
        client = gmqtt.Client(dev.client_id, clean_session=True, will_message=will)
        if self.plan.username is not None:
            client.set_auth_credentials(self.plan.username, self.plan.password)
        client.set_config({"reconnect_retries": -1, "reconnect_delay": 2})
        handlers = dev.inbound()
        topics = {dev.topic(name): handler for name, handler in handlers.items()}

        def on_message(_c: Any, topic: str, payload: bytes, _qos: int, _props: Any) -> int:
            self.received += 1
            handler = topics.get(topic)
            if handler is None or slot.fault.muted:
                return 0
            try:
                msg = json.loads(payload)
            except ValueError:
                return 0
            if isinstance(msg, dict):
                handler(msg)
            return 0

        def on_connect(_c: Any, _flags: Any, _rc: Any, _props: Any) -> None:
            # A clean session: after gmqtt reconnects by itself (a broker restart, a cut),
            # the broker has forgotten the subscriptions, and the retained connection
            # topic may still say CONNECTIONBROKEN. A real vehicle subscribes again and
            # says ONLINE on every connection; so does this one.
            client.subscribe([gmqtt.Subscription(dev.topic(n), qos=1) for n in handlers])
            client.publish(
                dev.topic("connection"),
                json.dumps(dev.connection_message("ONLINE")),
                qos=1,
                retain=True,
            )
            self.sent += 1

        client.on_message = on_message
        client.on_connect = on_connect
        return client

    async def connect(self, slot: Slot) -> None:
        """Connect with the Last Will, subscribe, say ONLINE (retained)."""
        dev = slot.device
        client = self._new_client(slot)
        # Subscribing and ONLINE happen in on_connect (see _new_client), on this first
        # connection and on each of gmqtt's own reconnects alike.
        await client.connect(
            self.plan.host, self.plan.port, keepalive=self.plan.keepalive_s, version=MQTTv311
        )
        slot.client = client
        slot.online = True
        now = time.monotonic()
        slot.last_step = now
        slot.last_periodic = None
        slot.next_due = now + self._rng.uniform(0.0, dev.report_interval_s)

    async def disconnect(self, slot: Slot, *, clean: bool) -> None:
        """Clean: OFFLINE (retained), then DISCONNECT. Not clean: the socket is cut with no
        DISCONNECT, so the broker publishes the Last Will."""
        client, slot.client, slot.online = slot.client, None, False
        slot.trace.halt(self.sim_now(), slot.device.odometer_m)
        if client is None:
            return
        if clean:
            dev = slot.device
            client.publish(
                dev.topic("connection"),
                json.dumps(dev.connection_message("OFFLINE")),
                qos=1,
                retain=True,
            )
            self.sent += 1
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await client.disconnect()
            return
        # gmqtt's stop_reconnect() still allows one reconnect (it sets the retries to 0 and
        # checks failed <= retries), so the "vanished" vehicle would be back 2 s later and
        # then fight its successor for the client id. Marking the client inactive (what its
        # own disconnect() does) is what stops it.
        client.stop_reconnect()
        client._is_active = False
        # gmqtt has no "drop the connection" call: abort its transport, as a power cut would.
        transport = getattr(getattr(client, "_connection", None), "_transport", None)
        if transport is not None:
            transport.abort()

    # --- the ticker ---------------------------------------------------------------------

    def publish(self, slot: Slot, name: str, msg: dict[str, Any], qos: int = 1) -> None:
        if slot.client is None:
            return
        slot.client.publish(slot.device.topic(name), json.dumps(msg), qos=qos)
        self.sent += 1

    def _report(self, slot: Slot, now: float) -> None:
        report = slot.device.take_report()
        if slot.fault.noisy_until > now and slot.kind == "driver":
            sigma_deg = 40.0 / 111_000.0  # ~40 m
            report["lat"] = round(report["lat"] + self._rng.gauss(0.0, sigma_deg), 7)
            report["lon"] = round(report["lon"] + self._rng.gauss(0.0, sigma_deg), 7)
            # As a phone does: its own estimate of the fix's accuracy grows with the scatter.
            report["accuracyM"] = NOISY_ACCURACY_M
        assert slot.client is not None
        slot.client.publish(slot.report_topic, json.dumps(report), qos=slot.report_qos)
        self.sent += 1

    def tick(self, tick_no: int) -> None:
        now = time.monotonic()
        scale = self.plan.time_scale
        # Odometer marks from the run's t = 0 on (read once: t0 is shared between processes).
        t_sim = self.sim_now() if float(self.t0.value) > 0 else None
        for i, slot in enumerate(self.slots):
            if not slot.online or slot.client is None:
                continue
            fault = slot.fault
            if fault.muted:
                if now < fault.muted_until:
                    slot.device.take_outbox()  # a silent phone says nothing
                    slot.last_step = now
                    if t_sim is not None:
                        slot.trace.halt(t_sim, slot.device.odometer_m)
                    continue
                fault.unmute(slot.device)
            if i % STEP_EVERY == tick_no % STEP_EVERY:
                odo = slot.device.odometer_m
                if now >= fault.stuck_until:
                    slot.device.step((now - slot.last_step) * scale)
                if t_sim is not None:
                    before = max(0.0, t_sim - (now - slot.last_step) * scale)
                    slot.trace.observe(before, t_sim, odo, slot.device.odometer_m)
                slot.last_step = now
            for name, msg in slot.device.take_outbox():
                self.publish(slot, name, msg)
            if fault.silent_pending and fault.holds_job(slot.device):
                fault.mute(now)
                self._injected(slot, "silent_driver", "accepted an offer, then went silent")
            elif fault.silence_lapsed(now):
                self._injected(slot, "silent_driver", "skipped: no offer accepted in time")
            due = now >= slot.next_due
            if due:
                if slot.last_periodic is not None:
                    ms = round((now - slot.last_periodic) * 1000.0)
                    self.hist[slot.kind][min(ms, HIST_MS)] += 1
                late = round((now - slot.next_due) * 1000.0)
                self.late_hist[min(late, HIST_MS)] += 1
                slot.last_periodic = now
                slot.next_due += slot.device.report_interval_s
                if slot.next_due <= now:  # far behind (a stall): start a new schedule
                    slot.next_due = now + slot.device.report_interval_s
            if due or slot.device.changed:
                self._report(slot, now)

    # --- faults -------------------------------------------------------------------------

    def _injected(self, slot: Slot, kind: str, note: str, at: float | None = None) -> None:
        """Tell the parent: ``at`` is the simulated moment (default: now)."""
        self.out.put(("fault", kind, slot.name, self.sim_now() if at is None else at, note))

    async def _apply(self, fault: PlannedFault, tg: asyncio.TaskGroup) -> None:
        """Inject one fault (its moment has come)."""
        slot = self.by_name.get(fault.vehicle)
        if slot is None:
            return
        wall_s = fault.duration_s / self.plan.time_scale
        now = time.monotonic()
        if fault.kind in ("vanish", "reconnect"):
            if not slot.online:
                self._injected(slot, fault.kind, "skipped: vehicle already offline")
                return
            clean = fault.kind == "reconnect"
            at = self.sim_now()  # before the disconnect, which takes a moment
            await self.disconnect(slot, clean=clean)
            note = "clean disconnect" if clean else "connection cut without DISCONNECT"
            self._injected(slot, fault.kind, note, at)
            self._fault_tasks.append(
                tg.create_task(self._come_back(slot, wall_s), name=f"sim.host.back.{slot.name}")
            )
        elif fault.kind == "malformed_burst":
            if slot.client is None:
                self._injected(slot, fault.kind, "skipped: vehicle offline")
                return
            payloads = malformed_payloads(slot.device, self._rng)
            for name, payload in payloads:
                slot.client.publish(slot.device.topic(name), payload, qos=1)
            self.sent += len(payloads)
            self.malformed_sent += len(payloads)
            self._injected(slot, fault.kind, f"{len(payloads)} malformed messages")
        elif fault.kind == "silent_driver":
            slot.fault.arm_silence(now, wall_s)
        elif fault.kind == "noisy_gps":
            slot.fault.noisy_until = now + wall_s
            self._injected(slot, fault.kind, "GPS fixes scattered ~40 m")
        elif fault.kind in ("fatal_error", "stuck", "battery_fault"):
            note = slot.fault.hit_robot(slot.device, fault.kind, now, wall_s)
            self._injected(slot, fault.kind, note)
            if fault.kind == "fatal_error":
                self._fault_tasks.append(
                    tg.create_task(
                        self._clear_fatal(slot, wall_s), name=f"sim.host.fix.{slot.name}"
                    )
                )

    async def _come_back(self, slot: Slot, after_s: float) -> None:
        await asyncio.sleep(max(after_s, 1.0))
        for attempt in range(10):
            try:
                await self.connect(slot)
                return
            except Exception as exc:  # the broker may refuse for a while
                log.warning("sim.reconnect_failed", vehicle=slot.name, error=str(exc))
                await asyncio.sleep(1.0 + attempt)

    async def _clear_fatal(self, slot: Slot, after_s: float) -> None:
        await asyncio.sleep(after_s)
        slot.fault.clear_fatal(slot.device)

    # --- the run ------------------------------------------------------------------------

    async def run(self) -> None:
        asyncio.get_running_loop().set_exception_handler(_quiet_cancelled)
        sem = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def connect_one(slot: Slot) -> None:
            async with sem:
                for attempt in range(20):
                    try:
                        await self.connect(slot)
                        return
                    except Exception as exc:  # refused or reset: try again
                        log.warning("sim.connect_failed", vehicle=slot.name, error=str(exc))
                        await asyncio.sleep(0.5 + 0.5 * attempt)

        async with asyncio.TaskGroup() as tg:
            connecting = [tg.create_task(connect_one(s)) for s in self.slots]
            ticker = tg.create_task(self._tick_loop(connecting, tg), name="sim.host.tick")
            await ticker
            for task in (*connecting, *self._fault_tasks):
                task.cancel()
            # The run is over: an orderly goodbye from every vehicle still connected.
            await asyncio.gather(
                *(self.disconnect(s, clean=True) for s in self.slots if s.online),
                return_exceptions=True,
            )
        self.out.put(("done", self.plan.index, self._stats(final=True)))

    def _stats(self, *, final: bool) -> dict[str, Any]:
        stats: dict[str, Any] = {
            "host": self.plan.index,
            "online": sum(1 for s in self.slots if s.online),
            "vehicles": len(self.slots),
            "sent": self.sent,
            "received": self.received,
            "malformed_sent": self.malformed_sent,
            "cpu_s": time.process_time(),
            "wall": time.time(),
        }
        if final:
            for kind, hist in self.hist.items():
                stats[f"hist_{kind}"] = {i: n for i, n in enumerate(hist) if n}
            stats["late_hist"] = {i: n for i, n in enumerate(self.late_hist) if n}
        return stats

    def _samples(self) -> list[tuple[Any, ...]]:
        t = round(self.sim_now(), 2)
        rows = []
        for slot in self.slots:
            dev = slot.device
            if isinstance(dev, VirtualRobot):
                busy = bool(dev.nodes) or dev.charging
                rows.append((t, slot.name, "robot", busy, slot.online, dev.battery, dev.x, dev.y))
            elif isinstance(dev, ScriptedDriver):
                busy = dev.job is not None
                rows.append(
                    (t, slot.name, "driver", busy, slot.online, dev.battery, dev.lon, dev.lat)
                )
        return rows

    def _odometry(self) -> dict[str, list[tuple[float, float]]]:
        """Each vehicle's odometer marks recorded since the last call (sim.odometry)."""
        out = {}
        for slot in self.slots:
            marks = slot.trace.take()
            if marks:
                out[slot.name] = [(round(t, 3), round(odo, 2)) for t, odo in marks]
        return out

    def sim_now(self) -> float:
        """Simulated seconds since the run's t = 0 (0 before it)."""
        t0 = float(self.t0.value)
        return max(0.0, (time.time() - t0) * self.plan.time_scale) if t0 > 0 else 0.0

    async def _tick_loop(self, connecting: list[asyncio.Task[None]], tg: asyncio.TaskGroup) -> None:
        tick_no = 0
        next_stats = next_sample = time.monotonic()
        pending = list(self._faults)
        start = time.monotonic()
        ready = False
        while not self.stop.is_set():
            self.tick(tick_no)
            tick_no += 1
            if not ready and all(t.done() for t in connecting):
                ready = True
                self.out.put(("ready", self.plan.index, time.monotonic() - start))
            started = float(self.t0.value) > 0
            t_sim = self.sim_now()
            while started and pending and pending[0].at_s <= t_sim:
                await self._apply(pending.pop(0), tg)
            now = time.monotonic()
            if now >= next_stats:
                self.out.put(("stats", self.plan.index, self._stats(final=False)))
                next_stats = now + self.plan.stats_interval_s
            if started and now >= next_sample:
                self.out.put(("samples", self.plan.index, self._samples()))
                self.out.put(("odometry", self.plan.index, self._odometry()))
                next_sample = now + self.plan.sample_interval_s
            # Sleep to the next tick boundary (not tick_s after this one's end).
            target = start + tick_no * self.plan.tick_s
            await asyncio.sleep(max(0.0, target - time.monotonic()))
        self.out.put(("samples", self.plan.index, self._samples()))
        if float(self.t0.value) > 0:
            t_end = self.sim_now()
            for slot in self.slots:
                slot.trace.close(t_end, slot.device.odometer_m)
            self.out.put(("odometry", self.plan.index, self._odometry()))


def _quiet_cancelled(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The loop's exception handler: gmqtt's own reconnect futures, cancelled when a
    vanished vehicle's client is dropped or the run ends, are not worth a traceback."""
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)


def host_main(plan: HostPlan, out: Any, stop: multiprocessing.synchronize.Event, t0: Any) -> None:
    """A host process's entry point (multiprocessing target)."""
    import signal

    # The parent decides when the run ends (stop is set): Ctrl-C in the terminal reaches
    # every process of the group, and a host must not die before saying OFFLINE.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # gmqtt warns for every write to a socket a vanished vehicle lost; that is the point.
    logging.getLogger("gmqtt").setLevel(logging.ERROR)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        runner(Host(plan, out, stop, t0).run())
    except Exception as exc:  # tell the parent, whatever it was
        out.put(("error", plan.index, f"{type(exc).__name__}: {exc}"))
        raise


def split(count: int, parts: int) -> list[range]:
    """``range(count)`` in ``parts`` contiguous pieces of nearly equal size."""
    size = math.ceil(count / parts) if parts else count
    return [range(i, min(i + size, count)) for i in range(0, count, size)] if count else []

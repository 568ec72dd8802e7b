"""Alert delay benchmark: from the cause to the alert on the status view's event stream.

What it does:

1. starts a private fleetd (``api_latency.Fleetd``: its own database, Redis key prefix,
   MQTT topic prefixes, port and operator token) with the production alert settings
   (``alerts.check_interval_s`` 0.5 s unless ``--check-interval``) and the heartbeat timeout
   of ``--heartbeat-timeout`` for drivers and robots alike (short, so a run is short; what
   is reported for silence is the delay *beyond* it);
2. follows ``GET /v1/events?types=alert`` (what ``fleetd status`` reads) and notes when
   each ``alert.raised`` arrives;
3. ``--repeat`` times each (one fresh simulated VDA 5050 robot per repetition):

   - ``kill``: the robot's process is SIGKILLed (no DISCONNECT: the broker publishes its
     Last Will at once, as for a robot losing power). Cause: the kill. Alert:
     ``vehicle_offline``.
   - ``silence``: the robot's process is SIGSTOPped (its connection stays open, nothing
     more is said: a robot frozen, or its network gone without the broker noticing for a
     while). Cause: the moment the heartbeat timeout ran out, counted from the arrival of
     the robot's last ``state`` at a subscriber of this script. Alert: ``vehicle_offline``;
     the delay is the one *beyond the heartbeat timeout*.
   - ``safety_stop``: an in-process robot reports ``safetyState.eStop`` MANUAL in its
     ``state``. Cause: that message's header ``timestamp``. Alert: ``safety_stop``. The
     e-stop is then released and the alert cleared before the next repetition.
   - ``low_battery``: the same robot reports ``batteryCharge`` 10 (not charging). Cause:
     that message's ``timestamp``. Alert: ``low_battery``; then back to 90, cleared.

It prints p50/p95/max (nearest rank, ms) per kind. Clocks: the daemon, the robots and this
script run on one machine and read the same wall clock.

Not a test: figures, not assertions. Run: ``.venv/bin/python benchmarks/alert_delay.py``
(``--repeat 10``: about two minutes). A robot process is this script run with ``--robot``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiomqtt
import api_latency as bench
import httpx

SELF = Path(__file__).resolve()
REPO = SELF.parent.parent
sys.path.insert(0, str(REPO))

from dispatcher.config import MqttSettings  # noqa: E402
from sim.robot import RobotSpec, VirtualRobot  # noqa: E402

MQTT_HOST, MQTT_PORT = "127.0.0.1", 1883
WAIT_S = 60.0
QUIET = logging.getLogger("bench.mqtt")
QUIET.setLevel(logging.ERROR)
KINDS = ("kill", "silence", "safety_stop", "low_battery")
#: Seconds between a robot coming online and the cause: a vehicle the daemon has known for
#: a while (its row is written within ``database.position_flush_interval_s``, 1 s; an
#: alert for a vehicle without its row yet waits for the next round).
SETTLE_S = 2.0
#: Plus a random wait up to this long: the alert rounds run on a fixed interval, and a
#: cause at a fixed time after the last one would always hit the same phase of it.
JITTER_S = 1.5


class BenchRobot(VirtualRobot):
    """A virtual robot whose ``safetyState`` the benchmark sets."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.e_stop = "NONE"

    def state_message(self) -> dict[str, Any]:
        msg = super().state_message()
        msg["safetyState"] = {"eStop": self.e_stop, "fieldViolation": False}
        return msg


def _robot(prefix: str, serial: str) -> BenchRobot:
    spec = RobotSpec("bench", serial, battery_pct=90.0, idle_drain_pct_s=0.0)
    return BenchRobot(spec, host=MQTT_HOST, port=MQTT_PORT, prefix=prefix, state_interval_s=0.5)


async def robot_process(prefix: str, serial: str) -> None:
    """``--robot``: one robot in this process until killed; prints ``ready`` when up."""
    robot = _robot(prefix, serial)
    task = asyncio.create_task(robot.run(), name="bench.robot")
    await robot.connected.wait()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    await task


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class Watch:
    """What the script saw: alerts raised and cleared (arrival, epoch s) by (kind, vehicle
    name), and the robots' state messages."""

    raised: dict[tuple[str, str], float] = field(default_factory=dict)
    cleared: dict[tuple[str, str], float] = field(default_factory=dict)
    #: serial -> arrival of its last state message (epoch s).
    last_state: dict[str, float] = field(default_factory=dict)
    #: (serial, condition) -> header timestamp of the first state message showing it.
    first_state: dict[tuple[str, str], float] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # vehicle id -> name
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def until(self, what: dict[tuple[str, str], float], key: tuple[str, str]) -> float:
        deadline = time.monotonic() + WAIT_S
        while key not in what:
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {key} within {WAIT_S} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
        return what[key]


async def follow_alerts(base_url: str, token: str, watch: Watch, ready: asyncio.Event) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    timeout = httpx.Timeout(10.0, read=None)
    async with (
        httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout) as http,
        http.stream("GET", "/v1/events", params={"types": "alert"}) as stream,
    ):
        ready.set()
        event = ""
        async for line in stream.aiter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event in ("alert.raised", "alert.cleared"):
                at = time.time()
                data = json.loads(line.removeprefix("data: "))
                details = data.get("details") or {}
                vid = str(details.get("vehicle_id") or "")
                if vid not in watch.names:
                    vehicle = (await http.get(f"/v1/vehicles/{vid}")).json()
                    watch.names[vid] = str(vehicle.get("name", vid))
                key = (str(details.get("kind")), watch.names[vid])
                target = watch.raised if event == "alert.raised" else watch.cleared
                target.setdefault(key, at)
                watch.changed.set()


async def follow_states(prefix: str, watch: Watch) -> None:
    async with aiomqtt.Client(
        MQTT_HOST, MQTT_PORT, identifier=f"bench-alerts-{uuid.uuid4().hex[:8]}", logger=QUIET
    ) as client:
        await client.subscribe(f"{prefix}/+/+/state", qos=0)
        async for message in client.messages:
            at = time.time()
            serial = str(message.topic).split("/")[-2]
            watch.last_state[serial] = at
            msg = json.loads(bytes(message.payload))
            stamp = _stamp(str(msg["timestamp"]))
            if msg.get("safetyState", {}).get("eStop", "NONE") != "NONE":
                watch.first_state.setdefault((serial, "safety_stop"), stamp)
            if msg.get("batteryState", {}).get("batteryCharge", 100.0) <= 20.0:
                watch.first_state.setdefault((serial, "low_battery"), stamp)


@contextlib.asynccontextmanager
async def robot_in_process(prefix: str, serial: str) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SELF),
        "--robot",
        json.dumps({"prefix": prefix, "serial": serial}),
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), WAIT_S)
        if line.strip() != b"ready":
            raise RuntimeError(f"robot process {serial} did not start: {line!r}")
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
        await proc.wait()


async def _online(http: httpx.AsyncClient, name: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        page = (await http.get("/v1/vehicles", params={"limit": 1000})).json()
        if any(v["name"] == name and v["online"] for v in page["items"]):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{name} never came online")


async def measure(
    base_url: str, token: str, prefix: str, repeat: int, heartbeat_s: float, kinds: list[str]
) -> dict[str, list[float]]:
    watch = Watch()
    delays: dict[str, list[float]] = {k: [] for k in kinds}
    ready = asyncio.Event()
    tag = uuid.uuid4().hex[:4]
    async with (
        asyncio.TaskGroup() as tg,
        httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        ) as http,
    ):
        followers = [
            tg.create_task(follow_alerts(base_url, token, watch, ready), name="bench.alerts"),
            tg.create_task(follow_states(prefix, watch), name="bench.states"),
        ]
        await asyncio.wait_for(ready.wait(), WAIT_S)
        await asyncio.sleep(0.5)  # the MQTT subscription is up
        for i in range(repeat):
            if "kill" in kinds:
                name = f"k{tag}{i:03d}"
                async with robot_in_process(prefix, name) as proc:
                    await _online(http, name)
                    await asyncio.sleep(SETTLE_S + random.uniform(0, JITTER_S))
                    killed = time.time()
                    proc.send_signal(signal.SIGKILL)
                    raised = await watch.until(watch.raised, ("vehicle_offline", name))
                delays["kill"].append(raised - killed)
            if "silence" in kinds:
                name = f"s{tag}{i:03d}"
                async with robot_in_process(prefix, name) as proc:
                    await _online(http, name)
                    await asyncio.sleep(SETTLE_S + random.uniform(0, JITTER_S))
                    proc.send_signal(signal.SIGSTOP)
                    raised = await watch.until(watch.raised, ("vehicle_offline", name))
                    due = watch.last_state[name] + heartbeat_s
                delays["silence"].append(raised - due)
            for kind in ("safety_stop", "low_battery"):
                if kind not in kinds:
                    continue
                name = f"{kind[0]}{tag}{i:03d}"
                robot = _robot(prefix, name)
                task = tg.create_task(robot.run(), name=f"bench.robot.{name}")
                try:
                    await asyncio.wait_for(robot.connected.wait(), WAIT_S)
                    await _online(http, name)
                    await asyncio.sleep(SETTLE_S + random.uniform(0, JITTER_S))
                    if kind == "safety_stop":
                        robot.e_stop = "MANUAL"
                    else:
                        robot.battery = 10.0
                    robot.mark_changed()
                    raised = await watch.until(watch.raised, (kind, name))
                    delays[kind].append(raised - watch.first_state[(name, kind)])
                    robot.e_stop, robot.battery = "NONE", 90.0
                    robot.mark_changed()
                    await watch.until(watch.cleared, (kind, name))
                finally:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            bench.log(f"repetition {i + 1}/{repeat} done")
        for task in followers:
            task.cancel()
    return delays


def render(delays: dict[str, list[float]], args: argparse.Namespace) -> list[str]:
    what = {
        "kill": "vehicle_offline, robot SIGKILLed (Last Will), from the kill",
        "silence": "vehicle_offline, robot SIGSTOPped, beyond the heartbeat timeout",
        "safety_stop": "safety_stop, from the state message's timestamp",
        "low_battery": "low_battery, from the state message's timestamp",
    }
    lines = [
        f"alert delay to /v1/events (alerts.check_interval_s {args.check_interval}, "
        f"heartbeat timeout {args.heartbeat_timeout} s, {args.repeat} repetitions)",
        "",
        "| cause -> alert | n | p50 ms | p95 ms | max ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind, values in delays.items():
        ms = sorted(v * 1000 for v in values)
        lines.append(
            f"| {what[kind]} | {len(ms)} | {bench.percentile(ms, 50):.0f} | "
            f"{bench.percentile(ms, 95):.0f} | {max(ms) if ms else float('nan'):.0f} |"
        )
    lines.append("")
    for kind, values in delays.items():
        lines.append(
            f"{kind} samples (ms, sorted): " + " ".join(f"{v * 1000:.0f}" for v in sorted(values))
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="repetitions of each cause")
    parser.add_argument("--heartbeat-timeout", type=float, default=3.0, help="seconds")
    parser.add_argument(
        "--check-interval", type=float, default=0.5, help="alerts.check_interval_s (seconds)"
    )
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--robot", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.robot:
        spec = json.loads(args.robot)
        asyncio.run(robot_process(spec["prefix"], spec["serial"]))
        return 0
    interface = f"benchalerts{os.getpid()}"
    fleetd = bench.Fleetd(
        log_level=args.log_level,
        extra_env={
            "FLEETD_MQTT__VDA_INTERFACE": interface,
            "FLEETD_MQTT__DRIVER_PREFIX": f"{interface}/driver/v1",
            "FLEETD_FLEET__HEARTBEAT_TIMEOUT_S": str(args.heartbeat_timeout),
            "FLEETD_FLEET__ROBOT_HEARTBEAT_TIMEOUT_S": str(args.heartbeat_timeout),
            "FLEETD_ALERTS__CHECK_INTERVAL_S": str(args.check_interval),
            "FLEETD_DISPATCH__ENABLED": "false",
        },
    )
    load_before = os.getloadavg()
    try:
        [token] = fleetd.start(tokens=1)
        bench.log(f"fleetd up at {fleetd.base_url} (log {fleetd.log_path})")
        prefix = MqttSettings(vda_interface=interface).vda_prefix
        delays = asyncio.run(
            measure(fleetd.base_url, token, prefix, args.repeat, args.heartbeat_timeout, args.kinds)
        )
    finally:
        fleetd.stop()
    print("\n".join(render(delays, args)))
    # The machine is shared: a busy one shows in the tail (the daemon's loop waits its turn).
    print(
        "load average (1 min) at start / end: "
        f"{load_before[0]:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

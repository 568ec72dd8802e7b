"""Ingest benchmark: how many VDA 5050 ``state`` messages/s fleetd processes, end to end.

What it does, for each N in ``--robots`` (default 1000 and 5000):

1. starts a private Mosquitto (unbounded queue, no persistence) on a spare port, so the
   broker drops nothing and the figures measure the receiver, not the broker's limits;
2. starts ``fleetd run`` as its own process against it, with a fresh database
   ``fleetd_bench`` and a Redis prefix of its own;
3. publishes ``--messages`` schema-valid ``state`` messages (~700 bytes) for N robots, in
   round-robin order, as fast as the broker takes them, from a separate process that
   writes pre-encoded MQTT PUBLISH frames (QoS 1), so the publisher costs almost nothing;
4. reads fleetd's ``/metrics`` until every message was handled (decoded + validated +
   registry + Redis GEO) and every telemetry row was COPYed to Postgres, and checks that
   nothing was rejected or dropped;
5. sends the same stream to ``mosquitto_sub -q 1`` (the C reference receiver) and times it
   the same way.

It prints one line per N and a summary table (Markdown) for the README. Not a test:
figures, not assertions. Run: ``.venv/bin/python benchmarks/ingest.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import asyncpg
import httpx
import redis

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from api_latency import parse_env  # noqa: E402

from sim.robot import RobotSpec, VirtualRobot  # noqa: E402

PREFIX_INTERFACE = "bench"
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
BENCH_DB = "fleetd_bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- MQTT frames (only what a publish-only benchmark client needs) ----------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(s: str) -> bytes:
    b = s.encode()
    return struct.pack("!H", len(b)) + b


def connect_frame(client_id: str) -> bytes:
    body = _utf8("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 60) + _utf8(client_id)
    return bytes([0x10]) + _varint(len(body)) + body


def publish_frame(topic: str, payload: bytes, packet_id: int, qos: int) -> bytes:
    if qos == 0:
        body = _utf8(topic) + payload
        return bytes([0x30]) + _varint(len(body)) + body
    body = _utf8(topic) + struct.pack("!H", packet_id) + payload
    return bytes([0x32]) + _varint(len(body)) + body


def build_stream(robots: int, messages: int, qos: int) -> tuple[bytes, int]:
    """Pre-encode ``messages`` PUBLISH frames for ``robots`` robots; returns (bytes, avg size)."""
    sims = [
        VirtualRobot(
            RobotSpec("benchbot", f"r{i:05d}", x=float(i % 100), y=float(i // 100)),
            prefix=f"{PREFIX_INTERFACE}/v2",
        )
        for i in range(robots)
    ]
    frames = bytearray()
    payload_bytes = 0
    for n in range(messages):
        robot = sims[n % robots]
        robot.x += 0.1
        robot.battery = max(5.0, robot.battery - 0.001)
        payload = json.dumps(robot.state_message(), separators=(",", ":")).encode()
        payload_bytes += len(payload)
        frames += publish_frame(robot.topic("state"), payload, (n % 65535) + 1, qos)
    return bytes(frames), payload_bytes // max(1, messages)


def _publisher(port: int, stream: bytes, ready: EventType, go: EventType) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(connect_frame(f"bench-pub-{os.getpid()}"))
    sock.recv(4)  # CONNACK

    def drain() -> None:  # PUBACKs: read and discard so the broker never blocks on us
        try:
            while sock.recv(65536):
                pass
        except OSError:
            pass

    import threading

    threading.Thread(target=drain, daemon=True).start()
    ready.set()
    go.wait()
    view = memoryview(stream)
    for i in range(0, len(view), 1 << 20):
        sock.sendall(view[i : i + (1 << 20)])
    time.sleep(1.0)
    sock.sendall(b"\xe0\x00")  # DISCONNECT
    sock.close()


# --- services ------------------------------------------------------------------------------


@dataclass
class Broker:
    port: int
    proc: subprocess.Popen[bytes]
    dir: Path

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def start_broker() -> Broker:
    port = free_port()
    d = Path(tempfile.mkdtemp(prefix="fleetd-bench-broker-"))
    conf = d / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        "persistence false\n"
        "max_queued_messages 0\n"  # unbounded: the receiver is what is measured
        "max_queued_bytes 0\n"
        "max_inflight_messages 0\n"
        "log_dest none\n"
    )
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return Broker(port, proc, d)
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("private mosquitto did not start")


async def reset_db() -> None:
    conn = await asyncpg.connect(ADMIN_DSN)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {BENCH_DB}")
    finally:
        await conn.close()


def scrape(client: httpx.Client, url: str) -> dict[str, float]:
    """The few metric samples the benchmark follows."""
    text = client.get(url).text
    wanted = {
        'fleetd_messages_received_total{link="vda5050",topic="state"}': "received",
        "fleetd_telemetry_rows_written_total": "telemetry",
        "fleetd_telemetry_rows_dropped_total": "dropped",
    }
    out = {"received": 0.0, "telemetry": 0.0, "dropped": 0.0, "rejected": 0.0}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        if name in wanted:
            out[wanted[name]] = float(value)
        elif name.startswith('fleetd_messages_rejected_total{link="vda5050"'):
            out["rejected"] += float(value)
    return out


@dataclass
class Result:
    qos: int
    robots: int
    messages: int
    payload_bytes: int
    handled_rate: float
    stored_rate: float
    reference_rate: float
    rejected: int
    dropped: int
    geo_members: int

    @property
    def ratio(self) -> float:
        return self.handled_rate / self.reference_rate if self.reference_rate else 0.0


def publish(port: int, stream: bytes) -> tuple[mp.Process, EventType]:
    ready, go = mp.Event(), mp.Event()
    proc = mp.Process(target=_publisher, args=(port, stream, ready, go), daemon=True)
    proc.start()
    ready.wait(10)
    return proc, go


def run_reference(port: int, stream: bytes, messages: int) -> float:
    """mosquitto_sub receiving the same stream; messages/s from the first byte sent."""
    sub = subprocess.Popen(
        [
            "mosquitto_sub",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-q",
            "1",
            "-t",
            f"{PREFIX_INTERFACE}/v2/#",
            "-C",
            str(messages),
        ],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.5)  # subscribed
    proc, go = publish(port, stream)
    started = time.perf_counter()
    go.set()
    sub.wait(600)
    took = time.perf_counter() - started
    proc.join(10)
    return messages / took


def _py_spy() -> str:
    found = shutil.which("py-spy") or Path(sys.executable).with_name("py-spy")
    if not Path(found).exists():
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    return str(found)


def run_one(
    robots: int,
    messages: int,
    api_port: int,
    qos: int,
    profile: Path | None = None,
    extra_env: dict[str, str] | None = None,
    settle_s: float = 3.0,
) -> Result:
    print(f"-- N={robots} robots, {messages} state messages at QoS {qos}: encoding...", flush=True)
    stream, avg = build_stream(robots, messages, qos)
    broker = start_broker()
    asyncio.run(reset_db())
    prefix = f"bench:{os.getpid()}:"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETD_")}
    env.update(
        {
            "FLEETD_MQTT__PORT": str(broker.port),
            "FLEETD_MQTT__VDA_INTERFACE": PREFIX_INTERFACE,
            "FLEETD_MQTT__PERSISTENT_SESSION": "false",
            "FLEETD_DATABASE__DSN": f"postgresql://postgres@127.0.0.1:5432/{BENCH_DB}",
            "FLEETD_DATABASE__TELEMETRY_BUFFER_ROWS": str(max(200_000, messages)),
            "FLEETD_REDIS__KEY_PREFIX": prefix,
            "FLEETD_FLEET__HEARTBEAT_TIMEOUT_S": "600",
            "FLEETD_FLEET__UNKNOWN_VEHICLES": "register",  # the simulated robots are ad hoc
            "FLEETD_API__PORT": str(api_port),
            "FLEETD_DAEMON__LOG_LEVEL": "warning",
            "FLEETD_DAEMON__INSTANCE_ID": f"bench-{os.getpid()}",
        }
    )
    env.update(extra_env or {})
    daemon = subprocess.Popen([sys.executable, "-m", "dispatcher.cli", "run"], env=env, cwd=REPO)
    base = f"http://127.0.0.1:{api_port}"
    try:
        with httpx.Client(timeout=5) as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if http.get(f"{base}/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or daemon.poll() is not None:
                    raise RuntimeError("fleetd did not become ready")
                time.sleep(0.2)
            # Ready answers before the dispatch solver's worker has imported OR-Tools and
            # VROOM (a few seconds of CPU on one of the two cores): not ingest's cost.
            time.sleep(settle_s)
            before = scrape(http, f"{base}/metrics")
            proc, go = publish(broker.port, stream)
            spy = None
            if profile is not None:
                # Where the daemon's time goes while it drains the stream (flame graph).
                out = profile.with_name(f"{profile.stem}-q{qos}-n{robots}{profile.suffix}")
                spy = subprocess.Popen(
                    [
                        _py_spy(),
                        "record",
                        "--pid",
                        str(daemon.pid),
                        "--rate",
                        "200",
                        # Without it py-spy stops the daemon for every sample, which
                        # slows it several-fold and skews where the time seems to go.
                        "--nonblocking",
                        "--output",
                        str(out),
                        "--format",
                        "raw" if out.suffix == ".txt" else "flamegraph",
                    ],
                    stdout=subprocess.DEVNULL,
                )
                time.sleep(1.0)  # attached
            started = time.perf_counter()
            go.set()
            handled_at = stored_at = None
            while stored_at is None:
                time.sleep(0.1)  # each scrape costs the daemon a little CPU
                m = scrape(http, f"{base}/metrics")
                now = time.perf_counter()
                done = m["received"] - before["received"]
                if handled_at is None and done >= messages:
                    handled_at = now
                if handled_at is not None and m["telemetry"] - before["telemetry"] >= messages:
                    stored_at = now
                if now - started > 600:
                    raise RuntimeError(f"stalled at {done}/{messages}")
            proc.join(10)
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(30)
            assert handled_at is not None
            final = scrape(http, f"{base}/metrics")
        r = redis.Redis()
        # Only the GEO sets: the rebuild marker ``geo:written`` shares their prefix.
        geo = sum(r.zcard(k) for k in r.scan_iter(f"{prefix}geo:*", _type="ZSET"))
        for k in r.scan_iter(f"{prefix}*"):
            r.delete(k)
        r.close()
    except BaseException:
        broker.stop()
        raise
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
    print("   fleetd done; running mosquitto_sub on the same stream...", flush=True)
    try:
        reference = run_reference(broker.port, stream, messages)
    finally:
        broker.stop()
    return Result(
        qos=qos,
        robots=robots,
        messages=messages,
        payload_bytes=avg,
        handled_rate=messages / (handled_at - started),
        stored_rate=messages / (stored_at - started),
        reference_rate=reference,
        rejected=int(final["rejected"] - before["rejected"]),
        dropped=int(final["dropped"] - before["dropped"]),
        geo_members=geo,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--robots", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--api-port", type=int, default=0)
    parser.add_argument(
        "--qos",
        type=int,
        nargs="+",
        default=[0, 1],
        choices=[0, 1],
        help="QoS the robots publish state with (VDA 5050 says 0; 1 costs a PUBACK each)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="record the daemon with py-spy while it drains, one file per run: FILE.svg "
        "(flame graph) or FILE.txt (collapsed stacks)",
    )
    parser.add_argument(
        "--settle-s",
        type=float,
        default=3.0,
        help="seconds to wait after fleetd is ready before publishing (its solver worker "
        "starts then)",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="FLEETD_KEY=VALUE",
        help="extra setting for the fleetd under test, e.g. FLEETD_DISPATCH__ENABLED=false",
    )
    args = parser.parse_args()
    extra_env = parse_env(args.server_env)
    if shutil.which("mosquitto") is None or shutil.which("mosquitto_sub") is None:
        print("benchmarks/ingest.py needs mosquitto and mosquitto_sub (scripts/setup.sh does)")
        return 2
    results = [
        run_one(
            n,
            args.messages,
            args.api_port or free_port(),
            q,
            args.profile,
            extra_env,
            args.settle_s,
        )
        for q in args.qos
        for n in args.robots
    ]
    print()
    print(
        "| QoS | robots | messages | payload B | fleetd handled msg/s | fleetd stored msg/s "
        "| mosquitto_sub msg/s | fleetd/mosquitto_sub | rejected | telemetry dropped "
        "| in Redis GEO |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r.qos} | {r.robots} | {r.messages} | {r.payload_bytes} "
            f"| {r.handled_rate:,.0f} | {r.stored_rate:,.0f} | {r.reference_rate:,.0f} "
            f"| {r.ratio:.2f} | {r.rejected} | {r.dropped} | {r.geo_members} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The core end to end: an embedded daemon, virtual vehicles, the real broker, Redis, Postgres.

Each test has its own database, Redis prefix and topic namespace (see conftest.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import asyncpg
import pytest
import redis.asyncio as aioredis

from dispatcher.config import Settings, UnknownVehiclePolicy, VehicleSettings
from dispatcher.daemon import Daemon
from dispatcher.storage.live_positions import LivePositions
from fleet.model import OfflineReason, VehicleKey, VehicleKind, VehicleStatus
from protocols.errors import RejectReason
from sim.driver import DriverSpec, ScriptedDriver
from sim.robot import RobotSpec, VirtualRobot
from tests.conftest import eventually, running_daemon


@pytest.fixture
async def daemon(settings: Settings) -> AsyncIterator[Daemon]:
    async with running_daemon(settings, ready_timeout_s=20) as run:
        yield run.daemon


async def run_robot(robot: VirtualRobot, tasks: list[asyncio.Task[None]]) -> VirtualRobot:
    tasks.append(asyncio.create_task(robot.run()))
    await asyncio.wait_for(robot.connected.wait(), 10)
    return robot


@pytest.fixture
async def tasks() -> AsyncIterator[list[asyncio.Task[None]]]:
    started: list[asyncio.Task[None]] = []
    yield started
    for t in started:
        t.cancel()
    await asyncio.gather(*started, return_exceptions=True)


def robot_key(serial: str) -> VehicleKey:
    return VehicleKey(VehicleKind.ROBOT, "acme", serial)


class TestVehiclesAppear:
    async def test_robots_and_drivers_show_up_with_battery_and_position(
        self, daemon: Daemon, settings: Settings, tasks: list[asyncio.Task[None]], pg_dsn: str
    ) -> None:
        """Standard robots and driver phones appear online with battery and WGS84 position,
        in Redis GEO look-ups and in Postgres."""
        for i in range(3):
            await run_robot(
                VirtualRobot(
                    RobotSpec("acme", f"r{i}", x=10.0 * i, y=5.0, battery_pct=80.0),
                    prefix=settings.mqtt.vda_prefix,
                    state_interval_s=0.2,
                ),
                tasks,
            )
        driver = ScriptedDriver(
            DriverSpec("d1", [(52.5201, 13.4051), (52.5210, 13.4060)]),
            prefix=settings.mqtt.driver_prefix,
            status_interval_s=0.2,
        )
        tasks.append(asyncio.create_task(driver.run()))
        registry = daemon.registry
        assert registry is not None

        def all_online() -> bool:
            views = registry.snapshot()
            return len(views) == 4 and all(
                v.online and v.battery_pct is not None and v.position is not None for v in views
            )

        await eventually(all_online)
        r0 = registry.find(robot_key("r0"))
        assert r0 is not None and r0.status is VehicleStatus.IDLE
        assert r0.position is not None and abs(r0.position.lat - 52.52) < 0.01

        client = aioredis.from_url(settings.redis.url)
        positions = LivePositions(
            client,
            key_prefix=settings.redis.key_prefix,
            max_age_s=settings.fleet.heartbeat_timeout_s,
        )

        async def in_geo() -> bool:
            near = await positions.nearby(settings.default_facility.id, 52.52, 13.405, 2000)
            return len(near) == 4

        try:
            await eventually(in_geo)
        finally:
            await client.aclose()

        async def in_db() -> bool:
            conn = await asyncpg.connect(pg_dsn)
            try:
                n = await conn.fetchval("SELECT count(*) FROM vehicles WHERE online")
                p = await conn.fetchval("SELECT count(*) FROM vehicle_positions")
                t = await conn.fetchval("SELECT count(*) FROM telemetry")
                return bool(n == 4 and p == 4 and t > 0)
            finally:
                await conn.close()

        await eventually(in_db)

    async def test_robot_on_unknown_map_is_tracked_but_position_unknown(
        self, daemon: Daemon, settings: Settings, tasks: list[asyncio.Task[None]]
    ) -> None:
        await run_robot(
            VirtualRobot(
                RobotSpec("acme", "lost", map_id="basement"), prefix=settings.mqtt.vda_prefix
            ),
            tasks,
        )
        registry = daemon.registry
        assert registry is not None
        await eventually(
            lambda: (v := registry.find(robot_key("lost"))) is not None and v.unknown_map
        )
        view = registry.find(robot_key("lost"))
        assert view is not None and view.online and view.position is None


class TestLiveness:
    async def test_orderly_goodbye_is_offline_at_once(
        self, daemon: Daemon, settings: Settings, tasks: list[asyncio.Task[None]]
    ) -> None:
        await run_robot(
            VirtualRobot(RobotSpec("acme", "bye"), prefix=settings.mqtt.vda_prefix), tasks
        )
        registry = daemon.registry
        assert registry is not None
        await eventually(lambda: (v := registry.find(robot_key("bye"))) is not None and v.online)
        tasks[-1].cancel()
        await asyncio.gather(tasks[-1], return_exceptions=True)
        await eventually(lambda: not registry.find(robot_key("bye")).online, timeout=2.0)  # type: ignore[union-attr]
        # Offline because it said goodbye, not because its silence outlasted the timeout
        # (which the 2 s above would also allow).
        rec = registry.record_by_key(robot_key("bye"))
        assert rec is not None and rec.offline_reason is OfflineReason.DISCONNECTED

    async def test_silent_robot_goes_offline_within_timeout_plus_one_second(
        self, daemon: Daemon, settings: Settings
    ) -> None:
        """A robot that stops talking without disconnecting (hung, or a dead network path)
        is offline no later than heartbeat timeout + 1 s after its last message."""
        robot = VirtualRobot(RobotSpec("acme", "hung"), prefix=settings.mqtt.vda_prefix)
        async with aiomqtt.Client("127.0.0.1", 1883) as client:
            await client.publish(robot.topic("state"), json.dumps(robot.state_message()))
            last_message = time.monotonic()
            registry = daemon.registry
            assert registry is not None
            await eventually(
                lambda: (v := registry.find(robot_key("hung"))) is not None and v.online
            )
            await eventually(
                lambda: not registry.find(robot_key("hung")).online,  # type: ignore[union-attr]
                timeout=settings.fleet.heartbeat_timeout_s + 2,
            )
            took = time.monotonic() - last_message
        assert took <= settings.fleet.heartbeat_timeout_s + 1.0

    async def test_killed_robot_process_goes_offline(
        self, daemon: Daemon, settings: Settings, tmp_path: Path
    ) -> None:
        """A robot process killed with SIGKILL (no clean disconnect) is offline within
        heartbeat timeout + 1 s; the broker's Last Will usually makes it immediate."""
        config = tmp_path / "sim.toml"
        config.write_text(
            f'[mqtt]\nvda_interface = "{settings.mqtt.vda_interface}"\n'
            f'driver_prefix = "{settings.mqtt.driver_prefix}"\n'
            '[daemon]\nlog_level = "warning"\n'
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETD_")}
        proc = subprocess.Popen(  # noqa: ASYNC220 - started once, never waited on in the loop
            [
                sys.executable,
                "-m",
                "dispatcher.cli",
                "--config",
                str(config),
                "sim",
                "--robots",
                "1",
                "--drivers",
                "0",
                "--manufacturer",
                "killme",
            ],
            env=env,
        )
        try:
            registry = daemon.registry
            assert registry is not None
            key = VehicleKey(VehicleKind.ROBOT, "killme", "r0001")
            await eventually(lambda: (v := registry.find(key)) is not None and v.online, timeout=20)
            proc.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            await eventually(
                lambda: not registry.find(key).online,  # type: ignore[union-attr]
                timeout=settings.fleet.heartbeat_timeout_s + 2,
            )
            assert time.monotonic() - killed <= settings.fleet.heartbeat_timeout_s + 1.0
        finally:
            proc.kill()
            proc.wait(10)

    async def test_stale_retained_online_does_not_keep_a_robot_online(
        self, settings: Settings
    ) -> None:
        """A retained ONLINE left by a robot that vanished long ago leaves it offline."""
        robot = VirtualRobot(RobotSpec("acme", "ghost"), prefix=settings.mqtt.vda_prefix)
        old = robot.connection_message("ONLINE")
        old["timestamp"] = (
            (datetime.now(UTC) - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
        )
        async with aiomqtt.Client("127.0.0.1", 1883) as client:
            await client.publish(robot.topic("connection"), json.dumps(old), qos=1, retain=True)
        try:
            async with running_daemon(settings, ready_timeout_s=20) as run:
                registry = run.daemon.registry
                assert registry is not None
                await eventually(lambda: registry.find(robot_key("ghost")) is not None)
                view = registry.find(robot_key("ghost"))
                assert view is not None and not view.online
        finally:
            async with aiomqtt.Client("127.0.0.1", 1883) as client:
                await client.publish(robot.topic("connection"), b"", qos=1, retain=True)


class TestBadInput:
    """Every class of bad vehicle input is rejected, counted by reason, and harmless."""

    @pytest.mark.parametrize(
        ("reason", "make"),
        [
            (RejectReason.MALFORMED_JSON, lambda r: (r.topic("state"), b"{not json")),
            (
                RejectReason.SCHEMA_INVALID,
                lambda r: (
                    r.topic("state"),
                    json.dumps({**r.state_message(), "batteryState": {}}).encode(),
                ),
            ),
            (
                RejectReason.BAD_TOPIC,
                lambda r: (
                    r.topic("state").rsplit("/", 2)[0] + "/state",
                    json.dumps(r.state_message()).encode(),
                ),
            ),
            (
                # A bidi override in the serial (the broker itself drops C0/C1 controls).
                RejectReason.BAD_TOPIC,
                lambda r: (
                    r.topic("state").replace("/bad/", "/b\u202ed/"),
                    json.dumps(r.state_message()).encode(),
                ),
            ),
            (RejectReason.UNKNOWN_TOPIC, lambda r: (r.topic("telemetry"), b"{}")),
            (RejectReason.OVERSIZED, lambda r: (r.topic("state"), b" " * (300 * 1024))),
            (
                RejectReason.IDENTITY_MISMATCH,
                lambda r: (
                    r.topic("state").replace("/bad/", "/other/"),
                    json.dumps(r.state_message()).encode(),
                ),
            ),
        ],
    )
    async def test_robot_message_rejected(
        self,
        daemon: Daemon,
        settings: Settings,
        reason: RejectReason,
        make: Callable[[VirtualRobot], tuple[str, bytes]],
    ) -> None:
        robot = VirtualRobot(RobotSpec("acme", "bad"), prefix=settings.mqtt.vda_prefix)
        topic, payload = make(robot)
        link = daemon.robot_link
        assert link is not None
        before = link.rejections.counts[reason]
        async with aiomqtt.Client("127.0.0.1", 1883) as client:
            await client.publish(topic, payload, qos=1)
            await eventually(lambda: link.rejections.counts[reason] == before + 1, timeout=5)
            # The daemon goes on: a good message right after is taken.
            good = VirtualRobot(RobotSpec("acme", "good"), prefix=settings.mqtt.vda_prefix)
            await client.publish(good.topic("state"), json.dumps(good.state_message()), qos=1)
        registry = daemon.registry
        assert registry is not None
        await eventually(lambda: registry.find(robot_key("good")) is not None)
        bad = registry.find(robot_key("bad"))
        assert bad is None or reason is RejectReason.IDENTITY_MISMATCH

    async def test_unknown_vehicle_rejected_when_configured(self, settings: Settings) -> None:
        """With "reject" (the default outside the demo) a stranger is refused while a
        vehicle listed in [[fleet.vehicles]] is let in."""
        known = VehicleSettings(kind="robot", manufacturer="acme", serial="known")
        strict = settings.model_copy(
            update={
                "fleet": settings.fleet.model_copy(
                    update={"unknown_vehicles": UnknownVehiclePolicy.REJECT, "vehicles": [known]}
                )
            }
        )
        async with running_daemon(strict, ready_timeout_s=20) as run:
            d = run.daemon
            robot = VirtualRobot(RobotSpec("acme", "stranger"), prefix=settings.mqtt.vda_prefix)
            friend = VirtualRobot(RobotSpec("acme", "known"), prefix=settings.mqtt.vda_prefix)
            link = d.robot_link
            registry = d.registry
            assert link is not None and registry is not None
            async with aiomqtt.Client("127.0.0.1", 1883) as client:
                await client.publish(robot.topic("state"), json.dumps(robot.state_message()), qos=1)
                await client.publish(
                    friend.topic("state"), json.dumps(friend.state_message()), qos=1
                )
            await eventually(lambda: link.rejections.counts[RejectReason.UNKNOWN_VEHICLE] == 1)
            await eventually(
                lambda: (v := registry.find(robot_key("known"))) is not None and v.online
            )
            assert registry.find(robot_key("stranger")) is None

    @pytest.mark.parametrize(
        ("reason", "payload"),
        [
            (RejectReason.MALFORMED_JSON, b"\xff\xfe"),
            (RejectReason.SCHEMA_INVALID, json.dumps({"headerId": 1}).encode()),
        ],
    )
    async def test_driver_message_rejected(
        self, daemon: Daemon, settings: Settings, reason: RejectReason, payload: bytes
    ) -> None:
        link = daemon.driver_link
        assert link is not None
        before = link.rejections.counts[reason]
        async with aiomqtt.Client("127.0.0.1", 1883) as client:
            await client.publish(f"{settings.mqtt.driver_prefix}/dx/status", payload, qos=1)
        await eventually(lambda: link.rejections.counts[reason] == before + 1, timeout=5)

"""systemd integration against the real services: sd_notify, SIGTERM drain, SIGHUP reload.

- ``fleetd run`` as a subprocess with ``$NOTIFY_SOCKET`` (a real AF_UNIX datagram socket
  of the test) and ``$WATCHDOG_USEC``: READY=1, then WATCHDOG=1 pings, RELOADING=1 and
  READY=1 around SIGHUP (the edited file's ``[alerts]`` applied, a restart-only key
  named), STOPPING=1 on SIGTERM, exit status 0, and every mission created before the
  SIGTERM committed with its events and audit rows.
- The daemon embedded: reload applies/refuses, draining refuses new missions with 503.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from structlog.testing import capture_logs

from dispatcher.config import Settings, load_settings
from tests.conftest import REPO, api_client, running_daemon
from tests.integration.operator_tokens import operator_token


def _mission_body(i: int) -> dict[str, object]:
    places = [p.name for p in Settings().default_facility.places if p.node_id]
    return {
        "pickup": {"place": places[i % len(places)]},
        "dropoff": {"place": places[(i + 1) % len(places)]},
        "priority": "normal",
        "notes": f"systemd test {i}",
    }


class NotifySocket:
    """What systemd listens on: a datagram socket; :meth:`next` waits for one message."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.received: list[list[str]] = []

    async def next(self, timeout_s: float) -> list[str]:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fields = self.sock.recv(65536).decode().split("\n")
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"no notification in {timeout_s}s; so far: {self.received}"
                    ) from None
                await asyncio.sleep(0.02)
                continue
            self.received.append(fields)
            return fields

    async def until(self, field: str, timeout_s: float) -> list[str]:
        """The next message holding ``field`` (those before it are kept in ``received``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            fields = await self.next(max(0.1, deadline - time.monotonic()))
            if field in fields:
                return fields

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    try:
        yield sock
    finally:
        sock.close()


def _env(settings: Settings, notify: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETD_")}
    env.update(
        {
            "FLEETD_DATABASE__DSN": settings.database.dsn,
            "FLEETD_REDIS__URL": settings.redis.url,
            "FLEETD_REDIS__KEY_PREFIX": settings.redis.key_prefix,
            "FLEETD_MQTT__VDA_INTERFACE": settings.mqtt.vda_interface,
            "FLEETD_MQTT__DRIVER_PREFIX": settings.mqtt.driver_prefix,
            "FLEETD_MQTT__PERSISTENT_SESSION": "false",
            "FLEETD_API__PORT": str(settings.api.port),
            "FLEETD_DAEMON__INSTANCE_ID": settings.daemon.instance_id,
            "FLEETD_DAEMON__STATE_DIR": settings.daemon.state_dir,
            "FLEETD_DAEMON__LOG_FORMAT": "json",
            "NOTIFY_SOCKET": str(notify),
            # WatchdogSec=1s: a ping every 0.5 s.
            "WATCHDOG_USEC": "1000000",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


async def test_fleetd_run_under_a_notify_socket(
    settings: Settings, notify_socket: NotifySocket, tmp_path: Path
) -> None:
    config = tmp_path / "fleetd.toml"
    config.write_text("[alerts]\nlow_battery_pct = 20.0\n")
    log_path = tmp_path / "fleetd.log"
    proc = _start_fleetd(_env(settings, notify_socket.path), config, log_path)
    try:
        ready = await notify_socket.until("READY=1", 60)
        assert any(f.startswith("STATUS=serving:") for f in ready), ready
        # The watchdog ticks from the event loop at WatchdogSec / 2.
        started = time.monotonic()
        for _ in range(3):
            await notify_socket.until("WATCHDOG=1", 5)
        assert time.monotonic() - started < 4.0

        # SIGHUP: an edited [alerts] is applied, a changed restart-only key is named.
        config.write_text("[alerts]\nlow_battery_pct = 35.0\n[api]\nmax_body_bytes = 2048\n")
        proc.send_signal(signal.SIGHUP)
        await notify_socket.until("RELOADING=1", 10)
        await notify_socket.until("READY=1", 10)
        reloaded = _log_event(log_path, "daemon.reloaded")
        assert reloaded["applied"] == ["alerts.low_battery_pct"]
        assert reloaded["needs_restart"] == ["api.max_body_bytes"]

        # Missions committed before the SIGTERM are all there after it.
        token = await operator_token(settings)
        created: list[uuid.UUID] = []
        async with api_client(settings.api.base_url, token) as client:
            for i in range(5):
                r = await client.post("/v1/missions", json=_mission_body(i))
                assert r.status_code == 201, r.text
                created.append(uuid.UUID(r.json()["id"]))
        proc.send_signal(signal.SIGTERM)
        await notify_socket.until("STOPPING=1", 10)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    conn = await asyncpg.connect(settings.database.dsn)
    try:
        stored = await conn.fetch(
            "SELECT id, (SELECT count(*) FROM mission_events e WHERE e.mission_id = m.id) AS n "
            "FROM missions m WHERE id = ANY($1::uuid[])",
            created,
        )
        audited = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'mission.create'"
        )
    finally:
        await conn.close()
    assert {r["id"] for r in stored} == set(created)
    assert all(r["n"] >= 1 for r in stored)
    assert audited == len(created)
    assert "daemon.stopped" in log_path.read_text()


def _start_fleetd(env: dict[str, str], config: Path, log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "dispatcher.cli", "--config", str(config), "run"],
            env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


def _log_event(path: Path, event: str) -> dict[str, object]:
    for line in reversed(path.read_text().splitlines()):
        if f'"event": "{event}"' in line:
            parsed: dict[str, object] = json.loads(line)
            return parsed
    raise AssertionError(f"no {event} in the log:\n{path.read_text()[-3000:]}")


async def test_reload_applies_live_keys_and_refuses_a_bad_file(
    settings: Settings, tmp_path: Path
) -> None:
    config = tmp_path / "fleetd.toml"
    async with running_daemon(settings, reload_settings=lambda: load_settings(config)) as rd:
        daemon = rd.daemon
        config.write_text(
            '[alerts]\nlow_battery_pct = 42.0\n[daemon]\nlog_level = "debug"\n'
            'log_format = "console"\n'
        )
        plan = await daemon.reload()
        assert plan is not None
        assert plan.applied == ("alerts.low_battery_pct", "daemon.log_level")
        # The file names no database, so it differs from the running one: named, not applied.
        assert "database.dsn" in plan.needs_restart
        assert daemon.settings.database.dsn == settings.database.dsn
        assert daemon.settings.alerts.low_battery_pct == 42.0
        assert daemon.services is not None
        assert daemon.services.settings.alerts.low_battery_pct == 42.0

        config.write_text("[alerts]\nlow_battery_pct = 500\n")
        with capture_logs() as logs:
            assert await daemon.reload() is None
        refused = [e for e in logs if e["event"] == "daemon.reload_refused"]
        assert refused and "alerts.low_battery_pct" in refused[0]["problems"][0]
        assert daemon.settings.alerts.low_battery_pct == 42.0


async def test_draining_refuses_new_missions_and_says_so(settings: Settings) -> None:
    async with running_daemon(settings) as rd:
        token = await operator_token(settings)
        async with api_client(rd.base_url, token) as client:
            assert (await client.post("/v1/missions", json=_mission_body(0))).status_code == 201
            rd.daemon.draining = True
            r = await client.post("/v1/missions", json=_mission_body(1))
            assert r.status_code == 503
            assert r.json()["reason"] == "draining"
            assert r.headers["Retry-After"] == "5"
            ready = await client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["status"] == "draining"
            live = await client.get("/healthz")
            assert live.status_code == 200 and live.json()["draining"] is True

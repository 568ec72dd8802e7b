"""``fleetd status`` reads a daemon's API served by uvicorn, as a user would run it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import asyncpg
import pytest
import redis.asyncio as aioredis
import structlog
import uvicorn

from dispatcher.auth.roles import Role
from dispatcher.cli import main
from dispatcher.cli.status import render_table
from dispatcher.config import Settings
from fleet.model import VehicleKind, VehicleStatus
from tests.conftest import free_port
from tests.unit.api.fakes import StaticFleet, make_vehicle
from tests.unit.api.harness import NORTH, SOUTH, add_facilities, app_for, make_services, new_token


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture
async def daemon_url(
    settings: Settings, pg_pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> AsyncIterator[str]:
    """The API over real services, served by uvicorn on a free port in this event loop."""
    await add_facilities(pg_pool)
    vehicles = [make_vehicle(NORTH.id, f"robot-{i:02d}") for i in range(120)]
    vehicles.append(
        make_vehicle(NORTH.id, "driver-1", kind=VehicleKind.DRIVER, status=VehicleStatus.BREAK)
    )
    vehicles.append(make_vehicle(NORTH.id, "lost", online=False, lat=None, lon=None))
    vehicles.append(make_vehicle(SOUTH.id, "elsewhere"))
    app = app_for(make_services(settings, pg_pool, redis_client, StaticFleet(vehicles)))
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", ws="none"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        # uvicorn exposes readiness only as a flag, not an event.
        while not server.started:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def fleetd(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def test_status_json_lists_every_vehicle_of_the_facility(
    daemon_url: str,
    pg_pool: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FLEETD_API__URL", daemon_url)
    monkeypatch.setenv("FLEETD_TOKEN", await new_token(pg_pool, Role.OPERATOR, NORTH))
    capsys.readouterr()  # drop the test's own log lines
    assert await fleetd("status", "--once", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"vehicles", "missions", "as_of"}
    assert isinstance(doc["missions"], list)
    datetime.fromisoformat(doc["as_of"])
    vehicles = {v["name"]: v for v in doc["vehicles"]}
    assert len(vehicles) == 122  # more than one page; not the other facility's vehicle
    assert "elsewhere" not in vehicles
    robot = vehicles["robot-00"]
    for key in ("id", "kind", "name", "online", "status", "battery", "lat", "lon", "last_seen"):
        assert key in robot
    assert "mission_id" in robot
    assert robot["online"] is True
    assert robot["battery"] == 80.0
    assert vehicles["lost"]["lat"] is None


async def test_status_table_once(
    daemon_url: str,
    pg_pool: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FLEETD_API__URL", daemon_url)
    monkeypatch.setenv("FLEETD_TOKEN", await new_token(pg_pool, Role.ADMIN, None))
    capsys.readouterr()
    assert await fleetd("status", "--once") == 0
    out = capsys.readouterr().out
    assert "vehicles 123 (122 online)" in out
    header = next(line for line in out.splitlines() if line.startswith("VEHICLE"))
    assert header.split() == [
        "VEHICLE",
        "KIND",
        "ONLINE",
        "STATUS",
        "BATT%",
        "AGE_S",
        "LAT,LON",
        "MISSION",
    ]
    assert any(line.startswith("driver-1 ") and "break" in line for line in out.splitlines())


async def test_bad_token_exits_1_with_a_hint(
    daemon_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLEETD_API__URL", daemon_url)
    monkeypatch.setenv("FLEETD_TOKEN", "fltd_" + "z" * 43)
    capsys.readouterr()
    assert await fleetd("status", "--once", "--json") == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "401" in captured.err
    assert "FLEETD_TOKEN" in captured.err


async def test_unreachable_daemon_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("FLEETD_API__URL", url)
    monkeypatch.setenv("FLEETD_TOKEN", "fltd_" + "z" * 43)
    assert await fleetd("status", "--once") == 1
    err = capsys.readouterr().err.strip()
    assert err == f"fleetd: cannot reach the daemon at {url} (is fleetd run going?)"


def test_render_table_shows_heartbeat_age_and_active_missions() -> None:
    now = datetime(2030, 1, 1, 12, 0, 10, tzinfo=UTC)
    status = {
        "as_of": now.isoformat(),
        "vehicles": [
            {
                "id": "1",
                "name": "r1",
                "kind": "robot",
                "online": True,
                "status": "driving",
                "battery": 55.4,
                "last_seen": "2030-01-01T12:00:07.500000+00:00",
                "lat": 52.1,
                "lon": 13.2,
                "mission_id": "abcdef12-0000",
            }
        ],
        "missions": [
            {"id": "m1", "status": "assigned", "priority": "high", "pickup": {"place": "Ward A"}},
            {"id": "m2", "status": "completed", "priority": "low"},
        ],
    }
    text = render_table(status, now=now)
    row = next(line for line in text.splitlines() if line.startswith("r1"))
    assert row.split() == [
        "r1",
        "robot",
        "yes",
        "driving",
        "55",
        "2.5",
        "52.100000,13.200000",
        "abcdef12",
    ]
    assert "missions: 1 active" in text
    assert "Ward A" in text

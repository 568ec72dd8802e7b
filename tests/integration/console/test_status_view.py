"""The live status view (``fleetd status``) driven headless against a real daemon.

Nothing is a double: a whole daemon runs in this process on the test's database, Redis
prefix and MQTT namespace; the fleet is ``fleetd sim`` in a subprocess (killed with
SIGKILL where a test needs a vehicle to die without a clean disconnect); the view is the
real Textual app, driven by its pilot (``App.run_test``), talking HTTP and SSE to the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from textual.coordinate import Coordinate
from textual.pilot import Pilot
from textual.widgets import DataTable

from dispatcher.auth.roles import Role
from dispatcher.auth.tokens import create_token
from dispatcher.config import Settings
from dispatcher.console.app import StatusApp
from dispatcher.console.client import DaemonClient
from sim.driver import DriverSpec, ScriptedDriver
from sim.robot import RobotSpec, VirtualRobot
from tests.conftest import api_client, daemon_settings, eventually, running_daemon
from tests.integration.dispatch.test_robots_end_to_end import _killable as killable_robot
from tests.integration.dispatch.test_robots_end_to_end import _mission as robot_mission
from tests.integration.dispatch.test_robots_end_to_end import _settings as robots_settings
from tests.integration.dispatch.test_robots_end_to_end import _spec as robot_spec
from tests.integration.dispatch.test_robots_end_to_end import _until_event as until_event

SIZE = (130, 40)
WAIT_S = 30.0


def _offline_alerts(app: StatusApp) -> list[dict[str, object]]:
    return [a for a in app.state.alerts.values() if a.get("kind") == "vehicle_offline"]


def _settings(pg_dsn: str, mqtt_namespace: str, redis_prefix: str) -> Settings:
    return daemon_settings(
        pg_dsn,
        mqtt_namespace,
        redis_prefix,
        alerts={"check_interval_s": 0.2},
        dispatch={"enabled": False},
    )


async def _token(settings: Settings, role: Role) -> str:
    conn = await asyncpg.connect(settings.database.dsn)
    try:
        _, secret = await create_token(
            conn,
            role=role,
            facility_id=settings.default_facility.id,
            name=f"status-view-{role.value}",
            expires_at=None,
        )
    finally:
        await conn.close()
    return secret


@contextlib.contextmanager
def _sim(
    settings: Settings, tmp_path: Path, *, robots: int, manufacturer: str
) -> Iterator[subprocess.Popen[bytes]]:
    """``fleetd sim`` robots in a subprocess on the test's namespace; SIGKILLed on the way
    out. The manufacturer gets a random suffix: MQTT client ids derive from it, and the
    broker is shared with other test runs (the sim's drivers have fixed ids: none here)."""
    manufacturer = f"{manufacturer}{uuid.uuid4().hex[:6]}"
    config = tmp_path / f"sim-{manufacturer}.toml"
    config.write_text(
        f'[mqtt]\nvda_interface = "{settings.mqtt.vda_interface}"\n'
        f'driver_prefix = "{settings.mqtt.driver_prefix}"\n'
        '[daemon]\nlog_level = "warning"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETD_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dispatcher.cli",
            "--config",
            str(config),
            "sim",
            "--robots",
            str(robots),
            "--drivers",
            "0",
            "--manufacturer",
            manufacturer,
            "--state-interval",
            "0.5",
        ],
        env=env,
    )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(10)


@contextlib.asynccontextmanager
async def _drivers(settings: Settings, count: int) -> AsyncIterator[list[ScriptedDriver]]:
    """``count`` simulated driver phones in this process, with ids of their own."""
    first = settings.default_facility.places[0]
    phones = [
        ScriptedDriver(
            DriverSpec(f"sv-{i}-{uuid.uuid4().hex[:6]}", [(first.lat, first.lon)]),
            prefix=settings.mqtt.driver_prefix,
            status_interval_s=0.3,
        )
        for i in range(count)
    ]
    tasks = [asyncio.create_task(p.run(), name=f"test.{p.spec.driver_id}") for p in phones]
    try:
        yield phones
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def _view(
    base_url: str, secret: str, size: tuple[int, int] = SIZE
) -> AsyncIterator[tuple[StatusApp, Pilot[None]]]:
    app = StatusApp(DaemonClient(base_url, secret), telemetry_refresh_s=0.5)
    async with app.run_test(size=size) as pilot:
        yield app, pilot


def _screen_text(app: StatusApp) -> list[str]:
    """The screen as the terminal shows it, line by line (characters only)."""
    return ["".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips()]


def _columns(app: StatusApp, table: str) -> list[str]:
    return [str(c.key.value) for c in app.query_one(f"#{table}", DataTable).columns.values()]


def _nothing_cut(app: StatusApp, table: str) -> bool:
    """The table's columns fit its width: no column runs off its right edge."""
    t = app.query_one(f"#{table}", DataTable)
    return t.virtual_size.width <= t.scrollable_content_region.width


def _rows(app: StatusApp, table: str) -> int:
    return app.query_one(f"#{table}", DataTable).row_count


class TestStatusView:
    async def test_the_vehicles_table_fills_and_a_filter_narrows_it(
        self, pg_dsn: str, mqtt_namespace: str, redis_prefix: str, tmp_path: Path
    ) -> None:
        settings = _settings(pg_dsn, mqtt_namespace, redis_prefix)
        async with running_daemon(settings) as d:
            secret = await _token(settings, Role.OPERATOR)
            with _sim(settings, tmp_path, robots=3, manufacturer="fill"):
                async with _drivers(settings, 2), _view(d.base_url, secret) as (app, pilot):
                    await eventually(lambda: _rows(app, "vehicles") == 5, WAIT_S)
                    assert not app.state.stale
                    assert "LIVE" in app.topbar_text()
                    app.set_filter("kind:driver")
                    await pilot.pause()
                    assert _rows(app, "vehicles") == 2
                    app.set_filter("kind:robot")
                    await pilot.pause()
                    assert _rows(app, "vehicles") == 3
                    app.set_filter("no-such-vehicle")
                    await pilot.pause()
                    assert _rows(app, "vehicles") == 0
                    await pilot.press("escape")
                    await pilot.pause()
                    assert _rows(app, "vehicles") == 5
                    # A vehicle command from the view, confirmed, reaches the vehicle.
                    await pilot.click("#vehicles", offset=(4, 2))  # the first row, by mouse
                    await pilot.pause()
                    assert app.selected is not None and app.selected[0] == "vehicle"
                    await pilot.press("p")
                    await pilot.pause()
                    await pilot.press("y")
                    await eventually(lambda: app.message.endswith(": done"), WAIT_S)
                    assert app.message.startswith("pause ")

    async def test_at_80x24_the_key_columns_show_whole_and_more_as_the_terminal_grows(
        self, pg_dsn: str, mqtt_namespace: str, redis_prefix: str, tmp_path: Path
    ) -> None:
        """In 80x24 the vehicles table shows name, status, battery and mission whole (kind,
        heartbeat and zone go first), the missions table its flag, id, status, vehicle and
        wait, the alerts table what and who; nothing runs off a table's edge. Grown to
        140x42 the view shows every column again."""
        settings = _settings(pg_dsn, mqtt_namespace, redis_prefix)
        places = [p.name for p in settings.default_facility.places]
        async with running_daemon(settings) as d:
            secret = await _token(settings, Role.OPERATOR)
            async with api_client(d.base_url, secret) as client:
                body = {"pickup": {"place": places[0]}, "dropoff": {"place": places[1]}}
                created = await client.post("/v1/missions", json=body)
                assert created.status_code == 201, created.text
            with _sim(settings, tmp_path, robots=3, manufacturer="small"):
                async with (
                    _drivers(settings, 2),
                    _view(d.base_url, secret, size=(80, 24)) as (app, pilot),
                ):
                    await eventually(
                        lambda: _rows(app, "vehicles") == 5 and _rows(app, "missions") == 1,
                        WAIT_S,
                    )
                    await pilot.pause(1.2)  # a redraw at the settled size and data
                    shown = _columns(app, "vehicles")
                    assert {"name", "status", "battery", "mission"} <= set(shown), shown
                    assert "zone" not in shown
                    assert {"flag", "id", "status", "vehicle", "waiting"} <= set(
                        _columns(app, "missions")
                    )
                    assert {"flag", "kind", "subject"} <= set(_columns(app, "alerts"))
                    for table in ("vehicles", "missions", "alerts"):
                        assert _nothing_cut(app, table), table
                    # What staff read: each vehicle's name, status and battery, whole.
                    screen = "\n".join(_screen_text(app))
                    for row in app.state.vehicle_rows()[:4]:  # the rows 80x24 has room for
                        assert row.name in screen and row.status in screen, row
                        assert row.battery in screen, row
                    await pilot.resize_terminal(140, 42)
                    await pilot.pause(1.2)
                    assert _columns(app, "vehicles") == [
                        "name",
                        "kind",
                        "status",
                        "battery",
                        "heartbeat",
                        "mission",
                        "zone",
                    ]
                    assert "priority" in _columns(app, "missions")
                    for table in ("vehicles", "missions", "alerts"):
                        assert _nothing_cut(app, table), table

    async def test_a_killed_vehicle_shows_as_an_alert_within_heartbeat_timeout_plus_2s(
        self, pg_dsn: str, mqtt_namespace: str, redis_prefix: str, tmp_path: Path
    ) -> None:
        settings = _settings(pg_dsn, mqtt_namespace, redis_prefix)
        async with running_daemon(settings) as d:
            secret = await _token(settings, Role.OPERATOR)
            async with _view(d.base_url, secret) as (app, _pilot):
                with _sim(settings, tmp_path, robots=1, manufacturer="killme") as proc:
                    await eventually(
                        lambda: any(v.get("online") for v in app.state.vehicles.values()), WAIT_S
                    )
                    # The sim draws each robot's starting battery at random, so a low_battery
                    # warning may already be up; only the offline alert is under test.
                    assert not _offline_alerts(app)
                    proc.send_signal(signal.SIGKILL)
                    killed = time.monotonic()
                    await eventually(
                        lambda: any(
                            a.get("kind") == "vehicle_offline" for a in app.state.alerts.values()
                        ),
                        settings.fleet.heartbeat_timeout_s + 2,
                    )
                    took = time.monotonic() - killed
                assert took <= settings.fleet.heartbeat_timeout_s + 2
                await eventually(lambda: len(_offline_alerts(app)) == 1, 5)
                await eventually(lambda: _rows(app, "alerts") == len(app.state.alerts), 5)
                offline = [r for r in app.state.alert_rows() if r.kind == "vehicle_offline"]
                assert len(offline) == 1 and offline[0].new

    async def test_a_guest_token_is_offered_no_actions(
        self, pg_dsn: str, mqtt_namespace: str, redis_prefix: str
    ) -> None:
        settings = _settings(pg_dsn, mqtt_namespace, redis_prefix)
        async with running_daemon(settings) as d:
            secret = await _token(settings, Role.GUEST)
            async with _view(d.base_url, secret) as (app, pilot):
                await eventually(lambda: app.state.role == "guest", WAIT_S)
                assert not app.state.stale  # live, with what a guest may read
                for action in ("vehicle", "cancel_mission", "resolve_mission", "acknowledge"):
                    assert app.check_action(action, ()) is False, action
                assert app.offered_actions() == []
                shown = {b.binding.action for b in app.screen.active_bindings.values()}
                assert not shown & {"vehicle('pause')", "cancel_mission", "acknowledge"}
                assert "help" in shown
                await pilot.press("p", "x", "a")
                await pilot.pause()
                assert len(app.screen_stack) == 1  # no confirmation was opened

    async def test_cancel_from_the_view_cancels_the_mission_and_is_audited(
        self, pg_dsn: str, mqtt_namespace: str, redis_prefix: str
    ) -> None:
        settings = _settings(pg_dsn, mqtt_namespace, redis_prefix)
        places = [p.name for p in settings.default_facility.places]
        async with running_daemon(settings) as d:
            secret = await _token(settings, Role.OPERATOR)
            async with api_client(d.base_url, secret) as client:
                body = {"pickup": {"place": places[0]}, "dropoff": {"place": places[1]}}
                created = await client.post("/v1/missions", json=body)
                assert created.status_code == 201, created.text
                mission_id = created.json()["id"]
                async with _view(d.base_url, secret) as (app, pilot):
                    await eventually(lambda: _rows(app, "missions") == 1, WAIT_S)
                    app.query_one("#missions", DataTable).focus()
                    await pilot.pause()
                    await pilot.press("enter")
                    await pilot.pause()
                    assert app.selected == ("mission", mission_id)
                    assert app.check_action("cancel_mission", ()) is True
                    await pilot.press("x")
                    await pilot.pause()
                    await pilot.press("y")
                    await eventually(lambda: _rows(app, "missions") == 0, WAIT_S)
                mission = (await client.get(f"/v1/missions/{mission_id}")).json()
                assert mission["status"] == "cancelled"
        conn = await asyncpg.connect(settings.database.dsn)
        try:
            row = await conn.fetchrow(
                "SELECT actor_role, success FROM audit_log WHERE action = 'mission.cancel' "
                "AND resource_id = $1",
                mission_id,
            )
        finally:
            await conn.close()
        assert row is not None and row["success"] and row["actor_role"] == "operator"

    async def test_stopping_the_daemon_shows_stale_and_restarting_it_recovers(
        self, pg_dsn: str, mqtt_namespace: str, redis_prefix: str
    ) -> None:
        settings = _settings(pg_dsn, mqtt_namespace, redis_prefix)
        base_url = f"http://127.0.0.1:{settings.api.port}"
        async with running_daemon(settings):
            secret = await _token(settings, Role.OPERATOR)
        async with _view(base_url, secret) as (app, pilot):
            await eventually(lambda: app.state.stale, WAIT_S)  # nothing answers yet
            assert "STALE" in app.topbar_text()
            async with running_daemon(settings):
                await eventually(lambda: not app.state.stale, WAIT_S)
                assert "LIVE" in app.topbar_text()
            await eventually(lambda: app.state.stale, WAIT_S)
            await pilot.pause()
            assert "STALE" in app.topbar_text()
            assert app.query_one("#topbar").has_class("stale")
            async with running_daemon(settings):
                await eventually(lambda: not app.state.stale, WAIT_S)
                await pilot.pause()
                assert "LIVE" in app.topbar_text()
                assert not app.query_one("#topbar").has_class("stale")


class TestAlertsApi:
    async def test_acknowledge_is_audited_and_on_the_event_stream(
        self, pg_dsn: str, mqtt_namespace: str, redis_prefix: str, tmp_path: Path
    ) -> None:
        settings = _settings(pg_dsn, mqtt_namespace, redis_prefix)
        async with running_daemon(settings) as d:
            operator = await _token(settings, Role.OPERATOR)
            maintenance = await _token(settings, Role.MAINTENANCE)
            async with api_client(d.base_url, operator) as client:
                with _sim(settings, tmp_path, robots=1, manufacturer="ack") as proc:

                    async def online() -> bool:
                        page = (await client.get("/v1/vehicles")).json()
                        return any(v["online"] for v in page["items"])

                    await eventually(online, WAIT_S)
                    proc.send_signal(signal.SIGKILL)

                    async def raised() -> list[dict[str, object]]:
                        items: list[dict[str, object]] = (await client.get("/v1/alerts")).json()[
                            "items"
                        ]
                        return items

                    await eventually(lambda: _nonempty(raised()), WAIT_S)
                alert = (await raised())[0]
                assert alert["kind"] == "vehicle_offline" and alert["acknowledged_at"] is None
                async with api_client(d.base_url, maintenance) as other:
                    refused = await other.post(f"/v1/alerts/{alert['id']}/acknowledge")
                    assert refused.status_code == 403
                done = await client.post(f"/v1/alerts/{alert['id']}/acknowledge")
                assert done.status_code == 200, done.text
                assert done.json()["acknowledged_by"]
                again = await client.post(f"/v1/alerts/{alert['id']}/acknowledge")
                assert again.status_code == 409
                missing = await client.post(
                    "/v1/alerts/00000000-0000-0000-0000-000000000000/acknowledge"
                )
                assert missing.status_code == 404
                bad = await client.post("/v1/alerts/not-an-id/acknowledge")
                assert bad.status_code == 422
                events = await _alert_events(client)
                assert [e for e in events if e != "cleared"][:2] == ["raised", "acknowledged"]
        conn = await asyncpg.connect(settings.database.dsn)
        try:
            rows = await conn.fetch(
                "SELECT success, reason FROM audit_log WHERE action = 'alert.acknowledge' "
                "AND resource_id = $1 ORDER BY id",
                str(alert["id"]),
            )
        finally:
            await conn.close()
        assert [(r["success"], r["reason"]) for r in rows] == [
            (True, None),
            (False, "already_acknowledged"),
        ]


async def _nonempty(items: object) -> bool:
    return bool(await items)  # type: ignore[misc]


async def _alert_events(client: httpx.AsyncClient) -> list[str]:
    """The alert events in history (replayed from the start of the stream)."""
    names: list[str] = []
    async with client.stream("GET", "/v1/events", params={"after": 0, "types": "alert"}) as r:
        assert r.status_code == 200
        async for line in r.aiter_lines():
            if line.startswith("event: alert."):
                names.append(line.removeprefix("event: alert."))
            if len(names) >= 2:
                break
    return names


class TestMissionAlerts:
    async def test_a_waiting_mission_raises_and_its_cancel_clears(
        self, pg_dsn: str, mqtt_namespace: str, redis_prefix: str
    ) -> None:
        settings = daemon_settings(
            pg_dsn,
            mqtt_namespace,
            redis_prefix,
            alerts={"check_interval_s": 0.2, "mission_wait_s": 0.5},
            dispatch={"enabled": False},
        )
        places = [p.name for p in settings.default_facility.places]
        async with running_daemon(settings) as d:
            secret = await _token(settings, Role.OPERATOR)
            async with api_client(d.base_url, secret) as client:
                body = {"pickup": {"place": places[0]}, "dropoff": {"place": places[1]}}
                mission_id = (await client.post("/v1/missions", json=body)).json()["id"]

                async def kinds(cleared: bool = False) -> list[tuple[str, str | None, bool]]:
                    page = await client.get("/v1/alerts", params={"include_cleared": cleared})
                    return [
                        (a["kind"], a["mission_id"], a["cleared_at"] is not None)
                        for a in page.json()["items"]
                    ]

                async def raised() -> bool:
                    return await kinds() == [("mission_waiting", mission_id, False)]

                await eventually(raised, WAIT_S)
                cancel = await client.post(f"/v1/missions/{mission_id}/cancel")
                assert cancel.status_code == 200, cancel.text

                async def cleared() -> bool:
                    return await kinds(cleared=True) == [("mission_waiting", mission_id, True)]

                await eventually(cleared, WAIT_S)
                assert await kinds() == []


class SafetyRobot(VirtualRobot):
    """A virtual robot whose ``safetyState`` the test sets (an e-stop pressed, released)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.e_stop = "NONE"

    def state_message(self) -> dict[str, Any]:
        msg = super().state_message()
        msg["safetyState"] = {"eStop": self.e_stop, "fieldViolation": False}
        return msg


def _alerts_of(app: StatusApp, kind: str) -> list[dict[str, Any]]:
    return [a for a in app.state.alerts.values() if a.get("kind") == kind]


async def _select_row(app: StatusApp, pilot: Pilot[None], table_id: str, key: str) -> None:
    """Focus the table, put the cursor on the row ``key`` and press enter (as staff do)."""
    table = app.query_one(f"#{table_id}", DataTable)
    table.focus()
    await pilot.pause()
    index = table.get_row_index(key)
    table.move_cursor(row=index, animate=False)
    await pilot.pause()
    await pilot.press("enter")
    await pilot.pause()


async def _audit(dsn: str, action: str, resource_id: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(
            await conn.fetch(
                "SELECT actor_role, success, reason FROM audit_log WHERE action = $1 "
                "AND resource_id = $2 ORDER BY id",
                action,
                resource_id,
            )
        )
    finally:
        await conn.close()


class TestStatusViewAlerts:
    async def test_a_safety_stop_shows_as_an_alert_and_acknowledging_it_is_audited(
        self, pg_dsn: str, mqtt_namespace: str, redis_prefix: str
    ) -> None:
        """A robot reports an e-stop in its VDA 5050 state: the view shows a safety_stop
        alert (how soon is measured by benchmarks/alert_delay.py, not asserted here); the
        operator acknowledges it from the view (confirmed), which reaches the API and the
        audit log; the e-stop released, the alert leaves the view."""
        settings = _settings(pg_dsn, mqtt_namespace, redis_prefix)
        spec = RobotSpec("estop", f"sv-{uuid.uuid4().hex[:6]}", battery_pct=90.0)
        robot = SafetyRobot(spec, prefix=settings.mqtt.vda_prefix, state_interval_s=0.5)
        async with running_daemon(settings) as d:
            secret = await _token(settings, Role.OPERATOR)
            task = asyncio.create_task(robot.run(), name="test.estop-robot")
            try:
                async with _view(d.base_url, secret) as (app, pilot):
                    await eventually(
                        lambda: any(v.get("online") for v in app.state.vehicles.values()), WAIT_S
                    )
                    assert not _alerts_of(app, "safety_stop")
                    robot.e_stop = "MANUAL"
                    robot.mark_changed()
                    await eventually(lambda: bool(_alerts_of(app, "safety_stop")), WAIT_S)
                    [alert] = _alerts_of(app, "safety_stop")
                    alert_id = str(alert["id"])
                    await eventually(lambda: _rows(app, "alerts") == len(app.state.alerts), 5)
                    [row] = [r for r in app.state.alert_rows() if r.id == alert_id]
                    assert row.new and row.severity == "critical"
                    assert row.subject == spec.serial  # the robot's name, not an id
                    await _select_row(app, pilot, "alerts", alert_id)
                    assert app.selected == ("alert", alert_id)
                    assert app.check_action("acknowledge", ()) is True
                    await pilot.press("a")
                    await pilot.pause()
                    await pilot.press("y")
                    await eventually(lambda: app.message == "acknowledge: done", WAIT_S)
                    # The acknowledgement comes back on the stream: dimmed, no longer new.
                    await eventually(
                        lambda: bool(app.state.alerts.get(alert_id, {}).get("acknowledged_at")),
                        WAIT_S,
                    )
                    [row] = [r for r in app.state.alert_rows() if r.id == alert_id]
                    assert row.acknowledged and not row.new
                    robot.e_stop = "NONE"
                    robot.mark_changed()
                    await eventually(lambda: alert_id not in app.state.alerts, WAIT_S)
                    await eventually(lambda: _rows(app, "alerts") == len(app.state.alerts), 5)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        rows = await _audit(settings.database.dsn, "alert.acknowledge", alert_id)
        assert [(r["actor_role"], r["success"]) for r in rows] == [("operator", True)]

    async def test_resolving_a_held_mission_from_the_view_is_audited(
        self, tmp_path: Path, pg_dsn: str, mqtt_namespace: str, redis_prefix: str
    ) -> None:
        """The rider is on board when the robot dies (process SIGKILLed): the engine holds
        the mission for an operator. The view puts it first in the missions panel
        (``DECIDE``) and its decision alert on top of the alerts; the operator resolves it
        from the view (``d``, a choice, a confirmation), the mission ends ``completed``,
        the alert clears and the operator's step is in the audit log."""
        settings = robots_settings(tmp_path, pg_dsn, mqtt_namespace, redis_prefix)
        doomed = robot_spec(settings, "doomed", 1, speed_mps=0.2)
        async with (
            running_daemon(settings) as d,
            api_client(d.base_url, await _token(settings, Role.OPERATOR)) as client,
            killable_robot(settings, doomed) as proc,
        ):
            # Another mission, not held, so "held first" is an order and not a lone row.
            other = await client.post(
                "/v1/missions",
                json={
                    "pickup": {"place": "P3"},
                    "dropoff": {"place": "P4"},
                    "priority": "urgent",
                    "requirements": {"vehicle_kind": "driver"},
                },
            )
            assert other.status_code == 201, other.text
            mission_id = await robot_mission(client, 1, 7)
            await until_event(client, mission_id, "pickup_completed")
            proc.send_signal(signal.SIGKILL)
            await until_event(client, mission_id, "held")
            secret = await _token(settings, Role.OPERATOR)
            async with _view(d.base_url, secret) as (app, pilot):
                await eventually(lambda: bool(_alerts_of(app, "mission_decision")), WAIT_S)
                await eventually(lambda: bool(_alerts_of(app, "vehicle_offline")), WAIT_S)
                await eventually(lambda: _rows(app, "missions") == 2, WAIT_S)
                await pilot.pause(0.3)
                first_mission = app.state.mission_rows()[0]
                assert first_mission.id == mission_id and first_mission.decision
                top_alert = app.state.alert_rows()[0]
                assert top_alert.kind == "mission_decision"
                missions = app.query_one("#missions", DataTable)
                top = Coordinate(0, 0)
                assert str(missions.coordinate_to_cell_key(top).row_key.value) == mission_id
                assert str(missions.get_cell_at(top)) == "DECIDE"
                alerts = app.query_one("#alerts", DataTable)
                assert str(alerts.coordinate_to_cell_key(top).row_key.value) == top_alert.id
                await _select_row(app, pilot, "missions", mission_id)
                assert app.selected == ("mission", mission_id)
                assert app.check_action("resolve_mission", ()) is True
                await pilot.press("d")
                await pilot.pause()
                await pilot.click("#choice-complete")
                await pilot.pause()
                await pilot.press("y")
                await eventually(lambda: app.message.endswith(": done"), WAIT_S)
                assert app.message.startswith("resolve ")
                await eventually(lambda: mission_id not in app.state.missions, WAIT_S)
                await eventually(lambda: not _alerts_of(app, "mission_decision"), WAIT_S)
            body = (await client.get(f"/v1/missions/{mission_id}")).json()
            assert body["status"] == "completed"
        rows = await _audit(settings.database.dsn, "mission.completed", mission_id)
        assert [(r["actor_role"], r["success"]) for r in rows] == [("operator", True)]

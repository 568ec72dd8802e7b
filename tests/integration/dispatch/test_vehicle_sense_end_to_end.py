"""The stuck-robot watchdog and the critical-battery rule, end to end (issue 15/17).

A whole daemon, simulated VDA 5050 robots over the broker on the corridor facility of
``test_robots_end_to_end.py``, missions through the API, alerts read from PostgreSQL.
A stuck robot is a :class:`StuckableRobot` that keeps publishing its state but stops
moving (as the simulator's ``stuck`` fault does); a battery fault sets its charge to 4 %.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg

from dispatcher.config import Settings
from sim.robot import RobotSpec
from tests.conftest import api_client, eventually, running_daemon
from tests.integration.dispatch.test_robots_end_to_end import (
    NODES,
    WAIT_S,
    WatchedRobot,
    _get,
    _mission,
    _robots,
    _settings,
    _spec,
    _timeline,
    _until_event,
    _until_status,
)
from tests.integration.operator_tokens import operator_token


class StuckableRobot(WatchedRobot):
    """A robot that, once ``stuck``, keeps reporting but makes no progress at all."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stuck = False

    def step(self, dt: float) -> None:
        if self.stuck:
            self.driving = False
            return
        super().step(dt)

    def get_stuck(self) -> None:
        self.stuck = True
        self.driving = False
        self.mark_changed()

    def battery_fault(self) -> None:
        self.battery = 4.0
        self.mark_changed()


@asynccontextmanager
async def _stuckable(settings: Settings, spec: RobotSpec) -> AsyncIterator[StuckableRobot]:
    robot = StuckableRobot(spec, prefix=settings.mqtt.vda_prefix, state_interval_s=0.2, tick_s=0.05)
    task = asyncio.create_task(robot.run(), name=f"test.{spec.serial}")
    try:
        await asyncio.wait_for(robot.connected.wait(), WAIT_S)
        yield robot
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert robot.refused == [], f"{spec.serial} was sent conflicting orders: {robot.refused}"


async def _alerts(settings: Settings, vehicle_id: str) -> dict[str, bool]:
    """Alert kind -> still open, for one vehicle."""
    conn = await asyncpg.connect(settings.database.dsn)
    try:
        rows = await conn.fetch(
            "SELECT kind, cleared_at IS NULL AS open FROM alerts WHERE vehicle_id = $1",
            uuid.UUID(vehicle_id),
        )
    finally:
        await conn.close()
    return {r["kind"]: r["open"] for r in rows}


def _sense(**dispatch: Any) -> dict[str, Any]:
    # 4 s at 0.3 m/s is 1.2 m: well over the 0.5 m a robot must move to make progress.
    return {"stuck_after_s": 4.0, "stuck_retry_s": 60.0, **dispatch}


class TestStuckRobot:
    async def test_a_stuck_robot_is_relieved_of_its_mission(
        self, tmp_path: Path, pg_dsn: str, mqtt_namespace: str, redis_prefix: str
    ) -> None:
        """On its way to the pickup the robot stops moving while still reporting: after
        ``stuck_after_s`` its order is cancelled, the mission goes back to pending
        (``unassigned``, reason ``vehicle_stuck``) and another robot completes it; the
        ``vehicle_stuck`` alert is raised, and cleared once the robot moves again."""
        settings = _settings(tmp_path, pg_dsn, mqtt_namespace, redis_prefix, **_sense())
        slow = _spec(settings, "stuck", 0, speed_mps=0.3)
        async with (
            running_daemon(settings) as d,
            api_client(d.base_url, await operator_token(settings)) as client,
            _stuckable(settings, slow) as robot,
        ):
            mission_id = await _mission(client, 4, 6)
            await _until_event(client, mission_id, "started")
            first = (await _get(client, mission_id))["vehicle_id"]
            await eventually(lambda: robot.driving, WAIT_S)
            robot.get_stuck()
            await _until_event(client, mission_id, "unassigned")
            await eventually(lambda: not robot.nodes, WAIT_S)  # cancelOrder arrived

            async def raised() -> bool:
                return (await _alerts(settings, first)).get("vehicle_stuck") is True

            await eventually(raised, WAIT_S)
            async with _robots(settings, _spec(settings, "rescuer", 8)):
                await _until_status(client, mission_id, "completed")
                body = await _get(client, mission_id)
            # It moves again (pushed out of the way): the alert clears.
            robot.stuck = False
            robot.x += 1.0
            robot.mark_changed()

            async def cleared() -> bool:
                return (await _alerts(settings, first)).get("vehicle_stuck") is False

            await eventually(cleared, WAIT_S)
        [lost] = _timeline(body, "unassigned")
        assert lost["vehicle_id"] == first and lost["details"]["reason"] == "vehicle_stuck"
        [again] = _timeline(body, "reassigned")
        assert again["details"]["reason"] == "vehicle_stuck"
        assert body["vehicle_id"] == again["vehicle_id"] != first


class TestCriticalBattery:
    async def test_a_robot_at_4_percent_gives_up_its_leg_and_charges(
        self, tmp_path: Path, pg_dsn: str, mqtt_namespace: str, redis_prefix: str
    ) -> None:
        """No rider on board: the leg is withdrawn (``unassigned``, reason
        ``battery_critical``), the robot is sent to the charging station and charges, the
        ``battery_critical`` alert is raised, and another robot completes the mission."""
        settings = _settings(tmp_path, pg_dsn, mqtt_namespace, redis_prefix, **_sense())
        # Between the pickup (n2) and the charger (n8): a short way to either.
        slow = _spec(settings, "weak", 5, speed_mps=0.4, charge_pct_s=0.5)
        async with (
            running_daemon(settings) as d,
            api_client(d.base_url, await operator_token(settings)) as client,
            _stuckable(settings, slow) as robot,
        ):
            mission_id = await _mission(client, 2, 0)
            await _until_event(client, mission_id, "started")
            first = (await _get(client, mission_id))["vehicle_id"]
            robot.battery_fault()
            await _until_event(client, mission_id, "unassigned")
            await eventually(lambda: robot.order_id.startswith("charge:"), WAIT_S)
            await eventually(lambda: robot.charging and robot.last_node_id == NODES[-1], WAIT_S)
            # Raised; it clears (rightly) once the robot charges, which the line above
            # waited for, so whether it is still open is a race with the alert watch.
            assert "battery_critical" in await _alerts(settings, first)
            assert "vehicle_stuck" not in await _alerts(settings, first)
            async with _robots(settings, _spec(settings, "rescuer", 1)):
                await _until_status(client, mission_id, "completed")
                body = await _get(client, mission_id)
        [lost] = _timeline(body, "unassigned")
        assert lost["vehicle_id"] == first and lost["details"]["reason"] == "battery_critical"
        assert body["vehicle_id"] != first

    async def test_with_the_rider_on_board_far_from_the_dropoff_it_is_held(
        self, tmp_path: Path, pg_dsn: str, mqtt_namespace: str, redis_prefix: str
    ) -> None:
        """Rider on board, the drop-off farther than ``critical_finish_within_m``: the
        mission is held for an operator (reason ``battery_critical``), not reassigned."""
        settings = _settings(
            tmp_path,
            pg_dsn,
            mqtt_namespace,
            redis_prefix,
            **_sense(critical_finish_within_m=3.0),
        )
        # 80 s to the drop-off: on a loaded machine the trip must not end before the
        # critical battery is seen (at 0.3 m/s it sometimes did, and nothing was held).
        slow = _spec(settings, "weak", 1, speed_mps=0.15)
        async with (
            running_daemon(settings) as d,
            api_client(d.base_url, await operator_token(settings)) as client,
            _stuckable(settings, slow) as robot,
        ):
            mission_id = await _mission(client, 1, 7)  # 12 m to the drop-off
            await _until_event(client, mission_id, "pickup_completed")
            robot.battery_fault()
            await _until_event(client, mission_id, "held")
            body = await _get(client, mission_id)
            shown = (await client.get(f"/v1/missions/{mission_id}/resolve")).json()
        assert body["status"] == "in_progress"
        assert _timeline(body, "unassigned") == [] and _timeline(body, "reassigned") == []
        assert shown["held"] is True and shown["held_reason"] == "battery_critical"

    async def test_with_the_rider_on_board_near_the_dropoff_it_finishes(
        self, tmp_path: Path, pg_dsn: str, mqtt_namespace: str, redis_prefix: str
    ) -> None:
        """Rider on board, the drop-off within ``critical_finish_within_m`` (default
        150 m; the corridor is 16 m): the robot finishes the trip, then goes to charge."""
        settings = _settings(tmp_path, pg_dsn, mqtt_namespace, redis_prefix, **_sense())
        slow = _spec(settings, "weak", 1, speed_mps=0.5)
        async with (
            running_daemon(settings) as d,
            api_client(d.base_url, await operator_token(settings)) as client,
            _stuckable(settings, slow) as robot,
        ):
            mission_id = await _mission(client, 1, 4)
            await _until_event(client, mission_id, "pickup_completed")
            robot.battery_fault()
            await _until_status(client, mission_id, "completed")
            await eventually(lambda: robot.order_id.startswith("charge:"), WAIT_S)
            body = await _get(client, mission_id)
        events = [e["event"] for e in body["timeline"]]
        assert "held" not in events and "unassigned" not in events

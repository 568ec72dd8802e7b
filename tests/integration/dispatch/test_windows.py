"""Scheduled missions on the running engine (real Postgres and Redis): a booking ten
minutes out is planned but not dispatched at once, and is dispatched when due."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from dispatcher.api.mission_mapping import build_draft
from dispatcher.api.mission_schemas import MissionCreate
from dispatcher.auth.roles import Role
from dispatcher.dispatch.legs import LegProgressKind, StopAction
from dispatcher.missions.store import CreateResult
from dispatcher.ops.missions import MissionOps
from tests.conftest import eventually
from tests.integration.dispatch.conftest import WARD_A, Rig, robot
from tests.integration.ops.conftest import NORTH, api_caller


async def create(rig: Rig, body: dict[str, Any]) -> uuid.UUID:
    caller = api_caller(Role.NURSE)
    request = MissionCreate.model_validate(body)
    outcome = await MissionOps(rig.pool).create(
        caller,
        NORTH.spec,
        lambda: build_draft(request, NORTH.spec, created_by=caller.subject, idempotency_key=None),
    )
    assert isinstance(outcome, CreateResult)
    return outcome.mission.id


def booking(in_s: float, length_s: float = 900.0) -> dict[str, Any]:
    start = datetime.now(UTC) + timedelta(seconds=in_s)
    return {
        "pickup": {"place": "Ward A"},
        "dropoff": {"place": "Radiology"},
        "window": {
            "start": start.isoformat(),
            "end": (start + timedelta(seconds=length_s)).isoformat(),
        },
    }


async def test_a_booking_ten_minutes_out_waits_then_is_dispatched_when_due(rig: Rig) -> None:
    """A free robot at the pickup; the booking opens in ten minutes. For many plans it
    stays pending with no leg (the engine plans every 0.5 s here); an ASAP mission made
    meanwhile is dispatched at once (the robot was free all along). With the engine's
    clock moved on nine minutes (the window opens in one, within the release margin),
    the booking's leg is released to the robot."""
    here = robot("here", WARD_A)
    await rig.add_vehicle(here)
    mission_id = await create(rig, booking(600.0))
    plans = rig.engine.plans
    await eventually(lambda: rig.engine.plans >= plans + 6, timeout=30.0)
    assert rig.channel.legs_for(mission_id) == []
    assert await rig.status(mission_id) == "pending"
    assert rig.engine.missions[mission_id].window_start is not None

    # The robot is free meanwhile: a mission for now goes to it at once.
    now_id = await create(rig, {"pickup": {"place": "Radiology"}, "dropoff": {"place": "Ward A"}})
    await eventually(lambda: len(rig.channel.legs_for(now_id)) == 1)
    (leg,) = rig.channel.legs_for(now_id)
    assert leg.vehicle_id == here.id
    rig.progress(leg, LegProgressKind.FINISHED)
    await eventually(lambda: rig.channel.open == {})
    plans = rig.engine.plans
    await eventually(lambda: rig.engine.plans >= plans + 4, timeout=30.0)
    assert rig.channel.legs_for(mission_id) == []

    rig.clock.ahead_s = 540.0
    await eventually(lambda: len(rig.channel.legs_for(mission_id)) == 1, timeout=20.0)
    (booked,) = rig.channel.legs_for(mission_id)
    assert booked.vehicle_id == here.id
    assert [s.action for s in booked.stops] == [StopAction.PICK, StopAction.DROP]

    async def assigned() -> bool:
        return await rig.status(mission_id) == "assigned"

    await eventually(assigned)


async def test_a_booking_whose_window_has_passed_is_still_dispatched(rig: Rig) -> None:
    """The engine's clock is past the window's end (a booking nobody could serve in
    time): the mission is dispatched at once, not dropped."""
    rig.clock.ahead_s = 1200.0
    await rig.add_vehicle(robot("late", WARD_A))
    mission_id = await create(rig, booking(60.0, 300.0))
    await eventually(lambda: len(rig.channel.legs_for(mission_id)) == 1)

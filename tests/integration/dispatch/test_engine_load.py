"""The engine under load: no planning without vehicles, the quick insertion apart from the
full plan (real Postgres and Redis, the in-test leg channel)."""

from __future__ import annotations

import asyncio
import uuid

from dispatcher.api.mission_mapping import build_draft
from dispatcher.api.mission_schemas import MissionCreate
from dispatcher.auth.roles import Role
from dispatcher.dispatch.legs import LegProgressKind
from dispatcher.dispatch.planning import SolveJob
from dispatcher.missions.domain import MissionRecord
from dispatcher.missions.store import CreateResult
from dispatcher.ops.missions import MissionOps
from dispatcher.planner import Plan
from tests.conftest import eventually
from tests.integration.dispatch.conftest import WARD_A, Rig, robot
from tests.integration.dispatch.test_engine import BODY, create, leg_of, status_is
from tests.integration.ops.conftest import NORTH, api_caller


class TestNoVehicles:
    async def test_a_backlog_without_vehicles_is_not_planned_until_one_comes(
        self, rig: Rig
    ) -> None:
        """Missions with no vehicle that could take them cost no plan (no candidate search,
        no solve) however often the engine is woken; the first vehicle gets one."""
        missions = [await create(rig) for _ in range(3)]
        await eventually(lambda: all(m in rig.engine.missions for m in missions))
        await eventually(lambda: rig.engine.idle_skips >= 3)
        assert rig.engine.plans == 0
        near = robot("near", WARD_A)
        await rig.add_vehicle(near)
        rig.engine.mark(urgent=True)  # what the registry's change feed does
        leg = await leg_of(rig, missions[0])
        assert leg.vehicle_id == near.id
        assert rig.engine.plans >= 1


class TestQuickInsertion:
    async def test_a_new_mission_does_not_wait_for_a_full_plan_in_progress(self, rig: Rig) -> None:
        """While a full optimisation runs (here: held until the test lets it go), a new
        mission is still given to the free robot at once by the quick insertion."""
        gate = asyncio.Event()
        started = asyncio.Event()
        planner = rig.engine._planner  # the test holds the full plan back
        real = planner._runner

        async def held(job: SolveJob) -> Plan:
            started.set()
            await gate.wait()
            return await real(job)

        planner._runner = held
        first = robot("first", WARD_A)
        await rig.add_vehicle(first)
        m1 = await create(rig)
        leg1 = await leg_of(rig, m1)
        await create(rig)  # waits for the busy robot: the full plan takes it up, held
        await asyncio.wait_for(started.wait(), 10)
        rig.progress(leg1, LegProgressKind.FINISHED)
        await status_is(rig, m1, "completed")
        m2 = await create(rig)
        leg2 = await leg_of(rig, m2)
        assert leg2.vehicle_id == first.id
        assert not gate.is_set()
        gate.set()
        await status_is(rig, m2, "assigned")


class TestHandOff:
    async def test_a_mission_created_in_process_is_handed_to_the_engine(self, rig: Rig) -> None:
        """MissionOps' on_created (what the daemon wires to the engine) hands the committed
        mission over at once; the event stream's ``created`` for it is then a no-op."""
        handed: list[uuid.UUID] = []

        def hand_off(mission: MissionRecord) -> None:
            handed.append(mission.id)
            rig.engine.take_new(mission)

        near = robot("near", WARD_A)
        await rig.add_vehicle(near)
        caller = api_caller(Role.NURSE)
        request = MissionCreate.model_validate(BODY)
        outcome = await MissionOps(rig.pool, on_created=hand_off).create(
            caller,
            NORTH.spec,
            lambda: build_draft(
                request, NORTH.spec, created_by=caller.subject, idempotency_key=None
            ),
        )
        assert isinstance(outcome, CreateResult)
        assert handed == [outcome.mission.id]
        leg = await leg_of(rig, outcome.mission.id)
        assert leg.vehicle_id == near.id
        await rig.engine.mission_created(outcome.mission.id)  # the stream's late delivery
        await status_is(rig, outcome.mission.id, "assigned")
        assert len(rig.channel.legs_for(outcome.mission.id)) == 1

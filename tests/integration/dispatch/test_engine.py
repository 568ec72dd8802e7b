"""The dispatch engine on real Postgres and Redis, with an in-test leg channel."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import replace
from typing import Any

import pytest

import dispatcher.dispatch.engine as engine_module
from dispatcher.api.mission_mapping import build_draft
from dispatcher.api.mission_schemas import MissionCreate
from dispatcher.auth.roles import Role
from dispatcher.dispatch.driver_offers import TRIP_STEPS
from dispatcher.dispatch.legs import Leg, LegFailure, LegProgress, LegProgressKind, StopAction
from dispatcher.dispatch.recovery import Resolution
from dispatcher.links.commands import CommandResult, VehicleCommand
from dispatcher.missions.lifecycle import MissionEvent, Priority
from dispatcher.missions.store import CreateResult, TransitionResult
from dispatcher.ops.caller import Caller
from dispatcher.ops.charge_routing import ChargeRoutingCommander
from dispatcher.ops.missions import MissionOps
from dispatcher.ops.resolve import NotAllowed, Reassigning, ResolveOps
from dispatcher.ops.vehicles import CommandAttempt, VehicleOps
from fleet.changes import FleetChange
from fleet.model import ChangeKind, VehicleKind
from sim.invariants import holder_problems, load_events
from tests.conftest import eventually
from tests.integration.dispatch.conftest import (
    RADIOLOGY,
    STATION,
    WARD_A,
    RecordingChannel,
    Rig,
    build_engine,
    robot,
)
from tests.integration.ops.conftest import NORTH, api_caller
from tests.unit.api.fakes import make_vehicle

K = LegProgressKind
BODY: dict[str, Any] = {"pickup": {"place": "Ward A"}, "dropoff": {"place": "Radiology"}}


async def create(rig: Rig, caller: Caller | None = None) -> uuid.UUID:
    caller = caller or api_caller(Role.NURSE)
    request = MissionCreate.model_validate(BODY)
    outcome = await MissionOps(rig.pool).create(
        caller,
        NORTH.spec,
        lambda: build_draft(request, NORTH.spec, created_by=caller.subject, idempotency_key=None),
    )
    assert isinstance(outcome, CreateResult)
    return outcome.mission.id


async def leg_of(rig: Rig, mission_id: uuid.UUID, n: int = 1) -> Leg:
    """The ``n``-th leg released for the mission (waits for it)."""
    await eventually(lambda: len(rig.channel.legs_for(mission_id)) >= n)
    return rig.channel.legs_for(mission_id)[n - 1]


async def status_is(rig: Rig, mission_id: uuid.UUID, status: str) -> None:
    async def check() -> bool:
        return await rig.status(mission_id) == status

    await eventually(check)


async def assert_one_holder(rig: Rig, channel: RecordingChannel) -> None:
    """The mission record never shows a vehicle holding two open missions, and the channel
    never got a leg for a vehicle holding one or a mission released twice."""
    events = await load_events(rig.pool)
    assert holder_problems(e for evs in events.values() for e in evs) == []
    assert channel.violations == []


class TestAssignment:
    async def test_a_new_mission_is_assigned_to_the_nearest_robot_and_released(
        self, rig: Rig
    ) -> None:
        """Created through ops, it is assigned and one leg (pick, drop) goes to the robot
        nearest its pickup; progress then completes it with the whole timeline."""
        near, far = robot("near", WARD_A), robot("far", (52.5300, 13.4300))
        await rig.add_vehicle(far)
        await rig.add_vehicle(near)
        mission_id = await create(rig)
        leg = await leg_of(rig, mission_id)
        assert leg.vehicle_id == near.id
        assert [s.action for s in leg.stops] == [StopAction.PICK, StopAction.DROP]
        await status_is(rig, mission_id, "assigned")
        for kind in (K.ACCEPTED, K.TO_PICKUP, K.PICKED_UP, K.DROPPED_OFF, K.FINISHED):
            rig.progress(leg, kind)
        await status_is(rig, mission_id, "completed")
        assert await rig.events(mission_id) == [
            "created", "assigned", "started", "pickup_arrived", "pickup_completed",
            "in_transit", "dropoff_arrived", "dropoff_completed", "completed",
        ]  # fmt: skip

    async def test_no_double_assignment_under_concurrent_creates(self, rig: Rig) -> None:
        """Eight missions created at once on three robots: each robot holds one leg at a
        time, each mission one robot; finishing legs lets the rest through until all are
        completed (the channel double records any violation)."""
        robots = [robot(f"r{i}", (52.5218 + i * 0.0005, 13.4061)) for i in range(3)]
        for r in robots:
            await rig.add_vehicle(r)
        missions = await asyncio.gather(*(create(rig) for _ in range(8)))
        done: set[uuid.UUID] = set()
        deadline = time.monotonic() + 60
        while len(done) < len(missions) and time.monotonic() < deadline:
            for leg in list(rig.channel.open.values()):
                assert leg.mission_id is not None
                rig.progress(leg, K.FINISHED)
                done.add(leg.mission_id)
            rows = await rig.pool.fetch(
                "SELECT vehicle_id, count(*) AS n FROM missions "
                "WHERE status IN ('assigned', 'in_progress') GROUP BY vehicle_id"
            )
            assert all(r["n"] == 1 for r in rows)
            await asyncio.sleep(0.05)
        for mission_id in missions:
            await status_is(rig, mission_id, "completed")
        assert rig.channel.violations == []

    async def test_a_plan_released_side_by_side_never_double_holds(self, rig: Rig) -> None:
        """Twelve robots, twenty missions at once: plans release more legs than
        ``RELEASES_AT_ONCE`` side by side; each robot holds one leg at a time, each mission
        one robot, and finishing legs lets the rest through until all are completed."""
        robots = [robot(f"s{i}", (52.5218 + i * 0.0004, 13.4061)) for i in range(12)]
        for r in robots:
            await rig.add_vehicle(r)
        missions = await asyncio.gather(*(create(rig) for _ in range(20)))
        done: set[uuid.UUID] = set()
        most = 0
        deadline = time.monotonic() + 60
        while len(done) < len(missions) and time.monotonic() < deadline:
            legs = list(rig.channel.open.values())
            assert len({leg.vehicle_id for leg in legs}) == len(legs)
            most = max(most, len(legs))
            for leg in legs:
                assert leg.mission_id is not None
                rig.progress(leg, K.FINISHED)
                done.add(leg.mission_id)
            await asyncio.sleep(0.2)
        for mission_id in missions:
            await status_is(rig, mission_id, "completed")
        assert most > 1
        assert rig.channel.violations == []


class TestWhenThingsGoWrong:
    async def test_a_refused_leg_is_reassigned_with_the_reason(self, rig: Rig) -> None:
        """The nearest robot refuses the order: the mission goes to the other robot,
        recorded as ``reassigned`` with reason ``order_rejected``."""
        near, other = robot("near", WARD_A), robot("other", RADIOLOGY)
        await rig.add_vehicle(near)
        await rig.add_vehicle(other)
        mission_id = await create(rig)
        first = await leg_of(rig, mission_id)
        assert first.vehicle_id == near.id
        rig.progress(first, K.REFUSED, LegFailure.ORDER_REJECTED)
        second = await leg_of(rig, mission_id, 2)
        assert second.vehicle_id == other.id
        row = await rig.pool.fetchrow(
            "SELECT vehicle_id, details FROM mission_events WHERE mission_id = $1 "
            "AND event = 'reassigned'",
            mission_id,
        )
        assert row is not None
        assert row["vehicle_id"] == other.id
        assert row["details"]["reason"] == "order_rejected"

    async def test_a_leg_that_never_reached_the_robot_is_not_held_against_it(
        self, rig: Rig
    ) -> None:
        """The broker away when the leg went out (a retry, not a refusal): the mission is
        planned again and may go to the same robot (found by the broker-restart fault
        case: robots were never offered missions they had not even received)."""
        near, other = robot("near", WARD_A), robot("other", RADIOLOGY)
        rig.channel.unreachable[near.id] = 1
        await rig.add_vehicle(near)
        await rig.add_vehicle(other)
        mission_id = await create(rig)
        first = await leg_of(rig, mission_id)
        assert first.vehicle_id == near.id
        second = await leg_of(rig, mission_id, 2)
        assert second.vehicle_id == near.id
        assert rig.channel.violations == []

    async def test_a_refused_mission_returns_to_pending_in_the_database_too(self, rig: Rig) -> None:
        """The only robot refuses: the mission is ``unassigned`` (pending, no vehicle) in
        Postgres as in the engine, not left ``assigned`` to the robot that refused; a robot
        that comes later gets it as ``reassigned`` with the refusal's reason."""
        near = robot("near", WARD_A)
        await rig.add_vehicle(near)
        mission_id = await create(rig)
        first = await leg_of(rig, mission_id)
        await status_is(rig, mission_id, "assigned")
        rig.progress(first, K.REFUSED, LegFailure.ORDER_REJECTED)
        await status_is(rig, mission_id, "pending")
        row = await rig.pool.fetchrow(
            "SELECT vehicle_id, held_reason FROM missions WHERE id = $1", mission_id
        )
        assert row is not None and row["vehicle_id"] is None and row["held_reason"] is None
        await eventually(lambda: rig.engine.missions[mission_id].status.value == "pending")
        assert rig.engine.missions[mission_id].vehicle_id is None
        lost = await rig.pool.fetchrow(
            "SELECT vehicle_id, details FROM mission_events WHERE mission_id = $1 "
            "AND event = 'unassigned'",
            mission_id,
        )
        assert lost is not None and lost["vehicle_id"] == near.id
        assert lost["details"]["reason"] == "order_rejected"
        await asyncio.sleep(0.3)  # re-planned: the robot that refused is not asked again
        assert len(rig.channel.legs_for(mission_id)) == 1
        other = robot("other", RADIOLOGY)
        await rig.add_vehicle(other)
        rig.engine.mark(urgent=True)
        second = await leg_of(rig, mission_id, 2)
        assert second.vehicle_id == other.id
        await status_is(rig, mission_id, "assigned")
        assert (await rig.events(mission_id))[-2:] == ["unassigned", "reassigned"]

    async def test_a_plan_solved_before_a_refusal_does_not_give_the_mission_back(
        self, rig: Rig
    ) -> None:
        """A full plan solved from inputs of before the only robot refused (under load a
        solve took 19 s and offered the mission to the same silent phone again): its
        commit leaves the mission to the others."""
        near = robot("near", WARD_A)
        await rig.add_vehicle(near)
        mission_id = await create(rig)
        first = await leg_of(rig, mission_id)
        rig.progress(first, K.REFUSED, LegFailure.ORDER_REJECTED)
        await status_is(rig, mission_id, "pending")
        await eventually(lambda: rig.engine.missions[mission_id].vehicle_id is None)
        async with rig.engine._lock:  # the stale plan's commit, as plan_now makes it
            await rig.engine._commit({near.id: (mission_id,)})
        assert len(rig.channel.legs_for(mission_id)) == 1
        assert await rig.status(mission_id) == "pending"

    async def test_a_held_mission_stays_held_across_an_engine_restart(self, rig: Rig) -> None:
        """Held (rider on board, robot failed) is recorded: a new engine loading from
        Postgres keeps it waiting for the operator, with the original reason."""
        await rig.add_vehicle(robot("near", WARD_A))
        mission_id = await create(rig)
        leg = await leg_of(rig, mission_id)
        rig.progress(leg, K.PICKED_UP)
        rig.progress(leg, K.FAILED, LegFailure.FATAL_ERROR)
        await eventually(lambda: mission_id in rig.engine.holdings.held)

        async def recorded() -> bool:
            reason = await rig.pool.fetchval(
                "SELECT held_reason FROM missions WHERE id = $1", mission_id
            )
            return bool(reason == "fatal_error")

        await eventually(recorded)
        assert (await rig.events(mission_id))[-1] == "held"
        restarted = build_engine(rig.pool, rig.positions, rig.fleet, RecordingChannel())
        await restarted.load()
        assert restarted.held_reason(mission_id) == "fatal_error"
        assert (await rig.events(mission_id)).count("held") == 1  # not recorded twice

    async def test_an_assigned_mission_found_at_start_is_planned_again(
        self, rig: Rig, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Assigned before a restart: the new engine does not know the leg; it keeps the
        mission's vehicle on record (so that vehicle takes no other mission meanwhile) and
        plans the mission again once the vehicles have reported (``reassigned``, reason
        ``engine_restart``): never two vehicles on it."""
        monkeypatch.setattr(engine_module, "RESTART_SETTLE_S", 0.0)
        near = robot("near", WARD_A)
        await rig.add_vehicle(near)
        mission_id = await create(rig)
        await leg_of(rig, mission_id)
        await status_is(rig, mission_id, "assigned")
        fresh = RecordingChannel()
        restarted = build_engine(rig.pool, rig.positions, rig.fleet, fresh)
        await restarted.load()
        assert restarted.held_reason(mission_id) is None
        assert restarted.missions[mission_id].vehicle_id == near.id
        await restarted.plan_now()
        [again] = fresh.legs_for(mission_id)
        assert again.vehicle_id == near.id
        assert (await rig.events(mission_id))[-1] == "reassigned"
        assert fresh.violations == []

    async def test_nothing_is_planned_before_the_missions_in_flight_are_loaded(
        self, rig: Rig, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A restarted engine runs beside its intake, which loads the open missions: a
        mission created meanwhile waits for that load, else it goes to a vehicle that
        still holds one from before the restart (seen in the kill -9 fault test)."""
        monkeypatch.setattr(engine_module, "RESTART_SETTLE_S", 0.0)
        near = robot("near", WARD_A)
        await rig.add_vehicle(near)
        first = await create(rig)
        await leg_of(rig, first)
        await status_is(rig, first, "assigned")
        fresh = RecordingChannel()
        restarted = build_engine(rig.pool, rig.positions, rig.fleet, fresh)
        task = asyncio.create_task(restarted.run(), name="test.restarted")
        try:
            second = await create(rig)
            await restarted.mission_created(second)
            await asyncio.sleep(0.5)
            assert fresh.legs_for(second) == []
            await restarted.load()
            await asyncio.sleep(0.5)
            # Loaded: ``near`` still holds ``first`` on record, so ``second`` is not its.
            assert fresh.legs_for(second) == [] and fresh.violations == []
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def test_after_the_restart_hold_a_vehicle_lets_go_of_its_old_mission_first(
        self, rig: Rig, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Its mission from before the restart found no other vehicle within the hold:
        the vehicle may take another one, but its old mission is recorded ``unassigned``
        first, so the record never shows it holding two (the kill -9 fault case's
        ``one_holder`` failure); the old mission is then ``reassigned`` as after a loss."""
        monkeypatch.setattr(engine_module, "RESTART_SETTLE_S", 0.0)
        monkeypatch.setattr(engine_module, "RESTART_HOLD_S", 0.0)
        near = robot("near", WARD_A)
        await rig.add_vehicle(near)
        first = await create(rig)
        await leg_of(rig, first)
        await status_is(rig, first, "assigned")
        fresh = RecordingChannel()
        restarted = build_engine(rig.pool, rig.positions, rig.fleet, fresh)
        await restarted.load()
        second = await create(rig)
        await restarted.mission_created(second)
        async with restarted._lock:  # as the plan loop commits
            await restarted._commit({near.id: (second, first)})
        [leg] = fresh.legs_for(second)
        assert leg.vehicle_id == near.id
        assert (await rig.events(first))[-1] == "unassigned"
        assert (
            await rig.pool.fetchval("SELECT vehicle_id FROM missions WHERE id = $1", first) is None
        )
        await assert_one_holder(rig, fresh)

    async def test_after_a_restart_an_old_missions_vehicle_is_cancelled_before_its_new_leg(
        self, rig: Rig, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """After a restart legs are released side by side as at any time: a plan gives
        ``near``'s mission from before to ``far`` and ``near`` a new one. ``near`` waits
        for its old mission to be on record with ``far`` (and its old order cancelled);
        the next plan, due at once, gives it the new one. The engine calls the channel
        for ``near`` in that order (the robot channel sends in call order), and the record
        never shows a vehicle with two missions."""
        monkeypatch.setattr(engine_module, "RESTART_SETTLE_S", 0.0)
        near, far = robot("near", WARD_A), robot("far", RADIOLOGY)
        await rig.add_vehicle(near)
        first = await create(rig)
        await leg_of(rig, first)
        await status_is(rig, first, "assigned")
        await rig.engine.stop_intake()  # the daemon before the restart releases no more
        await rig.add_vehicle(far)
        fresh = RecordingChannel()
        restarted = build_engine(rig.pool, rig.positions, rig.fleet, fresh)
        await restarted.load()
        second = await create(rig)
        await restarted.mission_created(second)
        restarted._debounce.take(float("inf"))  # the load's mark, taken by a plan
        async with restarted._lock:  # as the plan loop commits
            await restarted._commit({near.id: (second,), far.id: (first,)})
        [moved] = fresh.legs_for(first)
        assert moved.vehicle_id == far.id and fresh.legs_for(second) == []
        assert restarted._debounce.pending  # near is free now: the next plan is due
        async with restarted._lock:
            await restarted._commit({near.id: (second,), far.id: (first,)})
        [leg] = fresh.legs_for(second)
        assert leg.vehicle_id == near.id
        assert [what for vid, what, _ in fresh.calls if vid == near.id] == [
            "withdraw",
            "release",
        ]
        await assert_one_holder(rig, fresh)

    async def test_an_in_progress_mission_before_pickup_found_at_start_is_planned_again(
        self, rig: Rig, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Under way to the pickup (no rider on board) when the engine stopped: not held
        for an operator, planned again like an assigned one (a rider on board is resumed
        instead: tests/integration/faults)."""
        monkeypatch.setattr(engine_module, "RESTART_SETTLE_S", 0.0)
        await rig.add_vehicle(robot("near", WARD_A))
        mission_id = await create(rig)
        leg = await leg_of(rig, mission_id)
        rig.progress(leg, K.TO_PICKUP)
        await status_is(rig, mission_id, "in_progress")
        fresh = RecordingChannel()
        restarted = build_engine(rig.pool, rig.positions, rig.fleet, fresh)
        await restarted.load()
        assert restarted.held_reason(mission_id) is None
        await restarted.plan_now()
        assert len(fresh.legs_for(mission_id)) == 1
        assert fresh.violations == []

    async def test_a_robot_whose_rider_awaits_its_resume_takes_no_new_mission(
        self, rig: Rig
    ) -> None:
        """Restarted with a rider on board: during the settle time, before the drop-off
        is given back, the quick insertion must not give that robot a second mission
        (found by the soak: the robot was sent to another pickup with a rider aboard)."""
        near = robot("near", WARD_A)
        await rig.add_vehicle(near)
        mission_id = await create(rig)
        leg = await leg_of(rig, mission_id)
        rig.progress(leg, K.PICKED_UP)
        await status_is(rig, mission_id, "in_progress")
        fresh = RecordingChannel()
        restarted = build_engine(rig.pool, rig.positions, rig.fleet, fresh)
        await restarted.load()  # the settle time starts: the rider is not resumed yet
        second = await create(rig)
        found = await MissionOps(rig.pool).get(api_caller(Role.OPERATOR), second)
        assert found is not None
        restarted.take_new(found[0])
        await restarted.insert_new()
        assert fresh.legs_for(second) == []
        restarted._settle_until = 0.0  # the vehicles have reported
        await restarted.plan_now()
        [resumed] = fresh.legs_for(mission_id)
        assert resumed.vehicle_id == near.id
        assert fresh.legs_for(second) == []  # still busy with the rider
        assert fresh.violations == []

    async def test_a_driver_still_on_the_trip_carries_on_after_a_restart(
        self, rig: Rig, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A driver with the rider on board when fleetd restarted (or a standby took
        over): the phone keeps the trip, so the new engine follows it again (no offer, no
        new mission event) instead of holding the mission for an operator (the soak held
        17 such missions in one run); the phone's drop-off then completes it."""
        monkeypatch.setattr(engine_module, "RESTART_SETTLE_S", 0.0)
        driver = make_vehicle(NORTH.id, "d1", kind=VehicleKind.DRIVER, lat=WARD_A[0], lon=WARD_A[1])
        mission_id = await create(rig)
        await rig.add_vehicle(driver)
        ops, system = MissionOps(rig.pool), Caller.system("previous-daemon")
        for event in (
            MissionEvent.ASSIGNED, MissionEvent.STARTED, MissionEvent.PICKUP_ARRIVED,
            MissionEvent.PICKUP_COMPLETED,
        ):  # fmt: skip
            vehicle = driver.id if event is MissionEvent.ASSIGNED else None
            result = await ops.transition(system, mission_id, event, scope=None, vehicle_id=vehicle)
            assert isinstance(result, TransitionResult), result
        fresh = RecordingChannel(on_a_trip={driver.id})
        kinds = (VehicleKind.ROBOT, VehicleKind.DRIVER)
        restarted = build_engine(rig.pool, rig.positions, rig.fleet, fresh, kinds=kinds)
        await restarted.load()
        await restarted.plan_now()
        [(leg, reached)] = fresh.adopted
        assert (leg.vehicle_id, leg.mission_id) == (driver.id, mission_id)
        assert reached == TRIP_STEPS.index(K.PICKED_UP)
        assert fresh.released == [] and restarted.held_reason(mission_id) is None
        before = await rig.events(mission_id)
        for kind in (K.DROPOFF_ARRIVED, K.DROPPED_OFF, K.FINISHED):
            async with restarted._lock:
                await restarted.apply(
                    LegProgress(leg.leg_id, driver.id, mission_id, kind, time.time(), None)
                )
        assert await rig.status(mission_id) == "completed"
        assert (await rig.events(mission_id))[len(before) :] == [
            "in_transit", "dropoff_arrived", "dropoff_completed", "completed",
        ]  # fmt: skip

    async def test_a_driver_whose_phone_dropped_the_trip_is_held_after_a_restart(
        self, rig: Rig, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The phone names no job any more (the trip ended or was dropped while nobody
        followed it): the mission waits for an operator, as before."""
        monkeypatch.setattr(engine_module, "RESTART_SETTLE_S", 0.0)
        driver = make_vehicle(NORTH.id, "d2", kind=VehicleKind.DRIVER, lat=WARD_A[0], lon=WARD_A[1])
        mission_id = await create(rig)
        await rig.add_vehicle(driver)
        ops, system = MissionOps(rig.pool), Caller.system("previous-daemon")
        for event in (MissionEvent.ASSIGNED, MissionEvent.STARTED, MissionEvent.PICKUP_COMPLETED):
            vehicle = driver.id if event is MissionEvent.ASSIGNED else None
            await ops.transition(system, mission_id, event, scope=None, vehicle_id=vehicle)
        fresh = RecordingChannel()  # not on a trip
        kinds = (VehicleKind.ROBOT, VehicleKind.DRIVER)
        restarted = build_engine(rig.pool, rig.positions, rig.fleet, fresh, kinds=kinds)
        await restarted.load()
        await restarted.plan_now()
        assert fresh.adopted == [] and fresh.released == []
        assert restarted.held_reason(mission_id) == "engine_restart"

    async def test_a_vehicle_going_offline_before_pickup_loses_its_mission(self, rig: Rig) -> None:
        """Offline before pickup: re-planned at once onto another robot."""
        near, other = robot("near", WARD_A), robot("other", RADIOLOGY)
        await rig.add_vehicle(near)
        await rig.add_vehicle(other)
        mission_id = await create(rig)
        first = await leg_of(rig, mission_id)
        rig.fleet.vehicles[near.id] = robot("near", WARD_A, online=False)
        rig.engine.on_fleet_change(
            FleetChange(near.id, NORTH.id, ChangeKind.WENT_OFFLINE, {}, time.time())
        )
        second = await leg_of(rig, mission_id, 2)
        assert (first.vehicle_id, second.vehicle_id) == (near.id, other.id)

    async def test_a_mission_waits_until_its_old_robot_lets_go(self, rig: Rig) -> None:
        """Issue 18: the leg was taken back but the old robot, online, still drives the
        order (its cancel not acted on yet): no other vehicle gets the mission until the
        channel says the robot has let go."""
        near, other = robot("near", WARD_A), robot("other", RADIOLOGY)
        await rig.add_vehicle(near)
        await rig.add_vehicle(other)
        mission_id = await create(rig)
        first = await leg_of(rig, mission_id)
        rig.channel.letting_go.add(mission_id)
        rig.progress(first, K.FAILED, LegFailure.FATAL_ERROR)
        await eventually(lambda: rig.engine.holdings.of_mission(mission_id) is None)
        await rig.engine.plan_now()
        await asyncio.sleep(0.3)  # a few plan rounds: still nobody takes it
        assert len(rig.channel.legs_for(mission_id)) == 1
        rig.channel.letting_go.clear()
        second = await leg_of(rig, mission_id, 2)
        assert second.vehicle_id == other.id

    async def test_a_picked_up_mission_waits_for_an_operator_and_is_resolved(
        self, rig: Rig
    ) -> None:
        """The robot fails with the rider on board: nothing is reassigned; the operator's
        ``reassign`` (through the resolve operation the API uses) sends another robot to
        where the rider is, and the mission goes on to completion."""
        near, other = robot("near", WARD_A), robot("other", RADIOLOGY)
        await rig.add_vehicle(near)
        await rig.add_vehicle(other)
        mission_id = await create(rig)
        leg = await leg_of(rig, mission_id)
        rig.progress(leg, K.PICKED_UP)
        await eventually(
            lambda: "pickup_completed" in rig.engine.missions[mission_id].status or True
        )
        rig.progress(leg, K.FAILED, LegFailure.FATAL_ERROR)
        await eventually(lambda: mission_id in rig.engine.holdings.held)
        await asyncio.sleep(0.3)  # a few plan rounds: still nobody takes it
        assert len(rig.channel.legs_for(mission_id)) == 1
        assert await rig.status(mission_id) == "in_progress"

        ops = ResolveOps(rig.pool, rig.engine, rig.fleet)
        operator = api_caller(Role.OPERATOR)
        refused = await ops.resolve(api_caller(Role.NURSE), mission_id, Resolution.FAIL, None)
        assert not isinstance(refused, (TransitionResult, Reassigning))
        options = await ops.options(operator, mission_id)
        assert isinstance(options, NotAllowed)
        assert set(options.allowed) == set(Resolution) and options.held_reason == "fatal_error"
        outcome = await ops.resolve(operator, mission_id, Resolution.REASSIGN, "rider in corridor")
        assert isinstance(outcome, Reassigning)
        second = await leg_of(rig, mission_id, 2)
        assert second.vehicle_id == other.id
        assert second.stops[0].place == "vehicle:near"
        for kind in (K.PICKED_UP, K.FINISHED):
            rig.progress(second, kind)
        await status_is(rig, mission_id, "completed")
        events = await rig.events(mission_id)
        assert events.count("reassigned") == 1 and events[-1] == "completed"

    async def test_resolve_complete_finishes_a_held_mission(self, rig: Rig) -> None:
        """``complete`` (delivered by hand) completes the mission; the engine forgets it."""
        await rig.add_vehicle(robot("near", WARD_A))
        mission_id = await create(rig)
        leg = await leg_of(rig, mission_id)
        rig.progress(leg, K.PICKED_UP)
        rig.progress(leg, K.FAILED, LegFailure.VEHICLE_OFFLINE)
        await eventually(lambda: mission_id in rig.engine.holdings.held)
        ops = ResolveOps(rig.pool, rig.engine, rig.fleet)
        outcome = await ops.resolve(
            api_caller(Role.OPERATOR), mission_id, Resolution.COMPLETE, None
        )
        assert isinstance(outcome, TransitionResult)
        assert outcome.mission.status.value == "completed"
        await eventually(lambda: mission_id not in rig.engine.holdings.held)


class TestOperatorActions:
    async def test_cancel_withdraws_the_leg(self, rig: Rig) -> None:
        """An operator's cancel reaches the engine through the event stream: the leg is
        withdrawn and the robot is free for the next mission."""
        near = robot("near", WARD_A)
        await rig.add_vehicle(near)
        mission_id = await create(rig)
        leg = await leg_of(rig, mission_id)
        result = await MissionOps(rig.pool).cancel(api_caller(Role.OPERATOR), mission_id)
        assert isinstance(result, TransitionResult)
        await eventually(lambda: any(w[0].leg_id == leg.leg_id for w in rig.channel.withdrawn))
        assert dict((w[0].leg_id, w[1]) for w in rig.channel.withdrawn)[leg.leg_id] is (
            LegFailure.CANCELLED
        )
        following = await create(rig)
        assert (await leg_of(rig, following)).vehicle_id == near.id

    async def test_maintenance_replans_unstarted_work(self, rig: Rig) -> None:
        """A robot put in maintenance loses its mission not yet picked up."""
        near, other = robot("near", WARD_A), robot("other", RADIOLOGY)
        await rig.add_vehicle(near)
        await rig.add_vehicle(other)
        mission_id = await create(rig)
        await leg_of(rig, mission_id)
        rig.fleet.vehicles[near.id] = robot("near", WARD_A, maintenance=True)
        rig.engine.on_fleet_change(
            FleetChange(near.id, NORTH.id, ChangeKind.STATUS_CHANGED,
                        {"from": "driving", "to": "maintenance"}, time.time())
        )  # fmt: skip
        second = await leg_of(rig, mission_id, 2)
        assert second.vehicle_id == other.id


class TestCharging:
    async def test_a_low_robot_without_work_goes_to_charge(self, rig: Rig) -> None:
        """Below the threshold and idle: a charge leg to the free station; never planned."""
        low = robot("low", WARD_A, battery=10.0)
        await rig.add_vehicle(low)
        await eventually(lambda: any(leg.mission_id is None for leg in rig.channel.released))
        [charge] = [leg for leg in rig.channel.released if leg.mission_id is None]
        assert charge.vehicle_id == low.id
        assert [(s.place, s.action) for s in charge.stops] == [(STATION.name, StopAction.CHARGE)]

    async def test_two_low_robots_never_share_a_station(self, rig: Rig) -> None:
        """One station, two low robots: one goes, the other waits for it."""
        await rig.add_vehicle(robot("a", WARD_A, battery=10.0))
        await rig.add_vehicle(robot("b", RADIOLOGY, battery=12.0))
        await eventually(lambda: any(leg.mission_id is None for leg in rig.channel.released))
        await asyncio.sleep(0.5)
        assert len([leg for leg in rig.channel.released if leg.mission_id is None]) == 1

    async def test_the_operator_charge_command_takes_the_same_path(self, rig: Rig) -> None:
        """ "charge" through the vehicle operation (as the API) becomes the engine's charge
        leg to the free station, not a bare command to the robot."""
        full = robot("full", WARD_A, battery=90.0)
        await rig.add_vehicle(full)

        class Refusing:
            async def command(
                self, vehicle_id: uuid.UUID, command: VehicleCommand
            ) -> CommandResult:
                raise AssertionError("the link must not get it while the engine runs")

        ops = VehicleOps(rig.pool, rig.fleet, ChargeRoutingCommander(Refusing(), rig.engine))
        attempt = await ops.command(api_caller(Role.OPERATOR), full.id, VehicleCommand.CHARGE)
        assert isinstance(attempt, CommandAttempt) and attempt.result.ok
        await eventually(lambda: any(leg.mission_id is None for leg in rig.channel.released))
        [charge] = [leg for leg in rig.channel.released if leg.mission_id is None]
        assert charge.vehicle_id == full.id and charge.stops[0].action is StopAction.CHARGE

    async def test_a_charged_robot_returns_to_service(self, rig: Rig) -> None:
        """Above the resume threshold the charge leg ends (withdrawn, station free) and the
        robot takes the next mission."""
        low = robot("low", WARD_A, battery=10.0)
        await rig.add_vehicle(low)
        await eventually(lambda: any(leg.mission_id is None for leg in rig.channel.released))
        mission_id = await create(rig)
        await asyncio.sleep(0.3)
        assert rig.channel.legs_for(mission_id) == []  # charging below resume: not planned
        rig.fleet.vehicles[low.id] = robot("low", WARD_A, battery=85.0, charging=True)
        rig.engine.mark(urgent=True)
        assert (await leg_of(rig, mission_id)).vehicle_id == low.id
        assert [w[1] for w in rig.channel.withdrawn] == [LegFailure.CANCELLED]


class TestZones:
    async def test_a_pickup_in_a_no_go_zone_waits_until_the_zone_is_lifted(self, rig: Rig) -> None:
        """PostGIS zones: a mission picking up inside a no-go zone is not planned; once the
        zone is deleted it is."""
        await rig.add_vehicle(robot("near", WARD_A))
        lat, lon = WARD_A
        ring = (
            f"POLYGON(({lon - 0.001} {lat - 0.001}, {lon + 0.001} {lat - 0.001}, "
            f"{lon + 0.001} {lat + 0.001}, {lon - 0.001} {lat + 0.001}, "
            f"{lon - 0.001} {lat - 0.001}))"
        )
        zone_id = await rig.pool.fetchval(
            "INSERT INTO zones (facility_id, name, kind, area) "
            "VALUES ($1, 'wet floor', 'no_go', ST_GeogFromText($2)) RETURNING id",
            NORTH.id,
            ring,
        )
        mission_id = await create(rig)
        await eventually(lambda: rig.engine.blocked.get(mission_id) == "in_no_go_zone")
        assert rig.channel.legs_for(mission_id) == []
        await rig.pool.execute("UPDATE zones SET deleted_at = now() WHERE id = $1", zone_id)
        rig.engine.mark(urgent=True)
        await leg_of(rig, mission_id)
        assert mission_id not in rig.engine.blocked


class TestMissionChanges:
    async def test_a_priority_change_reaches_the_engine(self, rig: Rig) -> None:
        """With no vehicle, an operator's priority change still updates the engine's view
        (it re-plans with the new priority)."""
        mission_id = await create(rig)
        await eventually(lambda: mission_id in rig.engine.missions)
        result = await MissionOps(rig.pool).prioritize(
            api_caller(Role.OPERATOR), mission_id, Priority.URGENT
        )
        assert isinstance(result, TransitionResult)
        await eventually(lambda: rig.engine.missions[mission_id].priority is Priority.URGENT)


class TestInvariantsUnderConcurrency:
    @pytest.mark.parametrize("seed", [15, 16, 17])
    async def test_missions_and_vehicle_events_racing_never_double_hold(
        self, rig: Rig, seed: int
    ) -> None:
        """Twelve missions created in bursts on four robots while, at random (seeded),
        robots refuse legs, fail before pickup, drop offline and come back, an operator
        cancels, and the rest is driven to the end, all concurrently. Throughout: the
        channel never sees a second open leg for a robot or for a mission (its double
        records violations), and Postgres never shows two open missions on one robot.
        In the end every mission is completed or cancelled."""
        rng = random.Random(seed)
        robots = [robot(f"c{i}", (52.5215 + i * 0.0004, 13.4061 + i * 0.0003)) for i in range(4)]
        for r in robots:
            await rig.add_vehicle(r)
        missions: list[uuid.UUID] = []
        lost_once: set[uuid.UUID] = set()
        cancelled: set[uuid.UUID] = set()
        stop = asyncio.Event()

        async def create_in_bursts() -> None:
            for _ in range(3):
                missions.extend(await asyncio.gather(*(create(rig) for _ in range(4))))
                await asyncio.sleep(0.3)

        async def vehicles_misbehave() -> None:
            while not stop.is_set():
                await asyncio.sleep(rng.uniform(0.05, 0.2))
                for leg in list(rig.channel.open.values()):
                    assert leg.mission_id is not None
                    roll = rng.random()
                    if leg.mission_id not in lost_once and roll < 0.25:
                        lost_once.add(leg.mission_id)
                        failure = rng.choice([LegFailure.ORDER_REJECTED, LegFailure.NOT_TAKEN])
                        rig.progress(leg, K.REFUSED, failure)
                    elif leg.mission_id not in lost_once and roll < 0.4:
                        lost_once.add(leg.mission_id)
                        await _blink(rig, leg.vehicle_id)
                    elif roll < 0.8:
                        for kind in (K.ACCEPTED, K.TO_PICKUP, K.PICKED_UP, K.FINISHED):
                            rig.progress(leg, kind)

        async def operator_cancels() -> None:
            await asyncio.sleep(0.4)
            for mission_id in rng.sample(missions, 2):
                result = await MissionOps(rig.pool).cancel(api_caller(Role.OPERATOR), mission_id)
                if isinstance(result, TransitionResult):
                    cancelled.add(mission_id)

        async def watch_the_database() -> None:
            while not stop.is_set():
                rows = await rig.pool.fetch(
                    "SELECT vehicle_id, count(*) AS n FROM missions "
                    "WHERE status IN ('assigned', 'in_progress') GROUP BY vehicle_id"
                )
                assert all(r["n"] == 1 for r in rows), rows
                assert rig.channel.violations == []
                await asyncio.sleep(0.02)

        async def all_final() -> bool:
            if len(missions) < 12:
                return False
            done = await rig.pool.fetchval(
                "SELECT count(*) FROM missions WHERE id = ANY($1::uuid[]) "
                "AND status IN ('completed', 'cancelled')",
                missions,
            )
            return bool(done == len(missions))

        async with asyncio.TaskGroup() as tg:
            tasks = [
                tg.create_task(create_in_bursts()),
                tg.create_task(vehicles_misbehave()),
                tg.create_task(operator_cancels()),
                tg.create_task(watch_the_database()),
            ]
            try:
                await eventually(all_final, 90)
            finally:
                stop.set()
        assert all(t.done() for t in tasks)
        assert rig.channel.violations == []
        for mission_id in missions:
            status = await rig.status(mission_id)
            assert status == ("cancelled" if mission_id in cancelled else "completed"), status
        assert lost_once, "the seed exercised no refusal or loss"


async def _blink(rig: Rig, vehicle_id: uuid.UUID) -> None:
    """The robot drops offline (its leg is lost) and is back a moment later."""
    view = rig.fleet.vehicles[vehicle_id]
    rig.fleet.vehicles[vehicle_id] = replace(view, online=False)
    rig.engine.on_fleet_change(
        FleetChange(vehicle_id, NORTH.id, ChangeKind.WENT_OFFLINE, {}, time.time())
    )
    await asyncio.sleep(0.1)
    rig.fleet.vehicles[vehicle_id] = view
    rig.engine.on_fleet_change(
        FleetChange(vehicle_id, NORTH.id, ChangeKind.WENT_ONLINE, {}, time.time())
    )

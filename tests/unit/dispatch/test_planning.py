"""The engine's planning step without services: candidates, refusals, snapshots."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dispatcher.dispatch.legs import Leg, Stop, StopAction
from dispatcher.dispatch.planning import (
    PlanInputs,
    Planner,
    Snapshots,
    _only_candidates,
    busy_near,
    most_urgent,
    to_inputs,
)
from dispatcher.dispatch.problem import Speeds
from dispatcher.missions.domain import Location, MissionRecord
from dispatcher.missions.lifecycle import MissionStatus, Priority
from dispatcher.planner import PlannerOptions
from fleet.model import Capabilities, VehicleKind, VehicleView
from tests.unit.api.fakes import make_vehicle

FAC = uuid.uuid4()


def mission() -> MissionRecord:
    now = datetime.now(UTC)
    return MissionRecord(
        id=uuid.uuid4(), facility_id=FAC, status=MissionStatus.PENDING, priority=Priority.NORMAL,
        pickup=Location(52.5218, 13.4061, "Ward A"),
        dropoff=Location(52.5209, 13.4095, "Radiology"),
        window_start=None, window_end=None, requirements={}, passenger_ref=None,
        passenger_name=None, notes=None, created_by="t", vehicle_id=None, version=1,
        created_at=now, updated_at=now, completed_at=None,
    )  # fmt: skip


def planner(snapshots: Snapshots | None = None) -> Planner:
    return Planner(
        strategy="greedy",
        options=PlannerOptions(time_limit_s=0.2, use_vroom=False),
        quick_time_limit_s=0.1,
        speeds=Speeds(),
        service_s=30,
        snapshots=snapshots,
    )


class TestPlanner:
    async def test_a_vehicle_that_refused_is_not_planned_again(self) -> None:
        """The nearer robot refused the mission: the plan gives it to the other one."""
        near = make_vehicle(FAC, "near", lat=52.5218, lon=13.4061)
        far = make_vehicle(FAC, "far", lat=52.5300, lon=13.4300)
        m = mission()
        inputs = PlanInputs(vehicles=(near, far), busy={}, missions=(m,),
                            refused={m.id: frozenset({near.id})})  # fmt: skip
        p = planner()
        assert p.by_vehicle(await p.plan(inputs, quick=True)) == {far.id: (m.id,)}

    async def test_every_plan_is_recorded_when_snapshots_are_on(self, tmp_path: Path) -> None:
        """With a snapshot directory, each plan's problem is written there for replay."""
        p = planner(Snapshots(tmp_path, max_files=10, max_bytes=10 * 1024 * 1024))
        inputs = PlanInputs(vehicles=(make_vehicle(FAC, "r"),), busy={}, missions=(mission(),))
        await p.plan(inputs, quick=True)
        await p.plan(inputs, quick=False)
        written = await asyncio.to_thread(lambda: list(tmp_path.glob("*.vroom.json")))
        assert len(written) == 2


class TestOnlyCandidates:
    def test_vehicles_on_no_list_stay_out_of_the_problem(self) -> None:
        """Every mission has its nearby list: only listed (or busy) vehicles are planned."""
        a, b, c = (make_vehicle(FAC, s) for s in "abc")
        m = mission()
        inputs = PlanInputs(vehicles=(a, b, c), busy={}, missions=(m,))
        kept = _only_candidates(inputs, {str(m.id): [str(a.id)]})
        assert [v.id for v in kept.vehicles] == [a.id]

    def test_a_mission_without_a_list_keeps_every_vehicle(self) -> None:
        a, b = make_vehicle(FAC, "a"), make_vehicle(FAC, "b")
        m1, m2 = mission(), mission()
        inputs = PlanInputs(vehicles=(a, b), busy={}, missions=(m1, m2))
        assert _only_candidates(inputs, {str(m1.id): [str(a.id)]}) is inputs


class TestToInputs:
    def test_nodes_capabilities_and_requirements_reach_the_planner(self) -> None:
        """A robot's last node and a place's node become layout points (a driver's stay
        off the graph); wheelchair types and payloads become capabilities and loads."""
        robot = make_vehicle(
            FAC,
            "r",
            last_node_id="ward-a",
            capabilities=Capabilities(wheelchair_types=("electric",), max_payload_kg=130.0),
        )
        driver = make_vehicle(FAC, "d", kind=VehicleKind.DRIVER, last_node_id="ward-a")
        m = replace(mission(), requirements={"wheelchair_type": "manual", "payload_kg": 90})
        nodes = {"Ward A": "ward-a", "Radiology": "radiology"}
        vehicles, missions = to_inputs(
            PlanInputs(vehicles=(robot, driver), busy={}, missions=(m,)),
            30,
            lambda facility, place: nodes.get(place or ""),
        )
        assert vehicles[0].at.node == (FAC, "ward-a") and vehicles[1].at.node is None
        assert vehicles[0].capabilities == {"wheelchair:electric"}
        assert vehicles[0].max_payload_kg == 130.0
        [planned] = missions
        assert planned.pickup.node == (FAC, "ward-a") and planned.dropoff.node == (FAC, "radiology")
        assert planned.required_capabilities == {"wheelchair:manual"}
        assert planned.payload_kg == 90.0


def _leg_ending_at(vehicle: VehicleView, lat: float, lon: float) -> Leg:
    stop = Stop("end", None, lat, lon, StopAction.DROP)
    return Leg(f"leg-{vehicle.id}", vehicle.id, FAC, uuid.uuid4(), (stop,))


class TestBounds:
    def test_busy_vehicles_join_a_mission_only_when_their_leg_ends_near_it(self) -> None:
        """A busy vehicle is a candidate where its leg ends, within the radius, nearest
        first and at most ``count`` of them (not every busy vehicle of the fleet)."""
        m = mission()
        ends = [0.0005, 0.0002, 0.0010, 0.2]  # degrees of latitude from the pickup
        busy = [make_vehicle(FAC, f"b{i}") for i in range(len(ends))]
        legs = {
            v.id: _leg_ending_at(v, m.pickup.lat + d, m.pickup.lon)
            for v, d in zip(busy, ends, strict=True)
        }
        inputs = PlanInputs(vehicles=tuple(busy), busy=legs, missions=(m,))
        near = busy_near(inputs, radius_m=2000, count=2)
        assert near == {str(m.id): [str(busy[1].id), str(busy[0].id)]}
        assert busy_near(inputs, radius_m=10, count=2) == {}

    def test_the_most_urgent_then_oldest_missions_are_planned(self) -> None:
        """Beyond the bound, urgent missions go first, then the oldest."""
        base = mission()
        old = replace(base, id=uuid.uuid4(), created_at=base.created_at - timedelta(hours=1))
        urgent = replace(base, id=uuid.uuid4(), priority=Priority.URGENT)
        newer = replace(base, id=uuid.uuid4(), created_at=base.created_at + timedelta(hours=1))
        kept = most_urgent((newer, base, urgent, old), 3)
        assert [m.id for m in kept] == [urgent.id, old.id, base.id]
        assert most_urgent((newer, base), 3) == (newer, base)

    async def test_a_full_plan_takes_at_most_the_bound(self) -> None:
        """A backlog larger than max_missions makes a problem of max_missions."""
        p = Planner(
            strategy="greedy",
            options=PlannerOptions(time_limit_s=0.2, use_vroom=False),
            quick_time_limit_s=0.1,
            speeds=Speeds(),
            service_s=30,
            max_missions=5,
        )
        inputs = PlanInputs(
            vehicles=(make_vehicle(FAC, "r"),),
            busy={},
            missions=tuple(mission() for _ in range(12)),
        )
        plan = await p.plan(inputs, quick=False)
        planned = {s.request_id for r in plan.routes for s in r.stops}
        assert len(planned) + len(plan.unserved) == 5

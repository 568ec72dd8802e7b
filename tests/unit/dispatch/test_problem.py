"""The engine's planning problem: nearest vehicle of the right kind, busy vehicles later."""

from __future__ import annotations

import uuid

from dispatcher.dispatch.problem import (
    MissionInput,
    Point,
    Speeds,
    VehicleInput,
    build_problem,
    missions_by_vehicle,
)
from dispatcher.missions.lifecycle import Priority
from dispatcher.planner import PlannerOptions, VehicleKind, solve

PICK, DROP = Point(52.5200, 13.4000), Point(52.5210, 13.4050)
NEAR, FAR = Point(52.5201, 13.4001), Point(52.5300, 13.4200)


def _plan(
    vehicles: list[VehicleInput], missions: list[MissionInput]
) -> dict[uuid.UUID, tuple[uuid.UUID, ...]]:
    problem = build_problem(vehicles, missions, Speeds())
    plan = solve(problem, "greedy", PlannerOptions(time_limit_s=0.2, use_vroom=False))
    return missions_by_vehicle(plan)


class TestBuildProblem:
    def test_the_nearest_vehicle_gets_the_mission(self) -> None:
        near, far = uuid.uuid4(), uuid.uuid4()
        m = MissionInput(uuid.uuid4(), PICK, DROP, Priority.NORMAL)
        vehicles = [
            VehicleInput(far, VehicleKind.ROBOT, FAR),
            VehicleInput(near, VehicleKind.ROBOT, NEAR),
        ]
        assert _plan(vehicles, [m]) == {near: (m.id,)}

    def test_a_required_kind_is_respected(self) -> None:
        robot, driver = uuid.uuid4(), uuid.uuid4()
        m = MissionInput(
            uuid.uuid4(), PICK, DROP, Priority.NORMAL, required_kind=VehicleKind.DRIVER
        )
        vehicles = [
            VehicleInput(robot, VehicleKind.ROBOT, NEAR),
            VehicleInput(driver, VehicleKind.DRIVER, FAR),
        ]
        assert _plan(vehicles, [m]) == {driver: (m.id,)}

    def test_a_busy_vehicle_starts_where_its_leg_ends(self) -> None:
        """A vehicle busy with a long leg starts later, so a free one nearby wins."""
        busy, free = uuid.uuid4(), uuid.uuid4()
        m = MissionInput(uuid.uuid4(), PICK, DROP, Priority.NORMAL)
        vehicles = [
            VehicleInput(busy, VehicleKind.ROBOT, NEAR, busy_via=(FAR, NEAR)),
            VehicleInput(free, VehicleKind.ROBOT, Point(52.5205, 13.4010)),
        ]
        problem = build_problem(vehicles, [m], Speeds())
        assert problem.vehicles[0].ready_time > 0 and problem.vehicles[1].ready_time == 0
        assert _plan(vehicles, [m]) == {free: (m.id,)}

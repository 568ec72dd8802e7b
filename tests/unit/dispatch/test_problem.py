"""The engine's planning problem: nearest vehicle of the right kind, busy vehicles later."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import numpy as np
import pytest

from dispatcher.dispatch.problem import (
    FloatMatrix,
    MissionInput,
    NodeKey,
    Point,
    Speeds,
    VehicleInput,
    build_problem,
    missions_by_vehicle,
    wheelchair_capability,
)
from dispatcher.dispatch.robot_travel import LayoutTravel
from dispatcher.missions.lifecycle import Priority
from dispatcher.planner import PlannerOptions, VehicleKind, solve
from dispatcher.planner.model import HORIZON
from tests.unit.dispatch.layouts import campus_layout

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


class _Routes:
    """Robot travel from a table: (node a, node b) -> seconds (metres the same)."""

    def __init__(self, table: dict[tuple[str, str], float]) -> None:
        self.table = table
        self.asked: list[list[NodeKey | None]] = []

    def matrices(self, nodes: Sequence[NodeKey | None]) -> tuple[FloatMatrix, FloatMatrix]:
        self.asked.append(list(nodes))
        n = len(nodes)
        out = np.full((n, n), np.nan)
        for i, a in enumerate(nodes):
            for j, b in enumerate(nodes):
                if a is not None and b is not None:
                    out[i, j] = 0.0 if a == b else self.table.get((a[1], b[1]), np.inf)
        return out, out.copy()


F = uuid.uuid4()


def _at(p: Point, node: str) -> Point:
    return Point(p.lat, p.lon, (F, node))


class TestRobotsOnTheLayout:
    def test_robot_times_follow_the_route_graph_not_the_straight_line(self) -> None:
        """The robot nearest as the crow flies is 15 min away along the corridors; the
        farther one 10 s: the layout decides, and the driver profile stays geodesic."""
        near, far = uuid.uuid4(), uuid.uuid4()
        routes = _Routes({("near", "pick"): 900.0, ("far", "pick"): 10.0, ("pick", "drop"): 60.0})
        m = MissionInput(uuid.uuid4(), _at(PICK, "pick"), _at(DROP, "drop"), Priority.NORMAL)
        vehicles = [
            VehicleInput(near, VehicleKind.ROBOT, _at(NEAR, "near")),
            VehicleInput(far, VehicleKind.ROBOT, _at(FAR, "far")),
        ]
        problem = build_problem(vehicles, [m], Speeds(), routes)
        robot = problem.profiles["robot"]
        # starts: near 0, far 1; then pickup 2, drop-off 3
        assert robot.durations[0, 2] == 900 and robot.durations[1, 2] == 10
        assert robot.durations[2, 3] == 60 and robot.distances is not None
        assert robot.distances[2, 3] == 60
        driver = build_problem(vehicles, [m], Speeds()).profiles["driver"]
        assert (problem.profiles["driver"].durations == driver.durations).all()
        plan = solve(problem, "greedy", PlannerOptions(time_limit_s=0.2, use_vroom=False))
        assert missions_by_vehicle(plan) == {far: (m.id,)}

    def test_no_path_on_the_graph_is_unreachable_and_no_node_is_geodesic(self) -> None:
        """A pair the graph cannot join is at the horizon; a point with no node keeps the
        geodesic estimate."""
        m = MissionInput(uuid.uuid4(), _at(PICK, "island"), DROP, Priority.NORMAL)
        v = VehicleInput(uuid.uuid4(), VehicleKind.ROBOT, _at(NEAR, "home"))
        problem = build_problem([v], [m], Speeds(), _Routes({}))
        geodesic = build_problem([v], [m], Speeds()).profiles["robot"].durations
        robot = problem.profiles["robot"].durations
        assert robot[0, 1] == HORIZON
        assert robot[1, 2] == geodesic[1, 2] and robot[0, 2] == geodesic[0, 2]
        plan = solve(problem, "greedy", PlannerOptions(time_limit_s=0.2, use_vroom=False))
        assert missions_by_vehicle(plan) == {} and [u.request_id for u in plan.unserved] == [
            str(m.id)
        ]

    def test_layout_travel_reads_the_campus_graph(self) -> None:
        """The daemon's implementation: matrices along the shipped campus for the robots'
        vehicle type, equal to the route the orders take; unknown nodes stay NaN."""
        layout = campus_layout()
        travel = LayoutTravel(lambda facility, node: layout if node in layout.doc.nodes else None)
        durations, distances = travel.matrices(
            [(F, "ward-a"), (F, "radiology"), None, (F, "not-a-node")]
        )
        route = layout.routes.route("ward-a", "radiology")
        assert route is not None
        assert durations[0, 1] == pytest.approx(route.duration_s)
        assert distances[0, 1] == pytest.approx(route.distance_m)
        assert np.isnan(durations[0, 2]) and np.isnan(durations[3, 0])


class TestRequirements:
    def test_a_wheelchair_type_is_honoured(self) -> None:
        """electric asked: a robot that declares only manual is out; one that declares
        electric, or declares nothing (carries any), may take it."""
        manual, electric = uuid.uuid4(), uuid.uuid4()
        m = MissionInput(
            uuid.uuid4(),
            PICK,
            DROP,
            Priority.NORMAL,
            required_capabilities=frozenset({wheelchair_capability("electric")}),
        )
        only_manual = [
            VehicleInput(
                manual, VehicleKind.ROBOT, NEAR, frozenset({wheelchair_capability("manual")})
            )
        ]
        assert _plan(only_manual, [m]) == {}
        both = [
            *only_manual,
            VehicleInput(
                electric, VehicleKind.ROBOT, FAR, frozenset({wheelchair_capability("electric")})
            ),
        ]
        assert _plan(both, [m]) == {electric: (m.id,)}
        undeclared = uuid.uuid4()
        anyone = [*only_manual, VehicleInput(undeclared, VehicleKind.ROBOT, FAR)]
        assert _plan(anyone, [m]) == {undeclared: (m.id,)}

    def test_a_payload_beyond_a_vehicles_limit_goes_elsewhere(self) -> None:
        """150 kg: not on the robot rated 120 kg, on the one with no stated limit."""
        small, big = uuid.uuid4(), uuid.uuid4()
        m = MissionInput(uuid.uuid4(), PICK, DROP, Priority.NORMAL, payload_kg=150.0)
        vehicles = [
            VehicleInput(small, VehicleKind.ROBOT, NEAR, max_payload_kg=120.0),
            VehicleInput(big, VehicleKind.ROBOT, FAR),
        ]
        assert _plan(vehicles, [m]) == {big: (m.id,)}
        assert _plan(vehicles[:1], [m]) == {}

"""VROOM's JSON problem and solution formats: reading, writing, round trips, bad input."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from dispatcher.cli import main
from dispatcher.planner import (
    Objective,
    PlannerOptions,
    Problem,
    Request,
    Vehicle,
    VehicleKind,
    solve,
)
from dispatcher.planner.vroom_format import ProblemFormatError, parse, read_problem
from dispatcher.planner.vroom_solution import write_problem, write_solution
from tests.unit.planner.helpers import check_feasible, line_profile

FAST = PlannerOptions(time_limit_s=0.2, max_candidates=None)


def small() -> dict[str, Any]:
    """Two vehicles from a depot at 0 and three shipments on a 6-point line (cost = time)."""
    line = line_profile(6).durations.tolist()
    return {
        "vehicles": [
            {"id": 7, "start_index": 0, "end_index": 0, "capacity": [2], "time_window": [0, 1000]},
            {"id": 8, "start_index": 0, "capacity": [2], "skills": [3], "costs": {"fixed": 5}},
        ],
        "shipments": [
            {
                "pickup": {"id": 1, "location_index": 1, "service": 5},
                "delivery": {"id": 11, "location_index": 2, "time_windows": [[0, 500]]},
                "amount": [1],
            },
            {
                "pickup": {"id": 2, "location_index": 3},
                "delivery": {"id": 12, "location_index": 4},
                "amount": [1],
                "priority": 10,
            },
            {
                "pickup": {"id": 3, "location_index": 5},
                "delivery": {"id": 13, "location_index": 1},
                "amount": [1],
                "skills": [3],
            },
        ],
        "matrices": {"car": {"durations": line}},
    }


class TestReadProblem:
    def test_fields_map_onto_the_model(self) -> None:
        """Capacity, windows, service, skills, priority and fixed cost are all read."""
        problem = read_problem(small())
        v7, v8 = problem.vehicles
        assert (v7.id, v7.start, v7.end, v7.capacity, v7.available_until) == ("7", 0, 0, (2,), 1000)
        assert v8.fixed_cost == 5 and "skill:3" in v8.capabilities and v8.end is None
        a, b, c = problem.requests
        assert a.pickup_service == 5 and a.dropoff_windows == ((0, 500),)
        assert b.priority == 10 and c.required_capabilities == frozenset({"skill:3"})
        assert problem.objective is Objective.COST
        assert (problem.profiles["car"].costs == problem.profiles["car"].durations).all()

    def test_legacy_top_level_matrix_is_the_car_profile(self) -> None:
        """VROOM's older ``matrix`` key is read as the ``car`` durations."""
        data = small()
        data["matrix"] = data.pop("matrices")["car"]["durations"]
        assert read_problem(data).profiles["car"].size == 6

    def test_per_hour_cost_scales_durations(self) -> None:
        """Without a costs matrix, cost = duration x per_hour / 3600 as in VROOM."""
        data = small()
        data["vehicles"][0]["costs"] = {"per_hour": 7200}
        problem = read_problem(data)
        prof = problem.profiles[problem.vehicles[0].profile]
        assert int(prof.costs[0, 3]) == 2 * int(prof.durations[0, 3])


class TestBadInput:
    @pytest.mark.parametrize(
        ("mutate", "field"),
        [
            (lambda d: d.pop("vehicles"), "vehicles"),
            (lambda d: d["vehicles"][1].update(id="x"), "vehicles[1].id"),
            (lambda d: d["vehicles"][0].update(start_index=99), "vehicles[0].start_index"),
            (
                lambda d: d["shipments"][2]["pickup"].pop("location_index"),
                "shipments[2].pickup.location_index",
            ),
            (
                lambda d: d["shipments"][1]["delivery"].update(location_index=6),
                "shipments[1].delivery.location_index",
            ),
            (lambda d: d["shipments"][0].update(priority=101), "shipments[0].priority"),
            (
                lambda d: d["shipments"][0]["pickup"].update(time_windows=[[9, 1]]),
                "shipments[0].pickup.time_windows[0]",
            ),
            (lambda d: d["vehicles"][0].update(profile="bike"), "vehicles[0].profile"),
            (lambda d: d["matrices"]["car"]["durations"].pop(), "matrices.car.durations"),
            (lambda d: d["shipments"].append(copy.deepcopy(d["shipments"][0])), "shipments[3].id"),
            (lambda d: d.update(jobs=[{"id": 1, "location_index": 1}]), "jobs"),
        ],
    )
    def test_error_names_the_field(self, mutate: Any, field: str) -> None:
        """A malformed problem is refused with the offending field's path."""
        data = small()
        mutate(data)
        with pytest.raises(ProblemFormatError) as info:
            read_problem(data)
        assert info.value.field == field


class TestRoundTrip:
    def test_write_then_read_gives_the_same_problem(self) -> None:
        """A live problem (kinds, capability names, battery, on-board rider) survives a
        trip through VROOM JSON unchanged in meaning."""
        problem = Problem(
            (
                Vehicle(
                    "robot-1",
                    start=0,
                    capacity=(1, 2),
                    capabilities=frozenset({"wc"}),
                    range_m=500,
                    reserve_m=100,
                    ready_time=10,
                ),
                Vehicle(
                    "drv-1",
                    start=3,
                    end=0,
                    profile="driver",
                    kind=VehicleKind.DRIVER,
                    capacity=(2, 2),
                ),
            ),
            (
                Request(
                    "m-1",
                    1,
                    2,
                    demand=(1, 0),
                    required_capabilities=frozenset({"wc"}),
                    pickup_windows=((5, 50), (80, 90)),
                ),
                Request("m-2", 4, 5, required_kind=VehicleKind.DRIVER, priority=100),
                Request("m-3", 0, 5, onboard_vehicle="robot-1"),
            ),
            {"robot": line_profile(6), "driver": line_profile(6, 5)},
            Objective.WAITING,
        )
        data = json.loads(json.dumps(write_problem(problem)))
        again = read_problem(data)
        assert [v.capabilities for v in again.vehicles] == [
            v.capabilities | {f"kind:{v.kind.value}"} for v in problem.vehicles
        ]
        assert [(v.id, v.range_m, v.reserve_m, v.kind) for v in again.vehicles] == [
            (v.id, v.range_m, v.reserve_m, v.kind) for v in problem.vehicles
        ]
        assert [r.pickup_windows for r in again.requests] == [
            r.pickup_windows for r in problem.requests
        ]
        assert write_problem(read_problem(write_problem(again))) == write_problem(again)
        plan_a = solve(problem, options=FAST)
        plan_b = solve(again, options=FAST)
        check_feasible(again, plan_b)
        assert plan_a.assignment() == plan_b.assignment()

    def test_solution_has_vroom_shape(self) -> None:
        """The solution lists routes with start/pickup/delivery/end steps and their times,
        a summary whose cost is the routes' sum, and unassigned shipments by step."""
        data = small()
        data["shipments"][0]["delivery"]["time_windows"] = [[0, 1]]  # unreachable
        problem = read_problem(data)
        plan = solve(problem, options=FAST)
        out = write_solution(parse(data), problem, plan)
        assert out["code"] == 0
        assert out["summary"]["cost"] == sum(r["cost"] for r in out["routes"])
        assert {(u["id"], u["type"]) for u in out["unassigned"]} == {
            (1, "pickup"),
            (11, "delivery"),
        }
        assert out["unassigned"][0]["reason"] == "time_window_unreachable"
        for route in out["routes"]:
            kinds = [s["type"] for s in route["steps"]]
            assert kinds[0] == "start" and set(kinds[1:]) <= {"pickup", "delivery", "end"}
            arrivals = [s["arrival"] for s in route["steps"]]
            assert arrivals == sorted(arrivals)


class TestCli:
    def test_plan_solve_writes_a_vroom_solution(self, tmp_path: Path) -> None:
        """``fleetd plan solve`` reads the file and writes the solution to -o."""
        src, out = tmp_path / "p.json", tmp_path / "plan.json"
        src.write_text(json.dumps(small()))
        assert main(["plan", "solve", str(src), "--time-limit", "0.2", "-o", str(out)]) == 0
        solution = json.loads(out.read_text())
        assert solution["summary"]["unassigned"] == 0
        assert solution["summary"]["fleetd"]["strategy"] == "optimise"

    def test_greedy_can_be_chosen(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """--strategy greedy answers on stdout."""
        src = tmp_path / "p.json"
        src.write_text(json.dumps(small()))
        assert main(["plan", "solve", str(src), "--strategy", "greedy"]) == 0
        assert json.loads(capsys.readouterr().out)["summary"]["fleetd"]["strategy"] == "greedy"

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            (None, "cannot read"),
            ("{not json", "not JSON"),
            (
                '{"vehicles": [{"id": 1, "start_index": -1}], "matrix": [[0]]}',
                "vehicles[0].start_index",
            ),
        ],
    )
    def test_bad_file_exits_2_naming_the_problem(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
    ) -> None:
        """A missing, non-JSON or malformed file: one clear line on stderr, exit 2."""
        src = tmp_path / "p.json"
        if content is not None:
            src.write_text(content)
        assert main(["plan", "solve", str(src)]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err

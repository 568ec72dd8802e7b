"""The live run's pure parts: the fleet split over processes, mission bodies, the record."""

from __future__ import annotations

import json
from pathlib import Path

from dispatcher.config import Settings
from sim.live import (
    LiveState,
    fleet_specs,
    host_plans,
    merge_hists,
    mission_body,
    progress_line,
    write_record,
)
from sim.run_record import MissionRecord, RunRecord
from sim.scenario import Scenario
from sim.schedule import PlannedMission, scenario_faults


def _scenario(robots: int, drivers: int, processes: int = 0) -> Scenario:
    return Scenario.model_validate(
        {
            "name": "t",
            "fleet": {"robots": robots, "drivers": drivers, "processes": processes},
            "faults": {"vanish": 60.0, "noisy_gps": 60.0},
        }
    )


class TestHostPlans:
    def test_one_process_per_500_vehicles_and_every_vehicle_once(self) -> None:
        scenario = _scenario(1600, 400)
        robots, drivers = fleet_specs(scenario, [("n1", 1.0, 2.0)], [(52.5, 13.4)], "m")
        faults = scenario_faults(scenario)
        plans = host_plans(scenario, Settings(), robots, drivers, faults)
        assert len(plans) == 4
        serials = [r.serial for p in plans for r in p.robots]
        ids = [d.driver_id for p in plans for d in p.drivers]
        assert sorted(serials) == sorted(r.serial for r in robots) and len(set(serials)) == 1600
        assert sorted(ids) == sorted(d.driver_id for d in drivers)
        # Each fault goes to the process that holds its vehicle, and nowhere else.
        for plan in plans:
            mine = {r.serial for r in plan.robots} | {d.driver_id for d in plan.drivers}
            assert all(f.vehicle in mine for f in plan.faults)
        assert sum(len(p.faults) for p in plans) == len(faults)

    def test_the_scenarios_process_count_wins_but_never_exceeds_the_fleet(self) -> None:
        scenario = _scenario(3, 0, processes=8)
        robots, drivers = fleet_specs(scenario, [], [], "m")
        plans = host_plans(scenario, Settings(), robots, drivers, [])
        assert len(plans) == 3 and all(len(p.robots) == 1 for p in plans)

    def test_fleet_is_placed_from_the_seed(self) -> None:
        scenario = _scenario(5, 2)
        a = fleet_specs(scenario, [("n1", 1.0, 2.0), ("n2", 3.0, 4.0)], [(52.5, 13.4)], "m")
        b = fleet_specs(scenario, [("n1", 1.0, 2.0), ("n2", 3.0, 4.0)], [(52.5, 13.4)], "m")
        assert a == b
        assert [r.last_node_id for r in a[0]] == ["n1", "n2", "n1", "n2", "n1"]
        low, high = scenario.fleet.battery_start
        assert all(low <= r.battery_pct <= high for r in a[0])


class TestMissionBody:
    def test_a_window_goes_on_the_wall_clock(self) -> None:
        m = PlannedMission("m000001", 10.0, "high", "robot", "A", "B", 600.0, 1500.0)
        body = mission_body(m, t0=1_000_000.0, scale=10.0, facility="demo-campus")
        assert body["requirements"] == {"vehicle_kind": "robot"}
        assert body["priority"] == "high" and body["facility"] == "demo-campus"
        assert body["window"]["start"].startswith("1970-01-12T13:47:40")  # t0 + 60 s
        assert body["window"]["end"].startswith("1970-01-12T13:49:10")  # t0 + 150 s

    def test_no_window_for_a_mission_as_soon_as_possible(self) -> None:
        body = mission_body(PlannedMission("m000002", 1.0, "low", "any", "A", "B"), 0.0, 1.0, "f")
        assert "window" not in body


class TestRecord:
    def _record(self) -> RunRecord:
        return RunRecord(
            scenario="t",
            mode="live",
            strategy="daemon",
            seed=1,
            duration_s=10.0,
            vehicles=2,
            missions=[MissionRecord("m1", "normal", "any", 1.0, completed_s=5.0)],
        )

    def test_record_json_is_the_dataclass(self, tmp_path: Path) -> None:
        path = write_record(self._record(), tmp_path / "out")
        data = json.loads(path.read_text())
        assert data["missions"][0]["mission_id"] == "m1" and data["mode"] == "live"

    def test_histograms_merge(self) -> None:
        assert merge_hists([{"1000": 2}, {1000: 1, 1001: 4}]) == {1000: 3, 1001: 4}


class TestProgress:
    def test_while_connecting(self) -> None:
        state = LiveState(t0=0.0, time_scale=1.0)
        state.host_stats = {0: {"online": 7}}
        line = progress_line(state, 25, now=100.0)
        assert line == "[sim] connecting: 7/25 online (fleetd sees 0)"

    def test_elapsed_vehicles_missions_and_rate(self) -> None:
        state = LiveState(t0=1000.0, time_scale=10.0, end_wall=1300.0)
        state.host_stats = {0: {"online": 20}, 1: {"online": 4}}
        state.scrapes = [(1100.0, {"fleetd_vehicles_online": 23.0})]
        state.missions = {
            "a": MissionRecord("a", "normal", "any", 0.0, final_status="completed"),
            "b": MissionRecord("b", "normal", "any", 0.0, final_status="failed"),
            "c": MissionRecord("c", "normal", "any", 0.0),
        }
        line = progress_line(state, 25, now=1120.0)  # 2 wall minutes in
        assert line.startswith("[sim] 2:00 / 5:00 (sim 20:00)")
        assert "vehicles 24/25 online (fleetd sees 23)" in line
        assert "missions 3 created: 1 open, 1 completed, 1 failed" in line
        assert "1.5 created/min" in line

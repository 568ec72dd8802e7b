"""The workload and the fault schedule are drawn up front, from the scenario's seed alone."""

from __future__ import annotations

from collections import Counter

import pytest

from sim.scenario import SCENARIO_DIR, FaultRates, Scenario, load_scenario
from sim.schedule import (
    FAULT_TARGETS,
    draw_faults,
    draw_workload,
    fleet_names,
    scenario_faults,
)
from sim.workload_draw import arrival_times

PLACES = [f"place-{i}" for i in range(12)]


def _scenario(**update: object) -> Scenario:
    base = Scenario.model_validate(
        {
            "name": "t",
            "seed": 5,
            "duration_s": 7200.0,
            "fleet": {"robots": 8, "drivers": 4},
            "workload": {
                "missions_per_hour": 120.0,
                "priority_mix": {"low": 0.5, "urgent": 0.5},
                "vehicle_kind_mix": {"robot": 0.25, "driver": 0.25, "any": 0.5},
                "scheduled_fraction": 0.3,
            },
            "faults": {kind: 6.0 for kind in FaultRates.model_fields},
        }
    )
    return base.model_copy(update=update)


class TestWorkload:
    def test_the_same_seed_gives_the_same_workload(self) -> None:
        assert draw_workload(_scenario(), PLACES) == draw_workload(_scenario(), PLACES)

    def test_another_seed_gives_another_workload(self) -> None:
        assert draw_workload(_scenario(), PLACES) != draw_workload(_scenario(seed=6), PLACES)

    def test_missions_follow_the_mixes(self) -> None:
        """Two places apart, every priority and kind of the mixes drawn, some windowed."""
        missions = draw_workload(_scenario(), PLACES)
        assert 180 <= len(missions) <= 300  # 120/h for 2 h, Poisson
        assert all(m.pickup != m.dropoff for m in missions)
        assert {m.priority for m in missions} == {"low", "urgent"}
        assert {m.vehicle_kind for m in missions} == {"robot", "driver", "any"}
        windowed = [m for m in missions if m.window_start_s is not None]
        assert 0.15 < len(windowed) / len(missions) < 0.45
        for m in windowed:
            assert m.window_start_s is not None and m.window_end_s is not None
            assert m.created_s + 600.0 <= m.window_start_s <= m.created_s + 3600.0
            assert m.window_end_s - m.window_start_s == pytest.approx(900.0)
        times = [m.created_s for m in missions]
        assert times == sorted(times) and times[0] > 0.0 and times[-1] < 7200.0

    def test_arrivals_follow_the_daily_profile(self) -> None:
        """A profile five times busier in the second hour gets about five times the missions."""
        spec = _scenario().workload.model_copy(
            update={"profile": ((0.0, 0.2), (1.0, 1.0)), "start_hour": 0.0}
        )
        import numpy as np

        times = arrival_times(spec, 7200.0, np.random.default_rng(1))
        first = sum(1 for t in times if t < 3600.0)
        second = len(times) - first
        assert 3.0 < second / max(first, 1) < 8.0

    def test_places_narrowed_by_the_scenario(self) -> None:
        workload = _scenario().workload.model_copy(update={"places": ("place-1", "place-2")})
        missions = draw_workload(_scenario(workload=workload), PLACES)
        assert {m.pickup for m in missions} == {"place-1", "place-2"}

    def test_too_few_places_is_refused(self) -> None:
        with pytest.raises(ValueError, match="two places"):
            draw_workload(_scenario(), ["only-one"])


class TestFaults:
    def test_the_fault_schedule_is_deterministic(self) -> None:
        assert scenario_faults(_scenario()) == scenario_faults(_scenario())
        assert scenario_faults(_scenario()) != scenario_faults(_scenario(seed=99))

    def test_every_kind_hits_a_vehicle_it_can_hit(self) -> None:
        faults = scenario_faults(_scenario())
        robots, drivers = fleet_names(_scenario())
        assert {f.kind for f in faults} == set(FaultRates.model_fields)
        for f in faults:
            group = "robot" if f.vehicle in robots else "driver"
            assert f.vehicle in robots or f.vehicle in drivers
            assert group in FAULT_TARGETS[f.kind]
            assert 0.0 < f.at_s < 7200.0
        assert [f.at_s for f in faults] == sorted(f.at_s for f in faults)

    def test_one_rate_changed_leaves_the_other_kinds_alone(self) -> None:
        rates = _scenario().faults
        more = rates.model_copy(update={"vanish": 30.0})
        robots, drivers = fleet_names(_scenario())
        a = draw_faults(rates, 5, 7200.0, robots, drivers)
        b = draw_faults(more, 5, 7200.0, robots, drivers)
        assert [f for f in a if f.kind != "vanish"] == [f for f in b if f.kind != "vanish"]
        assert Counter(f.kind for f in b)["vanish"] > Counter(f.kind for f in a)["vanish"]

    def test_no_rate_no_fault_and_no_target_no_fault(self) -> None:
        assert draw_faults(FaultRates(), 1, 3600.0, ["r1"], ["d1"]) == []
        only_drivers = FaultRates(fatal_error=100.0, stuck=100.0)
        assert draw_faults(only_drivers, 1, 3600.0, [], ["d1"]) == []


class TestShippedScenarios:
    @pytest.mark.parametrize("name", ["demo", "busy-day", "faults", "scale"])
    def test_each_loads_and_draws(self, name: str) -> None:
        scenario = load_scenario(name)
        assert draw_workload(scenario, PLACES)
        assert scenario.facility == "demo-campus"

    def test_demo_shows_a_fault_and_missions_in_its_first_minute(self) -> None:
        demo = load_scenario("demo")
        assert (demo.fleet.robots, demo.fleet.drivers) == (20, 5)
        first_minute = 60.0 * demo.time_scale
        assert any(f.kind == "vanish" and f.at_s < first_minute for f in scenario_faults(demo))
        assert draw_workload(demo, PLACES)[0].created_s < 10.0 * demo.time_scale

    def test_faults_injects_every_kind(self) -> None:
        kinds = {f.kind for f in scenario_faults(load_scenario("faults"))}
        assert kinds == set(FaultRates.model_fields)

    def test_scale_runs_two_thousand_vehicles(self) -> None:
        scale = load_scenario("scale")
        assert scale.fleet.robots + scale.fleet.drivers == 2000


class TestBadScenarios:
    def test_an_unknown_name_lists_the_shipped_ones(self) -> None:
        from sim.scenario import ScenarioError

        with pytest.raises(ScenarioError, match=r"shipped: .*demo"):
            load_scenario("no-such-scenario")

    @pytest.mark.parametrize(
        ("text", "problem"),
        [
            ('name = "x"\nbogus = 1\n', "bogus"),
            ('name = "x"\n[workload]\nprofile = [[5.0, 1.0], [2.0, 1.0]]\n', "increasing"),
            ('name = "x"\n[faults]\nvanish = -1\n', "faults.vanish"),
            ('name = "x"\n[fleet]\nbattery_start = [90.0, 10.0]\n', "battery_start"),
            ('name = "x"\nduration_s = "long"\n', "duration_s"),
            ("name = \n", "cannot read"),
        ],
    )
    def test_a_bad_file_names_its_problem(self, tmp_path: object, text: str, problem: str) -> None:
        from pathlib import Path

        from sim.scenario import ScenarioError

        assert isinstance(tmp_path, Path)
        path = tmp_path / "bad.toml"
        path.write_text(text)
        with pytest.raises(ScenarioError, match=problem):
            load_scenario(str(path))

    def test_shipped_dir_exists(self) -> None:
        assert (SCENARIO_DIR / "demo.toml").is_file()

"""The report's KPI maths (pure), Markdown tables and comparison."""

from __future__ import annotations

import pytest

from sim.report.kpi import compute_kpis, on_time_verdict, percentile
from sim.report.tables import compare_markdown, flatten, kpi_markdown
from sim.run_record import FaultRecord, MissionRecord, ReplanRecord, RunRecord, VehicleSample


def mission(
    mid: str, priority: str = "normal", created: float = 0.0, **kw: object
) -> MissionRecord:
    return MissionRecord(
        mission_id=mid,
        priority=priority,
        vehicle_kind="any",
        created_s=created,
        **kw,  # type: ignore[arg-type]
    )


def record(**kw: object) -> RunRecord:
    return RunRecord(
        scenario="s",
        mode="evaluate",
        strategy="greedy",
        seed=1,
        duration_s=3600.0,
        vehicles=2,
        **kw,  # type: ignore[arg-type]
    )


class TestPercentile:
    def test_linear_between_ranks_like_numpy(self) -> None:
        assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
        assert percentile([10.0, 0.0, 5.0], 100) == 10.0
        assert percentile([10.0, 0.0, 5.0], 0) == 0.0
        assert percentile(list(map(float, range(101))), 95) == pytest.approx(95.0)

    def test_none_without_values(self) -> None:
        assert percentile([], 95) is None


class TestWaits:
    def test_wait_counts_from_creation_or_window_start(self) -> None:
        rec = record(
            missions=[
                mission("a", created=0.0, picked_up_s=100.0),
                mission(
                    "b", created=0.0, window_start_s=500.0, window_end_s=900.0, picked_up_s=560.0
                ),
                mission("c", created=10.0),  # not picked up: no wait
            ]
        )
        k = compute_kpis(rec)
        assert k.wait.missions == 2
        assert k.wait.mean_s == pytest.approx(80.0)

    def test_by_priority(self) -> None:
        rec = record(
            missions=[
                mission("a", "urgent", picked_up_s=10.0),
                mission("b", "urgent", picked_up_s=30.0),
                mission("c", "low", picked_up_s=600.0),
            ]
        )
        k = compute_kpis(rec)
        assert set(k.wait_by_priority) == {"urgent", "low"}
        assert k.wait_by_priority["urgent"].mean_s == pytest.approx(20.0)
        assert k.wait_by_priority["low"].p95_s == pytest.approx(600.0)


class TestOnTime:
    def test_window_end_is_the_deadline(self) -> None:
        m = mission("a", window_start_s=100.0, window_end_s=200.0, picked_up_s=199.0)
        assert on_time_verdict(m, 3600.0) is True
        m.picked_up_s = 201.0
        assert on_time_verdict(m, 3600.0) is False

    def test_windowless_uses_the_target_of_its_priority(self) -> None:
        assert on_time_verdict(mission("a", "urgent", picked_up_s=299.0), 3600.0) is True
        assert on_time_verdict(mission("a", "urgent", picked_up_s=301.0), 3600.0) is False
        assert on_time_verdict(mission("a", "low", picked_up_s=1700.0), 3600.0) is True

    def test_not_picked_up_is_late_once_overdue_else_undecided(self) -> None:
        assert on_time_verdict(mission("a", "urgent", created=0.0), 3600.0) is False
        assert on_time_verdict(mission("a", "urgent", created=3500.0), 3600.0) is None

    def test_rate(self) -> None:
        rec = record(
            missions=[
                mission("a", "urgent", picked_up_s=10.0),
                mission("b", "urgent", picked_up_s=1000.0),
                mission("c", "urgent", created=3590.0),  # undecided
            ]
        )
        k = compute_kpis(rec)
        assert k.on_time_decided == 2
        assert k.on_time_rate == pytest.approx(0.5)


class TestOthers:
    def test_distances_utilisation_failures_faults_replans(self) -> None:
        rec = record(
            missions=[
                mission(
                    "a", final_status="completed", empty_distance_m=100.0, loaded_distance_m=50.0
                ),
                mission(
                    "b",
                    final_status="completed",
                    empty_distance_m=300.0,
                    loaded_distance_m=0.0,
                    reassignments=2,
                ),
                mission("c", final_status="failed", failure_reason="vehicle_offline"),
                mission("d", final_status="cancelled"),
                mission("e"),
            ],
            samples=[
                VehicleSample(0.0, "r1", "robot", True, True, 50.0, 0.0, 0.0),
                VehicleSample(0.0, "d1", "driver", False, True, None, 0.0, 0.0),
                VehicleSample(60.0, "r1", "robot", True, True, 49.0, 0.0, 0.0),
                VehicleSample(60.0, "d1", "driver", True, False, None, 0.0, 0.0),  # offline
            ],
            faults=[
                FaultRecord("vanish", 10.0, "r1", ["vehicle offline", "mission reassigned"]),
                FaultRecord("vanish", 20.0, "r2", ["vehicle offline"]),
                FaultRecord("malformed_burst", 30.0, None, []),
            ],
            replans=[
                ReplanRecord(0.0, 0.010, 1, 2),
                ReplanRecord(1.0, 0.030, 1, 2),
                ReplanRecord(2.0, 5.0, 1, 2, quick=True),
            ],
            daemon_errors={"schema": 3, "unknown_vehicle": 1},
            messages_sent=10,
            messages_received=20,
        )
        k = compute_kpis(rec)
        assert (k.missions_served, k.missions_failed, k.missions_cancelled) == (2, 1, 1)
        assert k.missions_open_at_end == 1
        assert k.empty_distance_per_mission_m == pytest.approx(200.0)
        assert k.loaded_distance_per_mission_m == pytest.approx(25.0)
        assert k.utilisation == pytest.approx(2 / 3)
        assert k.utilisation_by_kind == {"driver": 0.0, "robot": 1.0}
        assert k.reassignments == 2
        assert k.failures_by_reason == {"vehicle_offline": 1}
        assert k.daemon_errors == 4
        assert k.faults_injected == {"malformed_burst": 1, "vanish": 2}
        assert k.fault_outcomes["vanish"] == {"mission reassigned": 1, "vehicle offline": 2}
        assert k.fault_outcomes["malformed_burst"] == {"nothing observed": 1}
        assert (k.replans, k.quick_plans) == (2, 1)
        assert k.replan_p50_ms == pytest.approx(20.0)
        assert k.replan_max_ms == pytest.approx(30.0)

    def test_an_empty_run_has_no_figures_and_no_crash(self) -> None:
        k = compute_kpis(record())
        assert k.missions_created == 0
        assert k.wait.mean_s is None and k.on_time_rate is None and k.utilisation is None
        text = kpi_markdown({"scenario": "s", "mode": "evaluate"}, k.to_dict())
        assert "n/a" in text


class TestTables:
    def test_flatten(self) -> None:
        assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a.b": 1, "a.c.d": 2, "e": 3}

    def test_markdown_names_the_faults_and_what_fleetd_did(self) -> None:
        rec = record(faults=[FaultRecord("stuck", 5.0, "r1", ["waiting for operator"])])
        text = kpi_markdown({"scenario": "s", "mode": "live"}, compute_kpis(rec).to_dict())
        assert "| stuck | 1 | waiting for operator x1 |" in text

    def test_compare_shows_both_values_and_the_difference(self) -> None:
        a = compute_kpis(record(missions=[mission("a", picked_up_s=200.0)])).to_dict()
        b = compute_kpis(record(missions=[mission("a", picked_up_s=150.0)])).to_dict()
        meta = {"scenario": "s", "mode": "evaluate", "strategy": "x", "seed": 1}
        text = compare_markdown(meta, a, meta, b, "A", "B")
        row = next(line for line in text.splitlines() if line.startswith("| pickup wait, mean"))
        assert row == "| pickup wait, mean (s) | 200.0 | 150.0 | -50.0 (-25.0 %) |"
        rate = next(line for line in text.splitlines() if line.startswith("| on-time rate"))
        assert "pt" in rate


class TestDistancesNotMeasured:
    def test_unmeasured_missions_are_left_out_not_counted_as_zero(self) -> None:
        rec = record(
            missions=[
                mission("a", final_status="completed", empty_distance_m=120.0),
                mission("b", final_status="completed"),  # no odometer for its vehicle
            ]
        )
        k = compute_kpis(rec)
        assert k.empty_distance_per_mission_m == pytest.approx(120.0)
        assert k.loaded_distance_per_mission_m is None

    def test_a_run_that_measured_none_says_so(self) -> None:
        rec = record(missions=[mission("a", final_status="completed")])
        assert compute_kpis(rec).empty_distance_per_mission_m is None

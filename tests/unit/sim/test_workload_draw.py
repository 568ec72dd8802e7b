"""The offline workload: a pure, seeded draw of a scenario's missions."""

from __future__ import annotations

import pytest

from sim.scenario import Scenario
from sim.workload_draw import WorkloadError, draw_workload

PLACES = ("A", "B", "C", "D")


def scenario(**workload: object) -> Scenario:
    return Scenario.model_validate(
        {"name": "t", "seed": 3, "duration_s": 4 * 3600.0, "workload": workload}
    )


def test_the_same_scenario_draws_the_same_missions() -> None:
    s = scenario(missions_per_hour=120.0, scheduled_fraction=0.3)
    assert draw_workload(s, PLACES) == draw_workload(s, PLACES)


def test_another_seed_draws_other_missions() -> None:
    s = scenario(missions_per_hour=120.0)
    other = s.model_copy(update={"seed": 4})
    assert draw_workload(s, PLACES) != draw_workload(other, PLACES)


def test_missions_are_in_order_between_two_different_places() -> None:
    drawn = draw_workload(scenario(missions_per_hour=200.0), PLACES)
    assert drawn
    assert [m.created_s for m in drawn] == sorted(m.created_s for m in drawn)
    assert all(m.pickup != m.dropoff and {m.pickup, m.dropoff} <= set(PLACES) for m in drawn)
    assert all(0.0 <= m.created_s < 4 * 3600.0 for m in drawn)


def test_the_rate_follows_the_profile() -> None:
    # Start at 08:00; from 10:00 the rate is zero.
    drawn = draw_workload(
        scenario(missions_per_hour=300.0, start_hour=8.0, profile=[[0.0, 1.0], [10.0, 0.0]]),
        PLACES,
    )
    assert drawn and all(m.created_s < 2 * 3600.0 for m in drawn)
    # About 300/h for two hours (Poisson: well within +-20 %).
    assert 480 <= len(drawn) <= 720


def test_mixes_and_windows() -> None:
    drawn = draw_workload(
        scenario(
            missions_per_hour=600.0,
            priority_mix={"urgent": 1.0},
            vehicle_kind_mix={"robot": 1.0},
            scheduled_fraction=1.0,
            window_lead_s=[100.0, 100.0],
            window_length_s=50.0,
        ),
        PLACES,
    )
    assert {m.priority for m in drawn} == {"urgent"}
    assert {m.vehicle_kind for m in drawn} == {"robot"}
    for m in drawn:
        assert m.window_start_s == pytest.approx(m.created_s + 100.0, abs=0.01)
        assert m.window_end_s == pytest.approx(m.created_s + 150.0, abs=0.01)


def test_no_missions_at_a_zero_rate() -> None:
    assert draw_workload(scenario(missions_per_hour=0.0), PLACES) == ()


def test_places_outside_the_facility_are_refused() -> None:
    with pytest.raises(WorkloadError, match="Nowhere"):
        draw_workload(scenario(places=["A", "Nowhere"]), PLACES)


def test_one_place_is_not_enough() -> None:
    with pytest.raises(WorkloadError, match="two places"):
        draw_workload(scenario(), ("A",))

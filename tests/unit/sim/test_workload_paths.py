"""One workload generator: a scenario and its seed give the same missions to a live run
(``fleetd sim run``: the places it computes, the bodies it posts) and to the offline
evaluation (``fleetd sim evaluate``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatcher.config import Settings
from dispatcher.facility_layouts import load_facility
from sim.evaluate.configured import options_from_settings
from sim.evaluate.engine import Evaluation
from sim.evaluate.site import Site, load_site
from sim.live import live_places, mission_body
from sim.scenario import Scenario, load_scenario
from sim.schedule import draw_workload as schedule_draw
from sim.workload_draw import DrawnMission, draw_workload

TINY = Path(__file__).resolve().parents[2] / "fixtures" / "scenarios" / "tiny-eval.toml"


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="module")
def site(settings: Settings) -> Site:
    return load_site(settings, "demo-campus")


def live_missions(settings: Settings, scenario: Scenario) -> tuple[DrawnMission, ...]:
    """What ``fleetd sim run`` draws: the places run_cli computes, then run_live's draw."""
    facility = next(f for f in settings.effective_facilities if f.key == scenario.facility)
    loaded = load_facility(facility, None) if facility.layouts and facility.maps else None
    return draw_workload(scenario, live_places(settings, facility, loaded))


def offline_missions(site: Site, scenario: Scenario) -> tuple[DrawnMission, ...]:
    opts = options_from_settings(Settings(), "greedy", solution_limit=5, search_cap_s=5.0)
    return Evaluation(scenario, site, opts).workload()


@pytest.mark.parametrize("name", [str(TINY), "demo", "busy-day", "faults"])
def test_the_same_scenario_gives_the_same_missions_live_and_offline(
    settings: Settings, site: Site, name: str
) -> None:
    scenario = load_scenario(name)
    live, offline = live_missions(settings, scenario), offline_missions(site, scenario)
    assert live, "the scenario draws missions"
    assert live == offline
    assert tuple(schedule_draw(scenario, site.places)) == offline  # the re-export


def test_the_mix_arrives_in_both_modes(settings: Settings, site: Site) -> None:
    """Priorities, kinds and scheduled (windowed) missions all reach both paths, and
    the live run's bodies carry what was drawn."""
    scenario = load_scenario(str(TINY))
    scenario = scenario.model_copy(update={"duration_s": 4 * 3600.0})
    live = live_missions(settings, scenario)
    assert live == offline_missions(site, scenario)
    assert {m.priority for m in live} == {"low", "normal", "high", "urgent"}
    assert {m.vehicle_kind for m in live} == {"any", "robot", "driver"}
    windowed = [m for m in live if m.window_start_s is not None]
    assert windowed and len(windowed) < len(live)
    assert {m.pickup for m in live} | {m.dropoff for m in live} <= set(site.places)
    for m in live[:20]:
        body = mission_body(m, t0=0.0, scale=scenario.time_scale, facility=scenario.facility)
        assert body["pickup"] == {"place": m.pickup} and body["dropoff"] == {"place": m.dropoff}
        assert body["priority"] == m.priority
        assert body["requirements"] == {"vehicle_kind": m.vehicle_kind}
        assert ("window" in body) == (m.window_start_s is not None)
        assert m.mission_id in body["notes"]


def test_charging_stations_are_not_mission_places(settings: Settings, site: Site) -> None:
    facility = next(f for f in settings.effective_facilities if f.key == "demo-campus")
    station_nodes = {s.node_id for s in site.stations}
    at_stations = {p.name for p in facility.places if p.node_id in station_nodes}
    assert at_stations, "the demo campus names places at its chargers"
    assert not at_stations & set(site.places)
    assert set(site.places) == {p.name for p in facility.places} - at_stations


def test_the_order_places_are_listed_in_does_not_matter(site: Site) -> None:
    scenario = load_scenario(str(TINY))
    assert draw_workload(scenario, site.places) == draw_workload(
        scenario, tuple(reversed(site.places))
    )

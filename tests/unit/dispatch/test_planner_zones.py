"""The planner's robot matrices come from the zone-adjusted route graph (issue 14).

The shipped campus, the robots' layout travel as the daemon builds it
(:func:`~dispatcher.dispatch.robot_travel.layout_travel`), and zones given in the map frame
as :class:`dispatcher.route_zones.RouteZones` hands them over: a pickup behind a no-go
zone costs the planner the detour the order will drive, a slow zone costs the slower
time, a zone that cuts a place off makes it unreachable (the horizon), and the matrices
follow the zones as they change (one compiled graph per zone set, reused).
"""

from __future__ import annotations

import uuid

import pytest
import shapely

from dispatcher.config import Settings
from dispatcher.dispatch.problem import MissionInput, Point, Speeds, VehicleInput, build_problem
from dispatcher.dispatch.robot_channel import FacilityOrderLayouts
from dispatcher.dispatch.robot_travel import LayoutTravel, layout_travel
from dispatcher.facility_layouts import load_facility_layouts
from dispatcher.missions.lifecycle import Priority
from dispatcher.planner import PlannerOptions, Problem, VehicleKind, solve
from dispatcher.planner.model import HORIZON
from geo.layout.detours import obstacles
from geo.layout.zones import NO_ZONES, Zone, ZoneKind, ZoneSet

#: The central walk between the hospital drive and the clinic road (map metres): the short
#: way from ward A to radiology runs through it (as in the route-zone integration test).
WALK = (140.0, 132.0)
RADIOLOGY = (305.451, 100.159)


def _square(
    zone_id: str,
    kind: ZoneKind,
    centre: tuple[float, float],
    half: float,
    speed: float | None = None,
) -> Zone:
    x, y = centre
    return Zone(zone_id, kind, shapely.box(x - half, y - half, x + half, y + half), speed, "campus")


class _Zones:
    """What RouteZones answers per facility; ``now`` changes as a reload would."""

    def __init__(self) -> None:
        self.now = NO_ZONES

    def __call__(self, facility_id: uuid.UUID) -> ZoneSet:
        return self.now


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings()


def _travel(settings: Settings, zones: _Zones) -> LayoutTravel:
    layouts = load_facility_layouts(settings.effective_facilities, None)
    return layout_travel(settings, layouts, zones)


def _problem(
    settings: Settings, travel: LayoutTravel, start: str, pickup: str, drop: str
) -> Problem:
    f = settings.default_facility
    node = {p.node_id: p for p in f.places if p.node_id}

    def at(n: str) -> Point:
        return Point(node[n].lat, node[n].lon, (f.id, n))

    robot = VehicleInput(uuid.uuid4(), VehicleKind.ROBOT, at(start))
    mission = MissionInput(uuid.uuid4(), at(pickup), at(drop), Priority.NORMAL)
    return build_problem(
        [robot], [mission], Speeds(robot_mps=settings.dispatch.robot_speed_mps), travel
    )


def test_a_pickup_behind_a_no_go_zone_costs_the_detour(settings: Settings) -> None:
    zones = _Zones()
    travel = _travel(settings, zones)
    open_way = _problem(settings, travel, "ward-a", "radiology", "entrance")
    zones.now = ZoneSet((_square("works", ZoneKind.NO_GO, WALK, 4.0),))
    closed = _problem(settings, travel, "ward-a", "radiology", "entrance")
    before = int(open_way.profiles["robot"].durations[0, 1])
    after = int(closed.profiles["robot"].durations[0, 1])
    # The robot goes round by another path: longer, but still a way (not the horizon).
    assert before < after < HORIZON
    closed_m, open_m = closed.profiles["robot"].distances, open_way.profiles["robot"].distances
    assert closed_m is not None and open_m is not None
    assert closed_m[0, 1] > open_m[0, 1]
    # The planner's estimate is what the order will drive: the route the robot channel's
    # lookup (same zones, the planner's speed) builds the order on.
    layouts = load_facility_layouts(settings.effective_facilities, None)
    f = settings.default_facility
    orders = FacilityOrderLayouts(
        {f.id: layouts[f.key]}, max_speed_mps=settings.dispatch.robot_speed_mps, zones=zones
    )
    layout = orders(f.id, "ward-a")
    assert layout is not None
    route = layout.routes.route("ward-a", "radiology")
    assert route is not None and after == int(-(-route.duration_s // 1))
    # Zones gone (a reload after DELETE): the short way again, from the cached graph.
    zones.now = NO_ZONES
    again = _problem(settings, travel, "ward-a", "radiology", "entrance")
    assert int(again.profiles["robot"].durations[0, 1]) == before


def test_a_slow_zone_costs_time_not_distance(settings: Settings) -> None:
    zones = _Zones()
    travel = _travel(settings, zones)
    fast = _problem(settings, travel, "ward-a", "radiology", "entrance")
    zones.now = ZoneSet((_square("crowd", ZoneKind.SLOW, WALK, 30.0, 0.3),))
    slow = _problem(settings, travel, "ward-a", "radiology", "entrance")
    assert slow.profiles["robot"].durations[0, 1] > fast.profiles["robot"].durations[0, 1]


def test_a_place_cut_off_by_a_no_go_zone_is_unreachable_and_reported(
    settings: Settings,
) -> None:
    zones = _Zones()
    zones.now = ZoneSet((_square("closed", ZoneKind.NO_GO, RADIOLOGY, 4.0),))
    problem = _problem(settings, _travel(settings, zones), "ward-a", "radiology", "entrance")
    assert problem.profiles["robot"].durations[0, 1] == HORIZON
    plan = solve(problem, "optimise", PlannerOptions(time_limit_s=0.2, use_vroom=False))
    assert not plan.routes or not any(r.stops for r in plan.routes)
    assert len(plan.unserved) == 1


def test_a_drivers_pickup_behind_a_no_go_zone_costs_the_way_round() -> None:
    """Drivers travel in straight lines (geodesic x detour factor): a no-go zone between
    the driver and the pickup makes the planner count the way round its corners."""
    lat0, lon0 = 52.52, 13.405
    m_lat, m_lon = 1 / 111_320, 1 / (111_320 * 0.6088)
    wall = shapely.box(lon0 - 100 * m_lon, lat0 - 10 * m_lat, lon0 + 100 * m_lon, lat0 + 10 * m_lat)
    driver = VehicleInput(uuid.uuid4(), VehicleKind.DRIVER, Point(lat0 - 50 * m_lat, lon0))
    mission = MissionInput(
        uuid.uuid4(),
        Point(lat0 + 50 * m_lat, lon0),
        Point(lat0 + 50 * m_lat, lon0 + 300 * m_lon),
        Priority.NORMAL,
    )
    straight = build_problem([driver], [mission], Speeds())
    around = obstacles([wall])
    assert around is not None
    detour = build_problem([driver], [mission], Speeds(), detours=around)
    before = straight.profiles["driver"].durations
    after = detour.profiles["driver"].durations
    assert after[0, 1] > 2 * before[0, 1]  # round the wall's end, not 100 m through it
    assert after[1, 2] == before[1, 2]  # pickup to drop-off does not cross it

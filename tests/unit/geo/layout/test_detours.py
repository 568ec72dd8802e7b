"""No-go zones for straight-line travel (drivers' geodesic model) and drivers' roads."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import shapely

from geo.layout.detours import obstacles
from geo.layout.drivers import GeodesicModel, RoadGraph, geodesic_matrix
from geo.layout.zones import Zone, ZoneKind, ZoneSet

LAT0, LON0 = 52.52, 13.405
M_LAT = 1 / 111_320
M_LON = 1 / (111_320 * math.cos(math.radians(LAT0)))


def at(x: float, y: float) -> tuple[float, float]:
    """(lat, lon) of a point ``x`` m east and ``y`` m north of the origin."""
    return LAT0 + y * M_LAT, LON0 + x * M_LON


def box(x0: float, y0: float, x1: float, y1: float) -> shapely.Polygon:
    (la0, lo0), (la1, lo1) = at(x0, y0), at(x1, y1)
    return shapely.box(lo0, la0, lo1, la1)


#: A wall 200 m wide and 20 m deep across the origin.
WALL = box(-100, -10, 100, 10)


def _matrix(points: list[tuple[float, float]]) -> tuple[list[float], list[float], Any]:
    lats, lons = [p[0] for p in points], [p[1] for p in points]
    return lats, lons, geodesic_matrix(np.array(lats), np.array(lons))


class TestObstacles:
    def test_a_pair_across_a_wall_goes_round_its_corner(self) -> None:
        lats, lons, m = _matrix([at(0, -50), at(0, 50), at(300, -50)])
        ob = obstacles([WALL], margin_m=2.0)
        assert ob is not None
        out = ob.around(lats, lons, m)
        # Round the nearer end: 50 m to the corner row (+2 m margin), along, and back.
        way = 2 * math.hypot(102, 38) + 24
        assert out[0, 1] == pytest.approx(way, rel=0.01)
        assert out[1, 0] == pytest.approx(out[0, 1])
        # Pairs that do not cross keep their straight line.
        assert out[0, 2] == m[0, 2] and out[1, 2] == m[1, 2]

    def test_a_point_inside_a_zone_keeps_its_straight_lines(self) -> None:
        lats, lons, m = _matrix([at(0, 0), at(0, 50)])
        ob = obstacles([WALL])
        assert ob is not None
        np.testing.assert_array_equal(ob.around(lats, lons, m), m)

    def test_overlapping_zones_are_one_obstacle(self) -> None:
        ob = obstacles([box(-100, -10, 10, 10), box(0, -10, 100, 10)], margin_m=0.0)
        assert ob is not None and len(ob.polygons) == 1
        lats, lons, m = _matrix([at(0, -50), at(0, 50)])
        out = ob.around(lats, lons, m)
        assert out[0, 1] == pytest.approx(2 * math.hypot(100, 40) + 20, rel=0.01)

    def test_no_zones_no_obstacles(self) -> None:
        assert obstacles([]) is None


def test_the_geodesic_model_goes_round_a_no_go_zone() -> None:
    """Drivers' default model: the pickup behind the wall costs the detour (times the
    detour factor), a slow zone changes nothing (no road to slow down on)."""
    (la, lo), (lb, lob) = at(0, -50), at(0, 50)
    model = GeodesicModel(detour_factor=1.4, speed_mps=8.0)
    free = model.matrices([la, lb], [lo, lob])
    no_go = ZoneSet((Zone("wall", ZoneKind.NO_GO, WALL),))
    round_ = model.matrices([la, lb], [lo, lob], no_go)
    assert round_.distances[0, 1] > 2 * free.distances[0, 1]
    assert round_.durations[0, 1] == pytest.approx(round_.distances[0, 1] / 8.0)
    slow = ZoneSet((Zone("crowd", ZoneKind.SLOW, WALL, 1.0),))
    assert model.matrices([la, lb], [lo, lob], slow).distances[0, 1] == free.distances[0, 1]


def _road(name: str, *xy: tuple[float, float]) -> dict[str, Any]:
    coords = [[at(x, y)[1], at(x, y)[0]] for x, y in xy]
    return {
        "type": "Feature",
        "properties": {"id": name},
        "geometry": {"type": "LineString", "coordinates": coords},
    }


class TestRoads:
    """Two roads from A (0, -60) to B (0, 60): straight through the middle, or round by
    x = 300. A no-go zone on the middle road sends drivers round."""

    ROADS: dict[str, Any] = {
        "type": "FeatureCollection",
        "features": [
            _road("middle", (0, -60), (0, 60)),
            _road("east", (0, -60), (300, -60), (300, 60), (0, 60)),
        ],
    }

    def test_a_no_go_zone_closes_the_road_through_it(self) -> None:
        roads = RoadGraph(self.ROADS, speed_mps=10.0, detour_factor=1.0)
        (la, lo), (lb, lob) = at(0, -60), at(0, 60)
        free = roads.matrices([la, lb], [lo, lob])
        assert free.distances[0, 1] == pytest.approx(120, rel=0.01)
        zones = ZoneSet((Zone("works", ZoneKind.NO_GO, box(-20, -10, 20, 10)),))
        closed = roads.matrices([la, lb], [lo, lob], zones)
        assert closed.distances[0, 1] == pytest.approx(720, rel=0.01)
        # One compiled graph per zone set, reused.
        assert roads.graph_for(zones) is roads.graph_for(zones)
        slow = ZoneSet((Zone("crowd", ZoneKind.SLOW, box(-20, -10, 20, 10), 1.0),))
        assert roads.matrices([la, lb], [lo, lob], slow).durations[0, 1] > free.durations[0, 1]

    def test_the_leg_onto_the_road_does_not_cross_a_no_go_zone(self) -> None:
        """A point 30 m west of A with a pit between them: it joins the road at B (its
        straight line clear of the pit), not through the pit."""
        roads = RoadGraph(self.ROADS, speed_mps=10.0, detour_factor=1.0)
        lp, lop = at(-30, -60)
        zones = ZoneSet((Zone("pit", ZoneKind.NO_GO, box(-20, -65, -10, -55)),))
        a = roads.nearest_nodes(np.array([lp]), np.array([lop]))[0]
        b = roads.nearest_nodes(np.array([lp]), np.array([lop]), zones)[0]
        assert a != b
        lb, _ = at(0, 60)
        assert roads._nodes[b][1] == pytest.approx(lb)

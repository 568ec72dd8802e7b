"""Stored zones (WGS84 GeoJSON) projected into a layout's map frame (pure)."""

from __future__ import annotations

import pytest
import shapely

from geo.facility import MapSpec
from geo.frames import MapFrame
from geo.layout.zone_frames import StoredZone, in_frame, route_zone, route_zones
from geo.layout.zones import ZoneKind

FRAME = MapFrame(MapSpec("campus", 52.52, 13.405, 30.0))


def ring(points: list[tuple[float, float]]) -> list[list[float]]:
    lats, lons = FRAME.to_wgs84_many([p[0] for p in points], [p[1] for p in points])
    return [[float(lon), float(lat)] for lat, lon in zip(lats, lons, strict=True)]


SQUARE = [(10.0, 10.0), (20.0, 10.0), (20.0, 20.0), (10.0, 20.0), (10.0, 10.0)]
HOLE = [(14.0, 14.0), (16.0, 14.0), (16.0, 16.0), (14.0, 16.0), (14.0, 14.0)]


def test_polygon_comes_back_in_map_metres_with_its_hole() -> None:
    geometry = {"type": "Polygon", "coordinates": [ring(SQUARE), ring(HOLE)]}
    shape = in_frame(geometry, FRAME)
    assert shape.area == pytest.approx(100.0 - 4.0, abs=1e-3)
    assert shape.contains(shapely.Point(12, 12)) and not shape.contains(shapely.Point(15, 15))


def test_multipolygon() -> None:
    other = [(x + 50, y) for x, y in SQUARE]
    geometry = {"type": "MultiPolygon", "coordinates": [[ring(SQUARE)], [ring(other)]]}
    assert in_frame(geometry, FRAME).area == pytest.approx(200.0, abs=1e-3)


def test_other_geometry_types_are_refused() -> None:
    with pytest.raises(ValueError, match="Point"):
        in_frame({"type": "Point", "coordinates": [13.4, 52.5]}, FRAME)


def test_only_no_go_and_slow_zones_change_routes() -> None:
    geometry = {"type": "Polygon", "coordinates": [ring(SQUARE)]}
    no_go = route_zone(StoredZone("z1", "no_go", geometry), FRAME)
    assert no_go is not None and no_go.kind is ZoneKind.NO_GO and no_go.map_id == "campus"
    assert no_go.speed_limit_mps is None
    slow = route_zone(StoredZone("z2", "slow", geometry, 0.5), FRAME)
    assert slow is not None and slow.speed_limit_mps == 0.5
    assert route_zone(StoredZone("z3", "service_area", geometry), FRAME) is None
    assert route_zone(StoredZone("z4", "charging", geometry), FRAME) is None
    # A slow zone without a positive cap (only a row written by hand) is left out.
    assert route_zone(StoredZone("z5", "slow", geometry, None), FRAME) is None


def test_a_zone_set_has_each_zone_once_per_map_and_a_stable_key() -> None:
    geometry = {"type": "Polygon", "coordinates": [ring(SQUARE)]}
    second = MapFrame(MapSpec("annex", 52.52, 13.405, 0.0))
    zones = [StoredZone("z1", "no_go", geometry), StoredZone("z2", "slow", geometry, 1.0)]
    both = route_zones(zones, [FRAME, second])
    assert sorted((z.zone_id, z.map_id) for z in both.zones) == [
        ("z1", "annex"),
        ("z1", "campus"),
        ("z2", "annex"),
        ("z2", "campus"),
    ]
    assert route_zones(zones, [FRAME, second]).key == both.key
    assert route_zones(zones[:1], [FRAME, second]).key != both.key


def test_a_zone_that_cannot_be_projected_is_left_out_and_reported() -> None:
    good = StoredZone("ok", "no_go", {"type": "Polygon", "coordinates": [ring(SQUARE)]})
    bad = StoredZone("bad", "no_go", {"type": "LineString", "coordinates": [[13.4, 52.5]]})
    empty = StoredZone("empty", "no_go", {"type": "Polygon", "coordinates": [[]]})
    seen: list[str] = []
    zones = route_zones([bad, good, empty], [FRAME], lambda z, _exc: seen.append(z.zone_id))
    assert [z.zone_id for z in zones.zones] == ["ok"]
    assert seen == ["bad", "empty"]


def test_a_folded_shape_is_repaired_not_raised() -> None:
    bowtie = [(0.0, 0.0), (10.0, 10.0), (10.0, 0.0), (0.0, 10.0), (0.0, 0.0)]
    shape = in_frame({"type": "Polygon", "coordinates": [ring(bowtie)]}, FRAME)
    assert shape.is_valid and shape.area == pytest.approx(50.0, abs=1e-3)

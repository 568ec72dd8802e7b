"""Drivers' travel: geodesic estimate by default, or a road graph from GeoJSON."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from pyproj import Geod

from geo.layout.drivers import GeodesicModel, RoadGraph
from geo.layout.errors import InvalidElementError

GEOD = Geod(ellps="WGS84")
LATS = [52.5200, 52.5210, 52.5230, 52.5190]
LONS = [13.4050, 13.4080, 13.4010, 13.4100]


def _line(coords: list[tuple[float, float]], **props: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "properties": props,
        "geometry": {"type": "LineString", "coordinates": [list(c) for c in coords]},
    }


class TestGeodesic:
    def test_matches_pyproj_pair_by_pair(self) -> None:
        """Every entry is the WGS84 geodesic distance times the detour factor."""
        m = GeodesicModel(detour_factor=1.5, speed_mps=10.0).matrices(LATS, LONS)
        for i in range(4):
            for j in range(4):
                _, _, d = GEOD.inv(LONS[i], LATS[i], LONS[j], LATS[j])
                assert m.distances[i, j] == pytest.approx(1.5 * d, rel=1e-9, abs=1e-6)
        np.testing.assert_allclose(m.durations, m.distances / 10.0)

    def test_symmetric_with_zero_diagonal(self) -> None:
        """Same distance both ways; zero from a point to itself."""
        m = GeodesicModel().matrices(LATS, LONS)
        np.testing.assert_allclose(m.distances, m.distances.T)
        assert not np.diag(m.distances).any()

    def test_rejects_nonsense(self) -> None:
        """A detour below 1 or a non-positive speed is refused."""
        with pytest.raises(ValueError, match="detour_factor"):
            GeodesicModel(detour_factor=0.9)


class TestRoadGraph:
    # An L: west->corner->north, ~200 m each leg; the second line starts 0.3 m off the
    # first one's end, which the 1 m snap joins into one node.
    W, C, N = (13.4000, 52.5200), (13.4030, 52.5200), (13.4030, 52.5218)
    C2 = (13.403004, 52.5200)

    def _geojson(self, **props: Any) -> dict[str, Any]:
        return {
            "type": "FeatureCollection",
            "features": [
                _line([self.W, self.C], id="south"),
                _line([self.C2, self.N], id="east", **props),
            ],
        }

    def test_shared_end_points_are_snapped(self) -> None:
        """Two lines meeting (within the snap) make three nodes and a through route."""
        roads = RoadGraph(self._geojson(), speed_mps=10.0)
        assert len(roads.graph.edges.node_ids) == 3
        m = roads.matrices([self.W[1], self.N[1]], [self.W[0], self.N[0]])
        legs = GEOD.line_length([self.W[0], self.C[0]], [self.W[1], self.C[1]]) + GEOD.line_length(
            [self.C2[0], self.N[0]], [self.C2[1], self.N[1]]
        )
        assert m.distances[0, 1] == pytest.approx(legs, rel=1e-6)
        assert m.durations[0, 1] == pytest.approx(legs / 10.0, rel=1e-6)
        # The road is longer than straight: an L, not the hypotenuse.
        _, _, straight = GEOD.inv(self.W[0], self.W[1], self.N[0], self.N[1])
        assert m.distances[0, 1] > straight * 1.3

    def test_one_way_road(self) -> None:
        """A line marked oneway cannot be driven backwards."""
        roads = RoadGraph(self._geojson(oneway=True))
        m = roads.matrices([self.W[1], self.N[1]], [self.W[0], self.N[0]])
        assert math.isfinite(m.durations[0, 1]) and math.isinf(m.durations[1, 0])

    def test_points_off_the_road_add_their_access_legs(self) -> None:
        """A point 50 m off the road's start adds that leg times the detour factor."""
        off_lat = self.W[1] - 50 / 111_250
        roads = RoadGraph(self._geojson(), detour_factor=1.0)
        on = roads.matrices([self.W[1], self.N[1]], [self.W[0], self.N[0]])
        off = roads.matrices([off_lat, self.N[1]], [self.W[0], self.N[0]])
        assert off.distances[0, 1] - on.distances[0, 1] == pytest.approx(50.0, abs=0.5)

    def test_road_speed_limit(self) -> None:
        """maxspeed_mps on a line slows that line only."""
        roads = RoadGraph(self._geojson(maxspeed_mps=2.0), speed_mps=10.0)
        assert sorted(set(roads.graph.edges.speed)) == [2.0, 10.0]

    def test_no_lines_is_refused(self) -> None:
        """A GeoJSON without LineStrings is not a road network."""
        with pytest.raises(InvalidElementError):
            RoadGraph({"type": "FeatureCollection", "features": []})

    def test_degenerate_line_is_named(self) -> None:
        """A one-point line is refused with its feature named."""
        bad = {"type": "FeatureCollection", "features": [_line([self.W], id="stub")]}
        with pytest.raises(InvalidElementError) as exc:
            RoadGraph(bad)
        assert exc.value.element_id == "stub"


class TestRoadJunctions:
    def test_t_junction_at_an_interior_vertex(self) -> None:
        """A side road ending on another road's middle vertex joins it there."""
        west, mid, east = (13.400, 52.520), (13.402, 52.520), (13.404, 52.520)
        north = (13.402, 52.5215)
        roads = RoadGraph(
            {
                "type": "FeatureCollection",
                "features": [_line([west, mid, east], id="main"), _line([north, mid], id="side")],
            }
        )
        assert len(roads.graph.edges.node_ids) == 4
        assert {"main#0", "main#1", "side"} <= set(roads.graph.edges.edge_ids)
        m = roads.matrices([north[1], east[1]], [north[0], east[0]])
        legs = GEOD.line_length([north[0], mid[0], east[0]], [north[1], mid[1], east[1]])
        assert m.distances[0, 1] == pytest.approx(legs, rel=1e-6)

"""Compiled route graphs are cached per layout version, vehicle profile and zone set."""

from __future__ import annotations

import shapely

from geo.layout import RouteGraphs, VehicleProfile, Zone, ZoneKind, ZoneSet, parse_lif
from tests.unit.geo.layout.builders import VT, square, text

PROFILE = VehicleProfile(VT, max_speed_mps=1.0)


class TestRouteGraphs:
    def test_same_layout_version_hits(self) -> None:
        """A second request on the same layout version reuses the compiled graph."""
        graphs = RouteGraphs()
        doc = parse_lif(text(square()))
        first = graphs.matrices(doc, PROFILE, ["A", "C"])
        again = graphs.matrices(parse_lif(text(square())), PROFILE, ["C", "A"])
        assert graphs.cache_info().hits == 1 and graphs.cache_info().misses == 1
        assert again.durations[0, 1] == first.durations[1, 0]

    def test_new_layout_version_misses(self) -> None:
        """A bumped layoutVersion compiles a new graph."""
        graphs = RouteGraphs()
        graphs.graph(parse_lif(text(square())), PROFILE)
        bumped = square()
        bumped["layouts"][0]["layoutVersion"] = "2"
        graphs.graph(parse_lif(text(bumped)), PROFILE)
        assert graphs.cache_info().misses == 2

    def test_edited_file_without_new_version_misses(self) -> None:
        """A changed file keeping its layoutVersion is still a new version (content digest)."""
        graphs = RouteGraphs()
        graphs.graph(parse_lif(text(square())), PROFILE)
        moved = square()
        moved["layouts"][0]["nodes"][1]["nodePosition"]["x"] = 12.0
        graphs.graph(parse_lif(text(moved)), PROFILE)
        assert graphs.cache_info().misses == 2

    def test_zone_set_and_profile_are_part_of_the_key(self) -> None:
        """Other zones or another vehicle profile compile their own graph."""
        graphs = RouteGraphs()
        doc = parse_lif(text(square()))
        zones = ZoneSet((Zone("z", ZoneKind.NO_GO, shapely.box(4, -1, 6, 1)),))
        graphs.graph(doc, PROFILE)
        graphs.graph(doc, PROFILE, zones)
        graphs.graph(doc, VehicleProfile(VT, 2.0))
        graphs.graph(doc, PROFILE, zones)
        assert graphs.cache_info() == graphs.cache_info().__class__(hits=1, misses=3, size=3)

    def test_bounded(self) -> None:
        """The oldest graph is dropped beyond the bound."""
        graphs = RouteGraphs(max_graphs=2)
        doc = parse_lif(text(square()))
        for speed in (1.0, 2.0, 3.0):
            graphs.graph(doc, VehicleProfile(VT, speed))
        assert graphs.cache_info().size == 2

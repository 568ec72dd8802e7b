"""Zones: no-go zones remove the edges crossing them, slow zones cap their speed."""

from __future__ import annotations

import pytest
import shapely

from geo.layout import (
    CompiledGraph,
    VehicleProfile,
    Zone,
    ZoneKind,
    ZoneSet,
    apply_zones,
    build_edge_table,
    parse_lif,
)
from geo.layout.graph import EdgeTable
from tests.unit.geo.layout.builders import VT, square, text

PROFILE = VehicleProfile(VT, max_speed_mps=2.0)


def _table() -> EdgeTable:
    return build_edge_table(parse_lif(text(square())), PROFILE)


class TestNoGo:
    def test_crossing_edges_are_removed(self) -> None:
        """A box over the middle of A-B removes both directions; A to B then goes round."""
        zone = Zone("works", ZoneKind.NO_GO, shapely.box(4, -1, 6, 1))
        table = apply_zones(_table(), ZoneSet((zone,)))
        assert "A-B" not in table.edge_ids and "B-A" not in table.edge_ids
        assert len(table.edge_ids) == 6
        m = CompiledGraph(table).matrices(["A", "B"])
        assert m.distances[0, 1] == pytest.approx(30.0)

    def test_edge_along_the_boundary_stays(self) -> None:
        """An edge that only touches a zone's edge does not cross it."""
        zone = Zone("works", ZoneKind.NO_GO, shapely.box(4, 0, 6, 2))
        table = apply_zones(_table(), ZoneSet((zone,)))
        assert len(table.edge_ids) == 8

    def test_zone_of_another_map_is_ignored(self) -> None:
        """A zone drawn in another map frame does not touch this map's edges."""
        zone = Zone("works", ZoneKind.NO_GO, shapely.box(4, -1, 6, 1), map_id="upstairs")
        assert len(apply_zones(_table(), ZoneSet((zone,))).edge_ids) == 8


class TestSlow:
    def test_speed_is_capped_on_crossing_edges_only(self) -> None:
        """A 0.5 m/s zone over D-C slows D-C and C-D, nothing else."""
        zone = Zone("ward", ZoneKind.SLOW, shapely.box(4, 9, 6, 11), speed_limit_mps=0.5)
        table = apply_zones(_table(), ZoneSet((zone,)))
        speeds = dict(zip(table.edge_ids, table.speed, strict=True))
        assert speeds["C-D"] == speeds["D-C"] == 0.5
        assert all(v == 2.0 for k, v in speeds.items() if k not in ("C-D", "D-C"))

    def test_slow_zone_changes_the_fastest_path(self) -> None:
        """With D-C slowed, A to C is faster through B again (10 s against 25 s)."""
        zone = Zone("ward", ZoneKind.SLOW, shapely.box(4, 9, 6, 11), speed_limit_mps=0.5)
        g = CompiledGraph(apply_zones(_table(), ZoneSet((zone,))))
        route = g.route("A", "C")
        assert route is not None and route.node_ids == ("A", "B", "C")

    def test_slow_zone_needs_a_limit(self) -> None:
        """A slow zone without a positive limit is a programming error."""
        with pytest.raises(ValueError, match="speed_limit_mps"):
            Zone("z", ZoneKind.SLOW, shapely.box(0, 0, 1, 1))

    def test_zone_set_key_follows_content(self) -> None:
        """The same zones give the same key; moving one changes it."""
        a = ZoneSet((Zone("z", ZoneKind.NO_GO, shapely.box(0, 0, 1, 1)),))
        b = ZoneSet((Zone("z", ZoneKind.NO_GO, shapely.box(0, 0, 1, 1)),))
        c = ZoneSet((Zone("z", ZoneKind.NO_GO, shapely.box(0, 0, 2, 1)),))
        assert a.key == b.key != c.key

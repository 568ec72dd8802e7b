"""Route graphs, matrices and paths, checked against small graphs computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from geo.layout import (
    CompiledGraph,
    UnknownNodeError,
    VehicleProfile,
    build_edge_table,
    parse_lif,
)
from geo.layout.model import LifDocument
from tests.unit.geo.layout.builders import VT, document, edge, node, square, station, text

FAST = VehicleProfile(VT, max_speed_mps=2.0)


def _square_graph() -> LifDocument:
    doc = square()
    # A-B is slow (1 m/s), so A to C is faster round by D than by B.
    doc["layouts"][0]["edges"][0]["vehicleTypeEdgeProperties"][0]["maxSpeed"] = 1.0
    return parse_lif(text(doc))


class TestMatrices:
    def test_hand_computed_square(self) -> None:
        """A->B 10 m at 1 m/s = 10 s; A->C by D 20 m at 2 m/s = 10 s, by B 15 s."""
        m = CompiledGraph(build_edge_table(_square_graph(), FAST)).matrices(["A", "B", "C"])
        assert m.node_ids == ("A", "B", "C")
        np.testing.assert_allclose(m.durations, [[0, 10, 10], [5, 0, 5], [10, 5, 0]])
        np.testing.assert_allclose(m.distances, [[0, 10, 20], [10, 0, 10], [20, 10, 0]])

    def test_vehicle_speed_caps_edge_speed(self) -> None:
        """A slower vehicle is bound by its own top speed, not the edge's."""
        slow = VehicleProfile(VT, max_speed_mps=0.5)
        m = CompiledGraph(build_edge_table(_square_graph(), slow)).matrices(["A", "C"])
        assert m.durations[0, 1] == pytest.approx(40.0)

    def test_distance_follows_the_fastest_path(self) -> None:
        """A short crawl (diagonal at 0.25 m/s) loses on time; distance is the driven one."""
        doc = square()
        doc["layouts"][0]["edges"].append(edge("A", "C", speed=0.25))
        m = CompiledGraph(build_edge_table(parse_lif(text(doc)), FAST)).matrices(["A", "C"])
        assert m.durations[0, 1] == pytest.approx(10.0)
        assert m.distances[0, 1] == pytest.approx(20.0)

    def test_one_way_is_respected(self) -> None:
        """On a one-way ring A->B->C->A, B to A goes the long way round through C."""
        nodes = [node("A", 0, 0), node("B", 10, 0), node("C", 10, 10)]
        edges = [edge("A", "B"), edge("B", "C"), edge("C", "A")]
        doc = parse_lif(text(document(nodes, edges, [station("S", "A")])))
        m = CompiledGraph(build_edge_table(doc, VehicleProfile(VT, 1.0))).matrices(["A", "B"])
        assert m.durations[0, 1] == pytest.approx(10.0)
        assert m.durations[1, 0] == pytest.approx(10 + math.hypot(10, 10))

    def test_no_way_back_is_infinite(self) -> None:
        """A single one-way edge: the reverse pair is unreachable (inf), never a number."""
        nodes = [node("A", 0, 0), node("B", 10, 0)]
        doc = parse_lif(text(document(nodes, [edge("A", "B")])))
        m = CompiledGraph(build_edge_table(doc, FAST)).matrices(["A", "B"])
        assert m.durations[0, 1] == pytest.approx(5.0)
        assert math.isinf(m.durations[1, 0]) and math.isinf(m.distances[1, 0])

    def test_parallel_edges_take_the_fastest(self) -> None:
        """Two edges between the same nodes (LIF example 10.12): the faster one counts."""
        nodes = [node("A", 0, 0), node("B", 10, 0)]
        edges = [edge("A", "B", eid="slow", speed=0.5), edge("A", "B", eid="fast", speed=2.0)]
        g = CompiledGraph(build_edge_table(parse_lif(text(document(nodes, edges))), FAST))
        route = g.route("A", "B")
        assert route is not None and route.edge_ids == ("fast",)
        assert route.duration_s == pytest.approx(5.0)

    def test_trajectory_length(self) -> None:
        """A NURBS quarter circle of radius 10 is 5*pi m long, not the 14.1 m chord."""
        # Weights (1, sqrt(1/2), 1) scaled by sqrt(2): the schema wants every weight >= 1.
        w = math.sqrt(2)
        traj = {
            "degree": 2,
            "knotVector": [0, 0, 0, 1, 1, 1],
            "controlPoints": [
                {"x": 0, "y": 0, "weight": w},
                {"x": 10, "y": 0},
                {"x": 10, "y": 10, "weight": w},
            ],
        }
        nodes = [node("A", 0, 0), node("B", 10, 10)]
        doc = parse_lif(text(document(nodes, [edge("A", "B", trajectory=traj)])))
        table = build_edge_table(doc, FAST)
        assert table.length[0] == pytest.approx(5 * math.pi, rel=1e-3)

    def test_load_restriction(self) -> None:
        """An edge closed to loaded vehicles is left out of a loaded vehicle's graph."""
        doc = square()
        lr = {"unloaded": True, "loaded": False}
        for e in doc["layouts"][0]["edges"][:2]:
            e["vehicleTypeEdgeProperties"][0]["loadRestriction"] = lr
        parsed = parse_lif(text(doc))
        loaded = CompiledGraph(build_edge_table(parsed, VehicleProfile(VT, 2.0, load="loaded")))
        empty = CompiledGraph(build_edge_table(parsed, VehicleProfile(VT, 2.0, load="unloaded")))
        assert loaded.matrices(["A", "B"]).distances[0, 1] == pytest.approx(30.0)
        assert empty.matrices(["A", "B"]).distances[0, 1] == pytest.approx(10.0)

    def test_other_vehicle_types_edges_are_ignored(self) -> None:
        """Edges for another vehicleTypeId are not in this type's graph."""
        doc = square()
        doc["layouts"][0]["edges"].append(edge("A", "C", vt="other"))
        table = build_edge_table(parse_lif(text(doc)), FAST)
        assert "A-C" not in table.edge_ids

    def test_only_requested_sources_are_solved(self) -> None:
        """Rows are computed for the nodes asked for, and reused afterwards."""
        g = CompiledGraph(build_edge_table(_square_graph(), FAST))
        g.matrices(["A", "C"])
        assert set(g._rows) == {0, 2}
        g.matrices(["A", "B"])
        assert set(g._rows) == {0, 1, 2}


class TestRoutes:
    def test_route_nodes_and_edges(self) -> None:
        """The fastest A->C goes A, D, C, over the edges named in the file."""
        g = CompiledGraph(build_edge_table(_square_graph(), FAST))
        route = g.route("A", "C")
        assert route is not None
        assert route.node_ids == ("A", "D", "C")
        assert route.edge_ids == ("A-D", "D-C")
        assert (route.duration_s, route.distance_m) == pytest.approx((10.0, 20.0))

    def test_route_to_itself(self) -> None:
        """From a node to itself: that node, no edge, zero."""
        route = CompiledGraph(build_edge_table(_square_graph(), FAST)).route("B", "B")
        assert route is not None and route.node_ids == ("B",) and route.edge_ids == ()

    def test_unreachable_route_is_none(self) -> None:
        """No path: None."""
        nodes = [node("A", 0, 0), node("B", 10, 0)]
        g = CompiledGraph(
            build_edge_table(parse_lif(text(document(nodes, [edge("A", "B")]))), FAST)
        )
        assert g.route("B", "A") is None

    def test_unknown_node(self) -> None:
        """A node the graph does not have is named in the error."""
        g = CompiledGraph(build_edge_table(_square_graph(), FAST))
        with pytest.raises(UnknownNodeError) as exc:
            g.matrices(["A", "nowhere"])
        assert exc.value.element_id == "nowhere"


class TestRandomGraphs:
    @pytest.mark.parametrize("seed", range(5))
    def test_matrix_agrees_with_walking_each_route(self, seed: int) -> None:
        """On random graphs, each matrix entry equals the sum over its route's edges."""
        import random

        rng = random.Random(seed)
        nodes = [node(f"n{i}", rng.uniform(0, 100), rng.uniform(0, 100)) for i in range(25)]
        edges = [
            edge(f"n{a}", f"n{b}", eid=f"e{k}", speed=rng.choice([None, 0.5, 1.0]))
            for k in range(90)
            if (a := rng.randrange(25)) != (b := rng.randrange(25))
        ]
        doc = parse_lif(text(document(nodes, edges)))
        g = CompiledGraph(build_edge_table(doc, FAST))
        ids = [f"n{i}" for i in range(0, 25, 3)]
        m = g.matrices(ids)
        lengths = dict(zip(g.edges.edge_ids, g.edges.length, strict=True))
        speeds = dict(zip(g.edges.edge_ids, g.edges.speed, strict=True))
        for i, src in enumerate(ids):
            for j, dst in enumerate(ids):
                route = g.route(src, dst)
                if route is None:
                    assert math.isinf(m.durations[i, j]) and math.isinf(m.distances[i, j])
                    continue
                walked = sum(lengths[e] for e in route.edge_ids)
                timed = sum(lengths[e] / speeds[e] for e in route.edge_ids)
                assert m.distances[i, j] == pytest.approx(walked, abs=1e-6)
                assert m.durations[i, j] == pytest.approx(timed, abs=1e-6)


class TestRowCache:
    def test_request_larger_than_the_cache(self) -> None:
        """Asking for more sources than the row cache holds still answers every row."""
        g = CompiledGraph(build_edge_table(_square_graph(), FAST), max_rows=2)
        m = g.matrices(["A", "B", "C", "D"])
        assert m.durations.shape == (4, 4) and np.isfinite(m.durations).all()
        assert len(g._rows) == 2

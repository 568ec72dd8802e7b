"""Loading LIF files: the specification's examples load, faulty files are refused by name."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from geo.layout import (
    DanglingReferenceError,
    DuplicateIdError,
    InvalidElementError,
    LayoutError,
    LayoutSchemaError,
    LayoutSyntaxError,
    OneWayTrapError,
    UnreachableStationError,
    load_lif,
    parse_lif,
)
from tests.unit.geo.layout.builders import (
    document,
    edge,
    node,
    square,
    station,
    text,
    two_way,
)

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "lif"
EXAMPLES = sorted(FIXTURES.glob("example-10-[0-9][0-9].json"))


class TestSpecificationExamples:
    def test_all_nineteen_examples_are_present(self) -> None:
        """Every example of section 10 was extracted into a fixture."""
        assert len(EXAMPLES) == 19

    @pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
    def test_example_loads(self, path: Path) -> None:
        """Each LIF example of the specification loads with all its elements."""
        raw = json.loads(path.read_text())
        doc = load_lif(path)
        assert len(doc.layouts) == len(raw["layouts"])
        assert len(doc.nodes) == sum(len(lay["nodes"]) for lay in raw["layouts"])
        assert len(doc.edges) == sum(len(lay["edges"]) for lay in raw["layouts"])

    def test_charging_station_is_recognised(self) -> None:
        """Example 10.13: the station whose node offers startCharging is a charger."""
        doc = load_lif(FIXTURES / "example-10-13.json")
        assert [s.station_id for s in doc.charging_stations()] == ["N_CHARGER"]

    def test_edge_into_another_layout(self) -> None:
        """Example 10.14: an edge may end at a node of another layout (a lift)."""
        doc = load_lif(FIXTURES / "example-10-14.json")
        layouts = {n.node_id: n.layout_id for n in doc.nodes.values()}
        assert any(layouts[e.start_node_id] != layouts[e.end_node_id] for e in doc.edges.values())

    def test_verbatim_example_16_is_a_one_way_trap(self) -> None:
        """Section 10.16 as printed (edge NB-N2 starting at NA) strands a vehicle at NB."""
        with pytest.raises(OneWayTrapError) as exc:
            load_lif(FIXTURES / "example-10-16-verbatim.json")
        assert exc.value.element == "station"
        assert exc.value.element_id == "S01_Level_B"
        assert exc.value.json_path == "$.layouts[0].stations[1]"

    def test_data_structure_sketch_is_refused_with_its_path(self) -> None:
        """Section 8.4 has type names for values: a schema error naming the JSON path."""
        with pytest.raises(LayoutSchemaError) as exc:
            load_lif(FIXTURES / "structure-8.4.json")
        assert exc.value.json_path.startswith("$.layouts[0].")
        assert exc.value.layout_id == "string"
        assert len(exc.value.also) > 5


def _refused(doc: dict[str, Any]) -> LayoutError:
    with pytest.raises(LayoutError) as exc:
        parse_lif(text(doc), source="bad.json")
    return exc.value


class TestRefusedFiles:
    def test_not_json(self) -> None:
        """Text that is not JSON is a syntax error."""
        with pytest.raises(LayoutSyntaxError):
            parse_lif("{nodes: ", source="x")

    def test_missing_file(self, tmp_path: Path) -> None:
        """A file that cannot be read names the file."""
        with pytest.raises(LayoutSyntaxError) as exc:
            load_lif(tmp_path / "nope.json")
        assert exc.value.source.endswith("nope.json")

    def test_schema_violation_names_node_and_path(self) -> None:
        """A node without its position breaks the schema; the node and the path are named."""
        doc = square()
        del doc["layouts"][0]["nodes"][2]["nodePosition"]
        err = _refused(doc)
        assert isinstance(err, LayoutSchemaError)
        assert (err.element, err.element_id, err.layout_id) == ("node", "C", "L1")
        assert err.json_path == "$.layouts[0].nodes[2]"
        assert "nodePosition" in err.reason

    def test_wrong_type_is_a_schema_violation(self) -> None:
        """maxSpeed as text breaks the schema at that field."""
        doc = square()
        doc["layouts"][0]["edges"][0]["vehicleTypeEdgeProperties"][0]["maxSpeed"] = "fast"
        err = _refused(doc)
        assert isinstance(err, LayoutSchemaError)
        assert err.element_id == "A-B"
        assert err.json_path == "$.layouts[0].edges[0].vehicleTypeEdgeProperties[0].maxSpeed"

    def test_dangling_edge(self) -> None:
        """An edge to a node no layout has is refused, naming the edge and the field."""
        doc = square()
        doc["layouts"][0]["edges"].append(edge("C", "Z", eid="C-Z"))
        err = _refused(doc)
        assert isinstance(err, DanglingReferenceError)
        assert (err.element, err.element_id) == ("edge", "C-Z")
        assert err.json_path == "$.layouts[0].edges[8].endNodeId"
        assert "'Z'" in err.reason

    def test_edge_must_start_in_its_own_layout(self) -> None:
        """The start node of an edge must be in the edge's layout (LIF 8.3.8)."""
        doc = square()
        doc["layouts"][0]["edges"].append(edge("Q", "A", eid="Q-A"))
        err = _refused(doc)
        assert isinstance(err, DanglingReferenceError)
        assert err.json_path.endswith(".startNodeId")

    @pytest.mark.parametrize(
        ("kind", "mutate"),
        [
            ("node", lambda d: d["layouts"][0]["nodes"].append(node("A", 5, 5))),
            ("edge", lambda d: d["layouts"][0]["edges"].append(edge("A", "C", eid="A-B"))),
            ("station", lambda d: d["layouts"][0]["stations"].append(station("SA", "B"))),
            ("layout", lambda d: d["layouts"].append(copy.deepcopy(d["layouts"][0]))),
        ],
    )
    def test_duplicate_ids(self, kind: str, mutate: Any) -> None:
        """Two nodes, edges, stations or layouts with one id are refused (LIF 8.2)."""
        doc = square()
        mutate(doc)
        err = _refused(doc)
        assert isinstance(err, DuplicateIdError)
        assert err.element == kind
        assert "first defined at" in err.reason

    def test_station_with_missing_node(self) -> None:
        """A station whose interaction node does not exist is refused."""
        doc = square()
        doc["layouts"][0]["stations"].append(station("SX", "A", "X"))
        err = _refused(doc)
        assert isinstance(err, DanglingReferenceError)
        assert (err.element, err.element_id) == ("station", "SX")
        assert err.json_path == "$.layouts[0].stations[2].interactionNodeIds[1]"

    def test_station_without_nodes(self) -> None:
        """A station must name at least one interaction node."""
        doc = square()
        doc["layouts"][0]["stations"].append(station("SX"))
        assert isinstance(_refused(doc), InvalidElementError)

    def test_unreachable_station(self) -> None:
        """A station on an island no edge reaches is refused for that vehicle type."""
        doc = square()
        lay = doc["layouts"][0]
        lay["nodes"] += [node("I", 50, 50), node("J", 60, 50)]
        lay["edges"] += two_way("I", "J")
        lay["stations"].append(station("SI", "I"))
        err = _refused(doc)
        assert isinstance(err, UnreachableStationError)
        assert (err.element, err.element_id) == ("station", "SI")
        assert "'bot'" in err.reason

    def test_one_way_trap(self) -> None:
        """A station reached by a one-way edge with no way back is a trap."""
        doc = square()
        lay = doc["layouts"][0]
        lay["nodes"].append(node("T", 20, 0))
        lay["edges"].append(edge("B", "T"))
        lay["stations"].append(station("ST", "T"))
        err = _refused(doc)
        assert isinstance(err, OneWayTrapError)
        assert err.element_id == "ST"
        assert err.json_path == "$.layouts[0].stations[2]"

    def test_one_way_loop_is_fine(self) -> None:
        """A one-way ring is strongly connected: every station on it can be left."""
        nodes = [node("A", 0, 0), node("B", 10, 0), node("C", 10, 10)]
        edges = [edge("A", "B"), edge("B", "C"), edge("C", "A")]
        doc = parse_lif(text(document(nodes, edges, [station("S1", "A"), station("S2", "C")])))
        assert len(doc.edges) == 3

    def test_duplicate_vehicle_type_properties(self) -> None:
        """One set of properties per vehicle type per edge (LIF 8.3.9)."""
        doc = square()
        props = doc["layouts"][0]["edges"][0]["vehicleTypeEdgeProperties"]
        props.append(dict(props[0]))
        err = _refused(doc)
        assert isinstance(err, DuplicateIdError)
        assert err.element_id == "A-B"

    def test_trajectory_with_wrong_knot_count(self) -> None:
        """A NURBS whose knot vector does not fit its control points is refused."""
        doc = square()
        traj = {
            "degree": 2,
            "knotVector": [0, 0, 1, 1],
            "controlPoints": [{"x": 0, "y": 0}, {"x": 5, "y": 3}, {"x": 10, "y": 0}],
        }
        doc["layouts"][0]["edges"][0]["vehicleTypeEdgeProperties"][0]["trajectory"] = traj
        err = _refused(doc)
        assert isinstance(err, InvalidElementError)
        assert err.json_path.endswith(".trajectory")
        assert "knotVector" in err.reason

    def test_every_problem_is_reported(self) -> None:
        """Further problems of the same file ride along in ``also``, in file order."""
        doc = square()
        doc["layouts"][0]["edges"] += [edge("A", "X", eid="A-X"), edge("B", "Y", eid="B-Y")]
        err = _refused(doc)
        assert err.element_id == "A-X"
        assert [e.element_id for e in err.also] == ["B-Y"]
        assert "and 1 more problem" in str(err)
        assert err.describe().startswith("bad.json, layout 'L1', edge 'A-X', ")

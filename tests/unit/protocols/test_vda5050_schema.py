"""fleetd's VDA 5050 messages against the normative 2.0.0 JSON schemas.

- Everything fleetd sends (orders, every instant-action builder) validates.
- Everything a standard robot may send (hand-made examples and examples generated from
  the schemas) parses; what the schema forbids is rejected as ``schema_invalid``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.errors import MessageRejected, RejectReason
from protocols.vda5050 import codec
from protocols.vda5050.base import UINT32_MAX, OrientationType
from protocols.vda5050.models import (
    Action,
    ActionParameter,
    ControlPoint,
    Edge,
    Node,
    NodePosition,
    Trajectory,
)
from protocols.vda5050.topics import Topic
from tests.unit.protocols import vda_examples as ex
from tests.unit.protocols.schema_support import (
    PROPERTY_SETTINGS,
    assert_valid,
    from_schema,
    repaired_factsheet_schema,
    require_schemas,
    validator,
    vda_schema,
)

NOW = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(autouse=True)
def _schemas_present() -> None:
    require_schemas()


def as_json(model: Any) -> dict[str, Any]:
    """What goes on the wire, parsed back into Python."""
    data: dict[str, Any] = json.loads(codec.encode(model))
    return data


def sample_order(*, with_everything: bool = True) -> Any:
    """A pickup order: entrance -> ward A, with a pick on arrival."""
    pick = codec.instant_action(
        "pick",
        blocking_type="HARD",
        params={"stationType": "floor", "loadType": "wheelchair", "height": 0.0, "lhd": True},
        description="seat the passenger",
    )
    nodes = [
        Node(
            node_id="entrance",
            sequence_id=0,
            released=True,
            actions=[],
            node_position=NodePosition(
                x=0.0,
                y=0.0,
                map_id="campus",
                theta=-math.pi / 2,
                allowed_deviation_xy=0.5,
                allowed_deviation_theta=0.3,
                map_description="ground floor",
            ),
        ),
        Node(
            node_id="ward-a",
            sequence_id=2,
            released=True,
            node_description="Ward A door",
            actions=[pick] if with_everything else [],
            node_position=NodePosition(x=60.8, y=200.3, map_id="campus"),
        ),
        Node(node_id="ward-b", sequence_id=4, released=False, actions=[]),
    ]
    edges = [
        Edge(
            edge_id="entrance-ward-a",
            sequence_id=1,
            released=True,
            start_node_id="entrance",
            end_node_id="ward-a",
            actions=[codec.instant_action("beep", blocking_type="NONE")],
            max_speed=1.2,
            max_height=2.0,
            min_height=0.1,
            orientation=0.0,
            orientation_type=OrientationType.TANGENTIAL,
            direction="straight",
            rotation_allowed=True,
            max_rotation_speed=0.5,
            length=210.0,
            trajectory=Trajectory(
                degree=1,
                knot_vector=[0.0, 0.0, 1.0, 1.0],
                control_points=[
                    ControlPoint(x=0.0, y=0.0),
                    ControlPoint(x=60.8, y=200.3, weight=1.0),
                ],
            ),
        ),
        Edge(
            edge_id="ward-a-ward-b",
            sequence_id=3,
            released=False,
            start_node_id="ward-a",
            end_node_id="ward-b",
            actions=[],
        ),
    ]
    return codec.make_order(
        17,
        "WheelCo",
        "WC-0001",
        order_id="mission-5b1e",
        order_update_id=0,
        nodes=nodes if with_everything else nodes[:1],
        edges=edges if with_everything else [],
        zone_set_id="campus-zones-3" if with_everything else None,
        now=NOW,
    )


INSTANT_BUILDERS: dict[str, Callable[[], Action]] = {
    "pause": codec.pause_action,
    "resume": codec.resume_action,
    "cancel": codec.cancel_order_action,
    "charge": codec.start_charging_action,
    "stop_charging": codec.stop_charging_action,
    "state_request": codec.state_request_action,
    "emergency_stop": codec.emergency_stop_action,
    "custom_with_params": lambda: codec.instant_action(
        "initPosition",
        params={"x": 1.5, "y": -2.0, "theta": 0.0, "mapId": "campus", "lastNodeId": "entrance"},
    ),
    "soft_blocking": lambda: codec.instant_action("logReport", blocking_type="SOFT"),
}


class TestOutgoingMessagesValidate:
    """Every message fleetd publishes validates against the published schema."""

    @pytest.mark.parametrize("full", [True, False], ids=["full", "single-node"])
    def test_order_validates(self, full: bool) -> None:
        """Orders with nodes, edges, positions, trajectories and actions are schema-valid."""
        assert_valid(vda_schema("order"), as_json(sample_order(with_everything=full)))

    def test_order_writes_both_deviation_spellings(self) -> None:
        """allowedDeviationXY (text) and allowedDeviationXy (schema) carry the same value."""
        pos = as_json(sample_order())["nodes"][0]["nodePosition"]
        assert pos["allowedDeviationXY"] == pos["allowedDeviationXy"] == 0.5

    def test_order_leaves_out_unset_optional_fields(self) -> None:
        """Optional fields fleetd did not set are absent, never null."""
        text = codec.encode(sample_order(with_everything=False)).decode()
        assert "null" not in text
        assert "zoneSetId" not in text

    @pytest.mark.parametrize("name", sorted(INSTANT_BUILDERS))
    def test_instant_action_builders_validate(self, name: str) -> None:
        """Each builder's action, sent in an instantActions message, is schema-valid."""
        msg = codec.make_instant_actions(
            3, "WheelCo", "WC-0001", [INSTANT_BUILDERS[name]()], now=NOW
        )
        data = as_json(msg)
        assert_valid(vda_schema("instantActions"), data)
        action = data["actions"][0]
        # Both spellings: the schema requires actionName, the text and robots read actionType.
        assert action["actionType"] == action["actionName"]

    def test_several_instant_actions_in_one_message(self) -> None:
        """A message may carry several actions (e.g. stop charging, then state request)."""
        actions = [codec.stop_charging_action(), codec.state_request_action()]
        data = as_json(codec.make_instant_actions(4, "WheelCo", "WC-0001", actions, now=NOW))
        assert_valid(vda_schema("instantActions"), data)
        assert [a["actionType"] for a in data["actions"]] == ["stopCharging", "stateRequest"]

    @pytest.mark.parametrize("kind", ["order", "instantActions"])
    def test_header_is_complete_and_timestamp_has_ms_and_z(self, kind: str) -> None:
        """Header carries version 2.0.0 and a UTC timestamp with milliseconds and Z."""
        msg = (
            sample_order()
            if kind == "order"
            else codec.make_instant_actions(
                5, "WheelCo", "WC-0001", [codec.pause_action()], now=NOW
            )
        )
        data = as_json(msg)
        assert data["version"] == "2.0.0"
        assert data["timestamp"] == "2024-05-01T12:00:00.123Z"
        assert TIMESTAMP.match(data["timestamp"])
        assert {"headerId", "manufacturer", "serialNumber"} <= data.keys()


def _tightened(schema: dict[str, Any], ids: set[str], uints: set[str]) -> dict[str, Any]:
    """Narrow a schema to what fleetd itself writes: non-empty ids, uint32 counters."""

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            props = node.get("properties")
            if isinstance(props, dict):
                for name, sub in props.items():
                    if name in ids:
                        sub["minLength"] = 1
                    if name in uints:
                        sub.update(minimum=0, maximum=UINT32_MAX)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


_ORDER_IDS = {"orderId", "nodeId", "edgeId", "startNodeId", "endNodeId"}
_COUNTERS = {"headerId", "orderUpdateId", "sequenceId"}


def _order_generation_schema() -> dict[str, Any]:
    return _tightened(vda_schema("order"), _ORDER_IDS, _COUNTERS)


def _instant_generation_schema() -> dict[str, Any]:
    schema = _tightened(vda_schema("instantActions"), set(), {"headerId"})
    schema["required"] = [
        "headerId",
        "timestamp",
        "version",
        "manufacturer",
        "serialNumber",
        "actions",
    ]
    return schema


class TestOutgoingRoundTrip:
    """Parsing a schema-valid command and writing it again keeps it schema-valid."""

    @PROPERTY_SETTINGS
    @given(data=st.data())
    def test_order_round_trip(self, data: st.DataObject) -> None:
        """Any order fleetd could build (per the schema) survives decode -> encode."""
        original = data.draw(from_schema(_order_generation_schema()))
        msg = codec.decode_outbound(Topic.ORDER, json.dumps(original).encode())
        assert_valid(vda_schema("order"), as_json(msg))

    @PROPERTY_SETTINGS
    @given(data=st.data())
    def test_instant_actions_round_trip(self, data: st.DataObject) -> None:
        """instantActions written with actionName (the schema's spelling) are understood."""
        original = data.draw(from_schema(_instant_generation_schema()))
        msg = codec.decode_outbound(Topic.INSTANT_ACTIONS, json.dumps(original).encode())
        out = as_json(msg)
        assert_valid(vda_schema("instantActions"), out)
        assert [a["actionType"] for a in out["actions"]] == [
            a["actionName"] for a in original["actions"]
        ]


EXAMPLES: dict[str, tuple[Topic, Callable[[], dict[str, Any]]]] = {
    "state_small": (Topic.STATE, ex.state_small),
    "state_with_route": (Topic.STATE, ex.state_with_route),
    "state_full": (Topic.STATE, ex.state_full),
    "state_line_guided_idle": (Topic.STATE, ex.state_line_guided_idle),
    "state_with_vendor_extras": (Topic.STATE, ex.state_with_vendor_extras),
    "connection_online": (Topic.CONNECTION, ex.connection),
    "connection_broken": (Topic.CONNECTION, lambda: ex.connection("CONNECTIONBROKEN")),
    "connection_offline": (Topic.CONNECTION, lambda: ex.connection("OFFLINE")),
    "visualization": (Topic.VISUALIZATION, ex.visualization),
    "visualization_empty": (Topic.VISUALIZATION, dict),
    "factsheet": (Topic.FACTSHEET, ex.factsheet),
}


def schema_for(topic: Topic) -> dict[str, Any]:
    """The schema an inbound message is checked against (factsheet: the repaired one)."""
    return repaired_factsheet_schema() if topic is Topic.FACTSHEET else vda_schema(topic.value)


class TestHandMadeExamples:
    """Realistic robot messages are schema-valid and parse."""

    @pytest.mark.parametrize("name", sorted(EXAMPLES))
    def test_example_is_schema_valid(self, name: str) -> None:
        """The example itself is valid, so the parse test below means something."""
        topic, make = EXAMPLES[name]
        assert_valid(schema_for(topic), make())

    @pytest.mark.parametrize("name", sorted(EXAMPLES))
    def test_example_parses(self, name: str) -> None:
        """fleetd accepts it, whatever vendor extras it carries."""
        topic, make = EXAMPLES[name]
        codec.decode(topic, ex.encode(make()))


class TestSchemaValidMessagesParse:
    """Property: every message the schema accepts, fleetd accepts."""

    @PROPERTY_SETTINGS
    @given(data=st.data())
    def test_state(self, data: st.DataObject) -> None:
        """Generated from state.schema (extra vendor keys included)."""
        msg = data.draw(from_schema(vda_schema("state")))
        codec.decode(Topic.STATE, json.dumps(msg).encode())

    @PROPERTY_SETTINGS
    @given(data=st.data())
    def test_connection(self, data: st.DataObject) -> None:
        """Generated from connection.schema."""
        msg = data.draw(from_schema(vda_schema("connection")))
        codec.decode(Topic.CONNECTION, json.dumps(msg).encode())

    @PROPERTY_SETTINGS
    @given(data=st.data())
    def test_visualization(self, data: st.DataObject) -> None:
        """Generated from visualization.schema (everything optional)."""
        msg = data.draw(from_schema(vda_schema("visualization")))
        codec.decode(Topic.VISUALIZATION, json.dumps(msg).encode())

    @PROPERTY_SETTINGS
    @given(data=st.data())
    def test_factsheet(self, data: st.DataObject) -> None:
        """Generated from factsheet.schema with its misplaced definitions put in place."""
        msg = data.draw(from_schema(repaired_factsheet_schema()))
        codec.decode(Topic.FACTSHEET, json.dumps(msg).encode())

    def test_published_factsheet_schema_checks_only_required_keys(self) -> None:
        """Why the repair: the published schema accepts a nonsense typeSpecification."""
        msg = ex.factsheet()
        msg["typeSpecification"] = "not an object"
        assert validator(vda_schema("factsheet")).is_valid(msg)
        assert not validator(repaired_factsheet_schema()).is_valid(msg)


def _rejected(topic: Topic, msg: Any) -> MessageRejected:
    with pytest.raises(MessageRejected) as info:
        codec.decode(topic, json.dumps(msg).encode())
    return info.value


def _required(topic: Topic) -> list[str]:
    return list(schema_for(topic)["required"])


INVALID_STATES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "wrong_operating_mode": (lambda m: m.update(operatingMode="AUTOPILOT"), "operatingMode"),
    "lowercase_enum": (lambda m: m.update(operatingMode="automatic"), "operatingMode"),
    "driving_as_string": (lambda m: m.update(driving="yes"), "driving"),
    "order_update_id_float": (lambda m: m.update(orderUpdateId=1.5), "orderUpdateId"),
    "header_id_string": (lambda m: m.update(headerId="12"), "headerId"),
    "timestamp_a_number": (lambda m: m.update(timestamp=1714564800), "timestamp"),
    "errors_not_a_list": (lambda m: m.update(errors={}), "errors"),
    "error_level_unknown": (
        lambda m: m.update(errors=[{"errorType": "x", "errorLevel": "PANIC"}]),
        "errors[0].errorLevel",
    ),
    "estop_unknown": (lambda m: m["safetyState"].update(eStop="PRESSED"), "safetyState.eStop"),
    "position_without_map": (lambda m: m["agvPosition"].pop("mapId"), "agvPosition.mapId"),
    "localization_score_above_one": (
        lambda m: m["agvPosition"].update(localizationScore=1.5),
        "agvPosition.localizationScore",
    ),
    "action_status_unknown": (
        lambda m: m["actionStates"][0].update(actionStatus="DONE"),
        "actionStates[0].actionStatus",
    ),
    "node_state_missing_released": (
        lambda m: m["nodeStates"][3].pop("released"),
        "nodeStates[3].released",
    ),
    "node_position_missing_theta": (
        lambda m: m["nodeStates"][1]["nodePosition"].pop("theta"),
        "nodeStates[1].nodePosition.theta",
    ),
    "battery_charge_missing": (
        lambda m: m["batteryState"].pop("batteryCharge"),
        "batteryState.batteryCharge",
    ),
}


class TestSchemaInvalidRejected:
    """What the schema forbids is rejected as schema_invalid, naming the field."""

    @pytest.mark.parametrize(
        ("topic", "make"),
        [
            (Topic.STATE, ex.state_small),
            (Topic.CONNECTION, ex.connection),
            (Topic.FACTSHEET, ex.factsheet),
        ],
        ids=["state", "connection", "factsheet"],
    )
    def test_each_missing_required_field(
        self, topic: Topic, make: Callable[[], dict[str, Any]]
    ) -> None:
        """Removing any one required top-level field is a schema_invalid naming it."""
        for field in _required(topic):
            msg = make()
            del msg[field]
            assert not validator(schema_for(topic)).is_valid(msg)
            exc = _rejected(topic, msg)
            assert exc.reason is RejectReason.SCHEMA_INVALID, field
            assert exc.detail.startswith(f"{field}:"), exc.detail

    @pytest.mark.parametrize("name", sorted(INVALID_STATES))
    def test_wrong_value_in_state(self, name: str) -> None:
        """Wrong enums, wrong types and out-of-range values are refused with their path."""
        mutate, path = INVALID_STATES[name]
        msg = ex.state_with_route(5)
        mutate(msg)
        assert not validator(vda_schema("state")).is_valid(msg)
        exc = _rejected(Topic.STATE, msg)
        assert exc.reason is RejectReason.SCHEMA_INVALID
        assert exc.detail.startswith(f"{path}:"), exc.detail

    def test_wrong_connection_state(self) -> None:
        """connectionState outside ONLINE/OFFLINE/CONNECTIONBROKEN is refused."""
        exc = _rejected(Topic.CONNECTION, ex.connection("DISCONNECTED"))
        assert exc.reason is RejectReason.SCHEMA_INVALID
        assert exc.detail.startswith("connectionState:")

    @pytest.mark.parametrize("payload", [b"[]", b"42", b'"state"', b"null"])
    def test_json_that_is_not_an_object(self, payload: bytes) -> None:
        """Valid JSON of the wrong shape is schema_invalid, not malformed_json."""
        with pytest.raises(MessageRejected) as info:
            codec.decode(Topic.STATE, payload)
        assert info.value.reason is RejectReason.SCHEMA_INVALID

    @PROPERTY_SETTINGS
    @given(data=st.data())
    def test_generated_state_without_a_required_field(self, data: st.DataObject) -> None:
        """Property: a schema-valid state minus any required field is rejected."""
        msg = data.draw(from_schema(vda_schema("state")))
        field = data.draw(st.sampled_from(_required(Topic.STATE)))
        del msg[field]
        exc = _rejected(Topic.STATE, msg)
        assert exc.reason is RejectReason.SCHEMA_INVALID
        assert exc.detail.startswith(f"{field}:")


class TestMalformedJson:
    """Bytes that are not JSON are malformed_json."""

    @pytest.mark.parametrize(
        "payload",
        [
            b"",
            b"{",
            b'{"headerId": 1,}',
            b"{'headerId': 1}",
            b"\xff\xfe{}",
            ex.encode(ex.state_small())[:-1],
        ],
        ids=["empty", "open-brace", "trailing-comma", "single-quotes", "not-utf8", "truncated"],
    )
    def test_malformed_json(self, payload: bytes) -> None:
        """Each is rejected as malformed_json with pydantic's parser message."""
        with pytest.raises(MessageRejected) as info:
            codec.decode(Topic.STATE, payload)
        assert info.value.reason is RejectReason.MALFORMED_JSON
        assert info.value.detail

    @pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity"])
    def test_non_finite_numbers_are_refused(self, token: bytes) -> None:
        """NaN/Infinity are not JSON; pydantic reads them, the models refuse them."""
        payload = ex.encode(ex.state_small()).replace(
            b'"batteryCharge":87.5', b'"batteryCharge":' + token
        )
        with pytest.raises(MessageRejected) as info:
            codec.decode(Topic.STATE, payload)
        assert info.value.reason is RejectReason.SCHEMA_INVALID
        assert info.value.detail.startswith("batteryState.batteryCharge:")


class TestOutgoingModelsRefuseWhatFleetdMustNotSend:
    """Guards on the outbound side, so a bug in fleetd cannot put junk on the wire."""

    def test_order_update_id_is_uint32(self) -> None:
        """orderUpdateId outside uint32 fails when the order is built."""
        with pytest.raises(ValueError, match="orderUpdateId"):
            codec.make_order(
                1, "WheelCo", "WC-1", order_id="o", order_update_id=-1, nodes=[], edges=[]
            )

    def test_empty_node_id(self) -> None:
        """An empty nodeId fails when the node is built."""
        with pytest.raises(ValueError, match="node_id"):
            Node(node_id="", sequence_id=0, released=True, actions=[])

    def test_theta_out_of_range(self) -> None:
        """Node theta outside [-pi, pi] fails (the schema's bound)."""
        with pytest.raises(ValueError, match="theta"):
            NodePosition(x=0, y=0, map_id="campus", theta=4.0)

    def test_parameter_values_keep_their_json_type(self) -> None:
        """Booleans stay booleans and numbers numbers in actionParameters."""
        params = [ActionParameter(key=k, value=v) for k, v in (("b", True), ("n", 2), ("s", "x"))]
        assert [p.value for p in params] == [True, 2, "x"]
        assert type(params[0].value) is bool

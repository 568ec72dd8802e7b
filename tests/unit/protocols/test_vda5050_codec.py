"""VDA 5050 codec: decoding semantics, identity checks, header and action builders."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest
from pydantic import BaseModel

from protocols.errors import MessageRejected, RejectReason
from protocols.vda5050 import codec, fast
from protocols.vda5050.base import ActionStatus, BlockingType, ConnectionState, OperatingMode
from protocols.vda5050.models import Connection, Factsheet, InstantActions, State, Visualization
from protocols.vda5050.topics import Topic, VdaTopic
from tests.unit.protocols import vda_examples as ex

ME = VdaTopic("WheelCo", "WC-0001", Topic.STATE)


def decode_state(msg: dict[str, object]) -> State | fast.State:
    """A state through the receive path: the fast twin when it accepts, else the model."""
    got = codec.decode(Topic.STATE, ex.encode(msg))
    assert isinstance(got, State | fast.State)
    return got


def wire_keys(obj: object) -> dict[str, object]:
    """What a decoded message holds, under wire (camelCase) names."""
    if isinstance(obj, BaseModel):
        return obj.model_dump(by_alias=True)
    out = msgspec.to_builtins(obj)
    assert isinstance(out, dict)
    return out


class TestDecode:
    """decode returns the model of the topic, with the wire's meaning intact."""

    def test_state_fields(self) -> None:
        """A state's values arrive typed: enums, floats, nested objects, UTC timestamp."""
        state = decode_state(ex.state_small())
        assert state.header_id == 1042
        assert state.timestamp == datetime(2024, 5, 1, 12, 0, 0, 120000, tzinfo=UTC)
        assert state.operating_mode is OperatingMode.AUTOMATIC
        assert state.agv_position is not None
        assert (state.agv_position.x, state.agv_position.map_id) == (123.456, "campus")
        assert state.action_states[0].action_status is ActionStatus.RUNNING
        assert state.battery_state.battery_charge == 87.5
        assert state.loads is None  # absent means "cannot tell", not "no load"

    @pytest.mark.parametrize(
        ("topic", "make", "model"),
        [
            (Topic.STATE, ex.state_small, fast.State),
            (Topic.CONNECTION, ex.connection, Connection),
            (Topic.VISUALIZATION, ex.visualization, fast.Visualization),
            (Topic.FACTSHEET, ex.factsheet, Factsheet),
        ],
    )
    def test_model_per_topic(self, topic: Topic, make: object, model: type) -> None:
        """Each inbound subtopic decodes to its own model (state and visualization: the
        fast path's twins, see protocols/vda5050/fast.py)."""
        assert callable(make)
        assert isinstance(codec.decode(topic, ex.encode(make())), model)

    @pytest.mark.parametrize("topic", [Topic.ORDER, Topic.INSTANT_ACTIONS])
    def test_fleetd_does_not_consume_commands(self, topic: Topic) -> None:
        """order/instantActions on the inbound path are unknown_topic (another master?)."""
        with pytest.raises(MessageRejected) as info:
            codec.decode(topic, b"{}")
        assert info.value.reason is RejectReason.UNKNOWN_TOPIC

    def test_vendor_extras_are_ignored(self) -> None:
        """Unknown fields at any level are dropped, not stored and not an error."""
        state = decode_state(ex.state_with_vendor_extras())
        assert "acmeDiagnostics" not in wire_keys(state)
        assert not hasattr(state, "acme_diagnostics")

    def test_paused_action_status_from_the_spec_text(self) -> None:
        """PAUSED (spec text 6.11, missing from the 2.0.0 schema enum) is accepted."""
        msg = ex.state_small()
        msg["actionStates"][0]["actionStatus"] = "PAUSED"
        assert decode_state(msg).action_states[0].action_status is ActionStatus.PAUSED

    @pytest.mark.parametrize(
        ("stamp", "expected"),
        [
            ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
            ("2024-05-01T12:00:00.123456Z", datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)),
            ("2024-05-01T14:00:00+02:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
            # Section 6.4: timestamps are UTC, so a missing offset means UTC.
            ("2024-05-01T12:00:00.12", datetime(2024, 5, 1, 12, 0, 0, 120000, tzinfo=UTC)),
        ],
    )
    def test_timestamps_are_always_aware(self, stamp: str, expected: datetime) -> None:
        """Every decoded timestamp is timezone-aware and compares as the same instant."""
        msg = ex.state_small()
        msg["timestamp"] = stamp
        got = decode_state(msg).timestamp
        assert got.tzinfo is not None
        assert got == expected

    @pytest.mark.parametrize("stamp", ["yesterday", "2024-05-01", "2024-13-01T00:00:00Z", ""])
    def test_unparseable_timestamp(self, stamp: str) -> None:
        """A timestamp that is no ISO 8601 date-time is schema_invalid."""
        msg = ex.state_small()
        msg["timestamp"] = stamp
        with pytest.raises(MessageRejected) as info:
            decode_state(msg)
        assert info.value.reason is RejectReason.SCHEMA_INVALID
        assert info.value.detail.startswith("timestamp:")

    @pytest.mark.parametrize(
        ("field", "value"),
        [("driving", "true"), ("driving", 1), ("headerId", "12"), ("orderUpdateId", 3.0)],
    )
    def test_types_are_strict(self, field: str, value: object) -> None:
        """No coercion: "true", 1 for a boolean or "12" for an integer are wrong types."""
        msg = ex.state_small()
        msg[field] = value
        with pytest.raises(MessageRejected) as info:
            decode_state(msg)
        assert info.value.reason is RejectReason.SCHEMA_INVALID

    def test_visualization_may_be_empty(self) -> None:
        """All visualization fields are optional, the header included."""
        vis = codec.decode(Topic.VISUALIZATION, b"{}")
        assert isinstance(vis, Visualization | fast.Visualization)
        assert vis.timestamp is None and vis.agv_position is None

    def test_factsheet_schema_typos_are_understood(self) -> None:
        """maxWeigth (schema) and maxWeight (text) fill the same field."""
        for key in ("maxWeigth", "maxWeight"):
            msg = ex.factsheet()
            msg["loadSpecification"]["loadSets"][0] = {"setName": "S", "loadType": "T", key: 1.5}
            fs = codec.decode(Topic.FACTSHEET, ex.encode(msg))
            assert isinstance(fs, Factsheet)
            assert fs.load_specification.load_sets is not None
            assert fs.load_specification.load_sets[0].max_weight == 1.5

    def test_detail_counts_further_errors(self) -> None:
        """The detail names the first error and how many more there are."""
        msg = ex.state_small()
        del msg["driving"], msg["errors"]
        with pytest.raises(MessageRejected) as info:
            decode_state(msg)
        assert info.value.detail == "driving: Field required [missing] (+1 more)"

    def test_detail_never_echoes_the_payload(self) -> None:
        """A huge bad value does not end up in the log line."""
        msg = ex.state_small()
        msg["operatingMode"] = "X" * 10_000
        with pytest.raises(MessageRejected) as info:
            decode_state(msg)
        assert "XXXX" not in info.value.detail
        assert len(info.value.detail) < 300

    @pytest.mark.parametrize("topic", [Topic.STATE, Topic.VISUALIZATION])
    def test_deeply_nested_payload_is_a_rejection(self, topic: Topic) -> None:
        """A vendor field nested 1,000 levels deep is refused as malformed, not a crash.

        msgspec raises RecursionError past its depth limit; that must end as an ordinary
        rejection (counted, rate-limited log) rather than a traceback per message.
        """
        msg = ex.state_small() if topic is Topic.STATE else ex.visualization()
        body = json.dumps(msg).encode()
        deep = b'{"vendorBlob":' + b'{"a":' * 1000 + b"1" + b"}" * 1000 + b"," + body[1:]
        with pytest.raises(MessageRejected) as info:
            codec.decode(topic, deep)
        assert info.value.reason is RejectReason.MALFORMED_JSON

    def test_rejection_chains_the_pydantic_error(self) -> None:
        """The original ValidationError stays available as __cause__ for debugging."""
        with pytest.raises(MessageRejected) as info:
            codec.decode(Topic.STATE, b"{}")
        assert info.value.__cause__ is not None


class TestCheckIdentity:
    """A payload must name the robot its topic names."""

    def test_matching_identity_passes(self) -> None:
        """Same manufacturer and serial: nothing happens."""
        codec.check_identity(decode_state(ex.state_small()), ME)

    @pytest.mark.parametrize(
        ("manufacturer", "serial"), [("WheelCo", "WC-0002"), ("OtherCo", "WC-0001")]
    )
    def test_mismatch_is_rejected(self, manufacturer: str, serial: str) -> None:
        """Another robot's identity on this topic is identity_mismatch, naming both."""
        msg = ex.state_small()
        msg.update(manufacturer=manufacturer, serialNumber=serial)
        with pytest.raises(MessageRejected) as info:
            codec.check_identity(decode_state(msg), ME)
        assert info.value.reason is RejectReason.IDENTITY_MISMATCH
        assert f"{manufacturer}/{serial}" in info.value.detail
        assert "WheelCo/WC-0001" in info.value.detail

    def test_visualization_without_header_passes(self) -> None:
        """A visualization that leaves the identity out is judged by its topic alone."""
        vis = codec.decode(Topic.VISUALIZATION, b'{"velocity": {"vx": 1}}')
        codec.check_identity(vis, VdaTopic("WheelCo", "WC-0001", Topic.VISUALIZATION))

    def test_visualization_with_wrong_serial_is_rejected(self) -> None:
        """When it does carry an identity, it must match."""
        vis = codec.decode(Topic.VISUALIZATION, b'{"serialNumber": "WC-9"}')
        with pytest.raises(MessageRejected) as info:
            codec.check_identity(vis, VdaTopic("WheelCo", "WC-0001", Topic.VISUALIZATION))
        assert info.value.reason is RejectReason.IDENTITY_MISMATCH


class TestHeaders:
    """Headers fleetd writes."""

    def test_make_header(self) -> None:
        """Wire names, version 2.0.0, UTC timestamp with milliseconds and Z."""
        now = datetime(2024, 5, 1, 14, 0, 0, 987654, tzinfo=timezone(timedelta(hours=2)))
        assert codec.make_header(7, "WheelCo", "WC-1", now=now) == {
            "headerId": 7,
            "timestamp": "2024-05-01T12:00:00.987Z",
            "version": "2.0.0",
            "manufacturer": "WheelCo",
            "serialNumber": "WC-1",
        }

    def test_make_header_defaults_to_now(self) -> None:
        """Without ``now`` the timestamp is the current time."""
        before = datetime.now(UTC) - timedelta(seconds=1)
        stamp = codec.make_header(1, "a", "b")["timestamp"]
        assert before <= datetime.fromisoformat(stamp) <= datetime.now(UTC)

    def test_header_fields_update_a_prepared_order(self) -> None:
        """header_fields fills an order built earlier (model_copy does not validate)."""
        order = codec.make_order(0, "x", "y", order_id="o-1", order_update_id=0, nodes=[], edges=[])
        now = datetime(2024, 5, 1, 12, 0, 0, 123999, tzinfo=UTC)
        sent = order.model_copy(update=codec.header_fields(41, "WheelCo", "WC-1", now=now))
        wire = json.loads(codec.encode(sent))
        assert wire["headerId"] == 41
        assert wire["serialNumber"] == "WC-1"
        assert wire["timestamp"] == "2024-05-01T12:00:00.123Z"


class TestInstantActionBuilders:
    """Each operator command maps to the documented instant action."""

    @pytest.mark.parametrize(
        ("build", "action_type", "blocking"),
        [
            (codec.pause_action, "startPause", BlockingType.HARD),
            (codec.resume_action, "stopPause", BlockingType.HARD),
            (codec.cancel_order_action, "cancelOrder", BlockingType.HARD),
            (codec.start_charging_action, "startCharging", BlockingType.HARD),
            (codec.stop_charging_action, "stopCharging", BlockingType.HARD),
            (codec.state_request_action, "stateRequest", BlockingType.NONE),
            (codec.emergency_stop_action, "startPause", BlockingType.HARD),
        ],
    )
    def test_mapping(self, build: object, action_type: str, blocking: BlockingType) -> None:
        """actionType and blockingType as documented in docs/protocols/vda5050.md."""
        assert callable(build)
        action = build()
        assert (action.action_type, action.blocking_type) == (action_type, blocking)

    def test_action_ids_are_fresh_uuids(self) -> None:
        """Without an id, each action gets its own UUID (to match its actionState)."""
        a, b = codec.pause_action(), codec.pause_action()
        assert a.action_id != b.action_id
        uuid.UUID(a.action_id)

    def test_given_action_id_is_kept(self) -> None:
        """A caller's correlation id becomes the actionId."""
        assert codec.cancel_order_action(action_id="corr-1").action_id == "corr-1"

    def test_emergency_stop_is_marked(self) -> None:
        """The e-stop pause says so in actionDescription, for the robot's log."""
        assert codec.emergency_stop_action().action_description == "fleetd emergency stop"

    def test_params_become_key_value_pairs(self) -> None:
        """Parameters follow section 8.2: [{"key": ..., "value": ...}]."""
        action = codec.instant_action("initPosition", params={"x": 1.5, "mapId": "campus"})
        wire = json.loads(codec.encode(action))
        assert wire["actionParameters"] == [
            {"key": "x", "value": 1.5},
            {"key": "mapId", "value": "campus"},
        ]

    def test_unknown_blocking_type_is_refused(self) -> None:
        """blocking_type must be NONE, SOFT or HARD."""
        with pytest.raises(ValueError, match="MEDIUM"):
            codec.instant_action("x", blocking_type="MEDIUM")

    def test_instant_actions_decode_like_a_robot(self) -> None:
        """What fleetd sends, a robot (or the simulator) reads back unchanged."""
        sent = codec.make_instant_actions(
            9, "WheelCo", "WC-1", [codec.pause_action(action_id="p1")]
        )
        got = codec.decode_outbound(Topic.INSTANT_ACTIONS, codec.encode(sent))
        assert isinstance(got, InstantActions)
        assert got.actions == sent.actions
        assert got.header_id == 9


class TestConnection:
    """The connection topic's three states."""

    @pytest.mark.parametrize("state", list(ConnectionState))
    def test_states(self, state: ConnectionState) -> None:
        """ONLINE, OFFLINE and CONNECTIONBROKEN all decode."""
        msg = codec.decode(Topic.CONNECTION, ex.encode(ex.connection(state.value)))
        assert isinstance(msg, Connection)
        assert msg.connection_state is state

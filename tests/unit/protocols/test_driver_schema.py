"""The driver protocol against its own JSON schemas (generated from the pydantic models).

- What fleetd sends (offer, command) validates against the serialisation schema.
- Every message the validation schema admits parses (property-based); what it forbids
  is rejected as schema_invalid.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from protocols.driver import codec
from protocols.driver.models import (
    CommandAck,
    CommandType,
    DriverCommand,
    DriverConnection,
    DriverStatus,
    JobOffer,
    OfferResponse,
    Place,
    Priority,
    TripProgress,
)
from protocols.driver.topics import DriverTopicName
from protocols.errors import MessageRejected, RejectReason
from tests.unit.protocols import driver_examples as ex
from tests.unit.protocols.schema_support import (
    PROPERTY_SETTINGS,
    assert_valid,
    from_schema,
    validator,
)

NOW = datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)

INBOUND: dict[DriverTopicName, type[BaseModel]] = {
    DriverTopicName.CONNECTION: DriverConnection,
    DriverTopicName.STATUS: DriverStatus,
    DriverTopicName.OFFER_RESPONSE: OfferResponse,
    DriverTopicName.TRIP: TripProgress,
    DriverTopicName.COMMAND_ACK: CommandAck,
}


def input_schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(by_alias=True, mode="validation")


def output_schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(by_alias=True, mode="serialization")


def sample_offer(**overrides: Any) -> JobOffer:
    args: dict[str, Any] = {
        "offer_id": "offer-77",
        "mission_id": "5b1e0c1a-7a52-4e55-9f4c-2f8d0a4f9e11",
        "pickup": Place(name="Main Entrance", lat=52.5201, lon=13.4052),
        "dropoff": Place(name="Radiology", lat=52.5209, lon=13.4095),
        "expires_at": NOW + timedelta(seconds=60),
        "priority": Priority.URGENT,
        "requested_pickup_at": NOW + timedelta(minutes=15),
        "notes": "oxygen bottle",
        "now": NOW,
    }
    args.update(overrides)
    return codec.make_offer(40, "drv-anna", **args)


class TestOutgoingMessagesValidate:
    """offer and command, as fleetd writes them, match the published shape."""

    @pytest.mark.parametrize("full", [True, False], ids=["full", "minimal"])
    def test_offer(self, full: bool) -> None:
        """An offer validates; optional fields left unset are absent, never null."""
        offer = sample_offer() if full else sample_offer(requested_pickup_at=None, notes=None)
        wire = json.loads(codec.encode(offer))
        assert_valid(output_schema(JobOffer), wire)
        assert wire["expiresAt"] == "2024-05-01T12:01:00.250Z"
        if not full:
            assert "requestedPickupAt" not in wire and "notes" not in wire

    @pytest.mark.parametrize("kind", list(CommandType))
    def test_every_command(self, kind: CommandType) -> None:
        """Each command kind validates and carries its correlation id."""
        cmd = codec.make_command(41, "drv-anna", kind, correlation_id="c0ffee00", now=NOW)
        wire = json.loads(codec.encode(cmd))
        assert_valid(output_schema(DriverCommand), wire)
        assert (wire["command"], wire["correlationId"]) == (kind.value, "c0ffee00")
        assert wire["version"] == "1.0" and wire["timestamp"] == "2024-05-01T12:00:00.250Z"

    def test_maintenance_off(self) -> None:
        """maintenance with enabled=false ends maintenance."""
        cmd = codec.make_command(
            1, "drv-anna", CommandType.MAINTENANCE, correlation_id="m1", enabled=False
        )
        assert json.loads(codec.encode(cmd))["enabled"] is False

    @pytest.mark.parametrize(
        "bad",
        [
            {"expires_at": datetime(2024, 5, 1, 12, 1)},  # naive: ambiguous on a phone
            {"pickup": {"name": "", "lat": 52.5, "lon": 13.4}},
            {"offer_id": "has space"},
            {"notes": "x" * 1001},
        ],
    )
    def test_offer_guards(self, bad: dict[str, Any]) -> None:
        """fleetd cannot build an offer the app would have to reject."""
        with pytest.raises(ValueError, match="validation error"):
            sample_offer(**bad)


EXAMPLES: dict[str, tuple[DriverTopicName, Callable[[], dict[str, Any]]]] = {
    "connection_online": (DriverTopicName.CONNECTION, ex.connection),
    "connection_broken": (DriverTopicName.CONNECTION, lambda: ex.connection("CONNECTIONBROKEN")),
    "connection_offline": (DriverTopicName.CONNECTION, lambda: ex.connection("OFFLINE")),
    "status": (DriverTopicName.STATUS, ex.status),
    "status_without_fix": (DriverTopicName.STATUS, ex.status_without_fix),
    "offer_accept": (DriverTopicName.OFFER_RESPONSE, ex.offer_response),
    "offer_decline": (DriverTopicName.OFFER_RESPONSE, lambda: ex.offer_response("decline")),
    "trip_picked_up": (DriverTopicName.TRIP, ex.trip),
    "trip_problem": (DriverTopicName.TRIP, lambda: ex.trip("problem")),
    "ack_accepted": (DriverTopicName.COMMAND_ACK, ex.command_ack),
    "ack_rejected": (DriverTopicName.COMMAND_ACK, lambda: ex.command_ack("rejected")),
}


class TestHandMadeExamples:
    """The documented examples are schema-valid and parse."""

    @pytest.mark.parametrize("name", sorted(EXAMPLES))
    def test_example(self, name: str) -> None:
        """Valid against the model's schema, and decoded without complaint."""
        topic, make = EXAMPLES[name]
        assert_valid(input_schema(INBOUND[topic]), make())
        codec.decode(topic, ex.encode(make()))

    def test_outbound_examples_parse(self) -> None:
        """The documented offer and command examples are what the app can read."""
        assert isinstance(
            codec.decode_outbound(DriverTopicName.OFFER, ex.encode(ex.offer())), JobOffer
        )
        cmd = codec.decode_outbound(DriverTopicName.COMMAND, ex.encode(ex.command()))
        assert isinstance(cmd, DriverCommand)


class TestSchemaValidMessagesParse:
    """Property: every message the validation schema admits, fleetd accepts."""

    @pytest.mark.parametrize("topic", list(INBOUND), ids=[t.value for t in INBOUND])
    @PROPERTY_SETTINGS
    @given(data=st.data())
    def test_inbound(self, topic: DriverTopicName, data: st.DataObject) -> None:
        """Generated from the model's JSON schema (extra keys included)."""
        msg = data.draw(from_schema(input_schema(INBOUND[topic])))
        codec.decode(topic, json.dumps(msg).encode())

    @pytest.mark.parametrize(
        ("topic", "model"),
        [(DriverTopicName.OFFER, JobOffer), (DriverTopicName.COMMAND, DriverCommand)],
        ids=["offer", "command"],
    )
    @PROPERTY_SETTINGS
    @given(data=st.data())
    def test_outbound_round_trip(
        self, topic: DriverTopicName, model: type[BaseModel], data: st.DataObject
    ) -> None:
        """Any valid offer/command survives decode -> encode and stays valid."""
        msg = data.draw(from_schema(input_schema(model)))
        decoded = codec.decode_outbound(topic, json.dumps(msg).encode())
        assert_valid(output_schema(model), json.loads(codec.encode(decoded)))


INVALID: dict[str, tuple[DriverTopicName, Callable[[dict[str, Any]], None], str]] = {
    "lat_out_of_range": (DriverTopicName.STATUS, lambda m: m.update(lat=91.0), "lat"),
    "lon_out_of_range": (DriverTopicName.STATUS, lambda m: m.update(lon=-180.5), "lon"),
    "battery_over_100": (
        DriverTopicName.STATUS,
        lambda m: m.update(phoneBatteryPct=101),
        "phoneBatteryPct",
    ),
    "negative_speed": (DriverTopicName.STATUS, lambda m: m.update(speedMps=-1), "speedMps"),
    "heading_over_360": (DriverTopicName.STATUS, lambda m: m.update(headingDeg=361), "headingDeg"),
    "lat_without_lon": (DriverTopicName.STATUS, lambda m: m.pop("lon"), "(message)"),
    "lon_without_lat": (DriverTopicName.TRIP, lambda m: m.update(lat=None), "(message)"),
    "unknown_availability": (
        DriverTopicName.STATUS,
        lambda m: m.update(availability="lunch"),
        "availability",
    ),
    "availability_uppercase": (
        DriverTopicName.STATUS,
        lambda m: m.update(availability="ONLINE"),
        "availability",
    ),
    "missing_availability": (
        DriverTopicName.STATUS,
        lambda m: m.pop("availability"),
        "availability",
    ),
    "driver_id_too_long": (
        DriverTopicName.STATUS,
        lambda m: m.update(driverId="d" * 65),
        "driverId",
    ),
    "driver_id_with_slash": (
        DriverTopicName.STATUS,
        lambda m: m.update(driverId="a/b"),
        "driverId",
    ),
    "version_2": (DriverTopicName.STATUS, lambda m: m.update(version="2.0"), "version"),
    "naive_timestamp": (
        DriverTopicName.STATUS,
        lambda m: m.update(timestamp="2024-05-01T12:00:00"),
        "timestamp",
    ),
    "negative_header_id": (DriverTopicName.STATUS, lambda m: m.update(headerId=-1), "headerId"),
    "header_id_as_string": (DriverTopicName.STATUS, lambda m: m.update(headerId="1"), "headerId"),
    "unknown_decision": (
        DriverTopicName.OFFER_RESPONSE,
        lambda m: m.update(decision="maybe"),
        "decision",
    ),
    "reason_too_long": (
        DriverTopicName.OFFER_RESPONSE,
        lambda m: m.update(reason="r" * 201),
        "reason",
    ),
    "unknown_trip_event": (DriverTopicName.TRIP, lambda m: m.update(event="lost"), "event"),
    "note_too_long": (DriverTopicName.TRIP, lambda m: m.update(note="n" * 1001), "note"),
    "missing_mission": (DriverTopicName.TRIP, lambda m: m.pop("missionId"), "missionId"),
    "unknown_ack_result": (DriverTopicName.COMMAND_ACK, lambda m: m.update(result="ok"), "result"),
    "unknown_connection_state": (
        DriverTopicName.CONNECTION,
        lambda m: m.update(connectionState="AWAY"),
        "connectionState",
    ),
}

_MAKERS: dict[DriverTopicName, Callable[[], dict[str, Any]]] = {
    DriverTopicName.CONNECTION: ex.connection,
    DriverTopicName.STATUS: ex.status,
    DriverTopicName.OFFER_RESPONSE: ex.offer_response,
    DriverTopicName.TRIP: ex.trip,
    DriverTopicName.COMMAND_ACK: ex.command_ack,
}


class TestSchemaInvalidRejected:
    """What the schema forbids is schema_invalid, naming the field."""

    @pytest.mark.parametrize("name", sorted(INVALID))
    def test_invalid(self, name: str) -> None:
        """The mutated example is invalid for the schema and rejected by decode."""
        topic, mutate, path = INVALID[name]
        msg = _MAKERS[topic]()
        mutate(msg)
        if name != "naive_timestamp":  # jsonschema here has no date-time format checker
            assert not validator(input_schema(INBOUND[topic])).is_valid(msg)
        with pytest.raises(MessageRejected) as info:
            codec.decode(topic, ex.encode(msg))
        # Another protocol version is told apart from a broken message.
        expected = (
            RejectReason.VERSION_MISMATCH if path == "version" else RejectReason.SCHEMA_INVALID
        )
        assert info.value.reason is expected
        assert info.value.detail.startswith(f"{path}:"), info.value.detail

    @pytest.mark.parametrize("topic", list(INBOUND), ids=[t.value for t in INBOUND])
    def test_each_missing_required_field(self, topic: DriverTopicName) -> None:
        """Removing any required field is schema_invalid naming it."""
        for field in input_schema(INBOUND[topic])["required"]:
            msg = _MAKERS[topic]()
            del msg[field]
            with pytest.raises(MessageRejected) as info:
                codec.decode(topic, ex.encode(msg))
            assert info.value.reason is RejectReason.SCHEMA_INVALID
            assert info.value.detail.startswith(f"{field}:")

    @pytest.mark.parametrize("payload", [b"", b"{", b"\x00", b'{"headerId":1,}'])
    def test_malformed_json(self, payload: bytes) -> None:
        """Bytes that are not JSON are malformed_json."""
        with pytest.raises(MessageRejected) as info:
            codec.decode(DriverTopicName.STATUS, payload)
        assert info.value.reason is RejectReason.MALFORMED_JSON

"""Driver-protocol codec: decoding semantics, identity, builders."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from protocols.driver import codec
from protocols.driver.models import (
    Availability,
    CommandType,
    Decision,
    DriverStatus,
    JobOffer,
    Place,
    TripEventKind,
    TripProgress,
)
from protocols.driver.topics import DriverTopic, DriverTopicName
from protocols.errors import MessageRejected, RejectReason
from tests.unit.protocols import driver_examples as ex


def decode(topic: DriverTopicName, msg: dict[str, object]) -> object:
    return codec.decode(topic, ex.encode(msg))


class TestDecode:
    """decode returns typed messages."""

    def test_status(self) -> None:
        """A heartbeat's values arrive typed and in the documented units."""
        status = decode(DriverTopicName.STATUS, ex.status())
        assert isinstance(status, DriverStatus)
        assert status.availability is Availability.BUSY
        assert (status.lat, status.lon, status.accuracy_m) == (52.52011, 13.40498, 6.5)
        assert status.phone_battery_pct == 64.0
        assert status.timestamp == datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)

    def test_status_without_fix(self) -> None:
        """No position at all is a valid heartbeat: position unknown."""
        status = decode(DriverTopicName.STATUS, ex.status_without_fix())
        assert isinstance(status, DriverStatus)
        assert status.lat is None and status.lon is None

    def test_trip_problem(self) -> None:
        """A problem report carries its note."""
        trip = decode(DriverTopicName.TRIP, ex.trip("problem"))
        assert isinstance(trip, TripProgress)
        assert trip.event is TripEventKind.PROBLEM
        assert trip.note == "passenger not at the pickup point"

    def test_minor_version_is_accepted(self) -> None:
        """An app speaking 1.4 talks to this fleetd; its new fields are ignored."""
        msg = ex.status()
        msg.update(version="1.4", newFieldFromTheFuture={"x": 1})
        assert isinstance(decode(DriverTopicName.STATUS, msg), DriverStatus)

    @pytest.mark.parametrize("topic", [DriverTopicName.OFFER, DriverTopicName.COMMAND])
    def test_fleetd_does_not_consume_its_own_messages(self, topic: DriverTopicName) -> None:
        """offer/command on the inbound path are unknown_topic."""
        with pytest.raises(MessageRejected) as info:
            codec.decode(topic, b"{}")
        assert info.value.reason is RejectReason.UNKNOWN_TOPIC

    @pytest.mark.parametrize(
        "topic", [DriverTopicName.STATUS, DriverTopicName.TRIP, DriverTopicName.CONNECTION]
    )
    def test_decode_outbound_refuses_inbound_topics(self, topic: DriverTopicName) -> None:
        """decode_outbound is for offer/command only."""
        with pytest.raises(MessageRejected) as info:
            codec.decode_outbound(topic, b"{}")
        assert info.value.reason is RejectReason.UNKNOWN_TOPIC


class TestCheckIdentity:
    """The payload's driverId must be the topic's."""

    def test_match(self) -> None:
        """Same driver: nothing happens."""
        msg = codec.decode(DriverTopicName.STATUS, ex.encode(ex.status()))
        codec.check_identity(msg, DriverTopic("drv-anna", DriverTopicName.STATUS))

    def test_mismatch(self) -> None:
        """A message for another driver's topic is identity_mismatch, naming both."""
        msg = codec.decode(DriverTopicName.STATUS, ex.encode(ex.status()))
        with pytest.raises(MessageRejected) as info:
            codec.check_identity(msg, DriverTopic("drv-bob", DriverTopicName.STATUS))
        assert info.value.reason is RejectReason.IDENTITY_MISMATCH
        assert "drv-anna" in info.value.detail and "drv-bob" in info.value.detail


class TestBuilders:
    """Headers, offers and commands fleetd sends."""

    def test_make_header(self) -> None:
        """Wire names, version 1.0, UTC timestamp with milliseconds and Z."""
        now = datetime(2024, 5, 1, 12, 0, 0, 999999, tzinfo=UTC)
        assert codec.make_header(3, "drv-anna", now=now) == {
            "headerId": 3,
            "timestamp": "2024-05-01T12:00:00.999Z",
            "version": "1.0",
            "driverId": "drv-anna",
        }

    def test_offer_round_trip(self) -> None:
        """The app reads back exactly the offer fleetd built."""
        now = datetime(2024, 5, 1, 12, tzinfo=UTC)
        offer = codec.make_offer(
            1,
            "drv-anna",
            offer_id="o-1",
            mission_id="m-1",
            pickup=Place(name="A", lat=52.5, lon=13.4),
            dropoff=Place(name="B", lat=52.6, lon=13.5),
            expires_at=now + timedelta(seconds=45),
            now=now,
        )
        got = codec.decode_outbound(DriverTopicName.OFFER, codec.encode(offer))
        assert isinstance(got, JobOffer)
        assert got == offer

    def test_offer_fills_header_by_model_copy(self) -> None:
        """A prepared offer gets its header late (the commander does this)."""
        now = datetime(2024, 5, 1, 12, tzinfo=UTC)
        offer = codec.make_offer(
            0,
            "placeholder",
            offer_id="o-1",
            mission_id="m-1",
            pickup=Place(name="A", lat=52.5, lon=13.4),
            dropoff=Place(name="B", lat=52.6, lon=13.5),
            expires_at=now,
            now=now,
        )
        sent = offer.model_copy(update={"header_id": 9, "driver_id": "drv-anna"})
        wire = json.loads(codec.encode(sent))
        assert (wire["headerId"], wire["driverId"]) == (9, "drv-anna")

    def test_command(self) -> None:
        """A command carries its correlation id, and defaults enabled=true."""
        cmd = codec.make_command(2, "drv-anna", CommandType.CANCEL_JOB, correlation_id="c-1")
        wire = json.loads(codec.encode(cmd))
        assert wire["command"] == "cancel_job"
        assert wire["correlationId"] == "c-1"
        assert wire["enabled"] is True

    def test_decision_values(self) -> None:
        """accept/decline are the only decisions."""
        assert {d.value for d in Decision} == {"accept", "decline"}

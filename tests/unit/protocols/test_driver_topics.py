"""Driver-protocol topics: ``{driver_prefix}/{driverId}/{topic}``."""

from __future__ import annotations

import pytest

from protocols.driver.topics import (
    DriverTopic,
    DriverTopicName,
    parse_topic,
    subscriptions,
    topic_for,
)
from protocols.errors import MessageRejected, RejectReason

PREFIX = "fleetd/driver/v1"


class TestParseTopic:
    """parse_topic splits good topics and classifies bad ones."""

    @pytest.mark.parametrize(
        ("topic", "expected"),
        [
            ("fleetd/driver/v1/drv-anna/status", DriverTopic("drv-anna", DriverTopicName.STATUS)),
            ("fleetd/driver/v1/42/connection", DriverTopic("42", DriverTopicName.CONNECTION)),
            (
                "fleetd/driver/v1/a.b:c_d/offerResponse",
                DriverTopic("a.b:c_d", DriverTopicName.OFFER_RESPONSE),
            ),
            ("fleetd/driver/v1/x/trip", DriverTopic("x", DriverTopicName.TRIP)),
            ("fleetd/driver/v1/x/commandAck", DriverTopic("x", DriverTopicName.COMMAND_ACK)),
            ("fleetd/driver/v1/x/offer", DriverTopic("x", DriverTopicName.OFFER)),
            ("fleetd/driver/v1/x/command", DriverTopic("x", DriverTopicName.COMMAND)),
        ],
    )
    def test_good_topics(self, topic: str, expected: DriverTopic) -> None:
        """The driver id and message type come out unchanged."""
        assert parse_topic(PREFIX, topic) == expected

    @pytest.mark.parametrize(
        "topic",
        [
            "fleetd/driver/v1/status",  # no driver id
            "fleetd/driver/v1/drv-anna/status/extra",  # too many levels
            "fleetd/driver/v1/drv-anna/",  # empty message level
            "fleetd/driver/v2/drv-anna/status",  # other major version
            "fleetd/driver/v1x/drv-anna/status",
            "fleetd/driver/drv-anna/status",
            "fleetd/driver/v1//status",  # empty driver id
            "fleetd/driver/v1/+/status",  # wildcards
            "fleetd/driver/v1/#/status",
            "fleetd/driver/v1/drv anna/status",  # outside the id alphabet
            "fleetd/driver/v1/" + "d" * 65 + "/status",  # id too long
            "",
        ],
    )
    def test_bad_topics(self, topic: str) -> None:
        """Wrong shape or a driver id outside [A-Za-z0-9_.:-]{1,64} is bad_topic."""
        with pytest.raises(MessageRejected) as info:
            parse_topic(PREFIX, topic)
        assert info.value.reason is RejectReason.BAD_TOPIC

    @pytest.mark.parametrize("name", ["Status", "heartbeat", "offer_response", "state"])
    def test_unknown_message(self, name: str) -> None:
        """A last level that names no message is unknown_topic."""
        with pytest.raises(MessageRejected) as info:
            parse_topic(PREFIX, f"{PREFIX}/drv-anna/{name}")
        assert info.value.reason is RejectReason.UNKNOWN_TOPIC


class TestTopicFor:
    """topic_for builds what parse_topic reads back."""

    @pytest.mark.parametrize("name", list(DriverTopicName))
    def test_round_trip(self, name: DriverTopicName) -> None:
        """Every message type survives topic_for -> parse_topic."""
        assert parse_topic(PREFIX, topic_for(PREFIX, "drv-anna", name)) == DriverTopic(
            "drv-anna", name
        )

    @pytest.mark.parametrize("driver_id", ["", "a/b", "+", "#", "with space", "d" * 65])
    def test_refuses_bad_driver_ids(self, driver_id: str) -> None:
        """A driver id that could not round-trip is a programming error."""
        with pytest.raises(ValueError, match="driver id"):
            topic_for(PREFIX, driver_id, DriverTopicName.OFFER)


class TestSubscriptions:
    """fleetd listens to the five phone-to-fleetd messages of every driver."""

    def test_filters(self) -> None:
        """One filter per inbound message; nothing fleetd sends itself."""
        assert sorted(subscriptions(PREFIX)) == [
            "fleetd/driver/v1/+/commandAck",
            "fleetd/driver/v1/+/connection",
            "fleetd/driver/v1/+/offerResponse",
            "fleetd/driver/v1/+/status",
            "fleetd/driver/v1/+/trip",
        ]

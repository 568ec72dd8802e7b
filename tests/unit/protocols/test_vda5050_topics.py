"""VDA 5050 topic names: parsing what arrives, building what fleetd publishes."""

from __future__ import annotations

import pytest

from protocols.errors import MessageRejected, RejectReason
from protocols.vda5050.topics import Topic, VdaTopic, parse_topic, subscriptions, topic_for

PREFIX = "uagv/v2"


class TestParseTopic:
    """parse_topic splits good topics and names what is wrong with bad ones."""

    @pytest.mark.parametrize(
        ("topic", "expected"),
        [
            ("uagv/v2/WheelCo/WC-0001/state", VdaTopic("WheelCo", "WC-0001", Topic.STATE)),
            ("uagv/v2/KIT/0001/connection", VdaTopic("KIT", "0001", Topic.CONNECTION)),
            ("uagv/v2/a/b.c:d_e/factsheet", VdaTopic("a", "b.c:d_e", Topic.FACTSHEET)),
            ("uagv/v2/a/b/visualization", VdaTopic("a", "b", Topic.VISUALIZATION)),
            ("uagv/v2/a/b/order", VdaTopic("a", "b", Topic.ORDER)),
            ("uagv/v2/a/b/instantActions", VdaTopic("a", "b", Topic.INSTANT_ACTIONS)),
        ],
    )
    def test_good_topics(self, topic: str, expected: VdaTopic) -> None:
        """manufacturer, serial number and subtopic come out unchanged."""
        assert parse_topic(PREFIX, topic) == expected

    def test_multi_level_prefix(self) -> None:
        """A prefix may itself have several levels (test namespaces, cloud brokers)."""
        got = parse_topic("site1/uagv/v2", "site1/uagv/v2/WheelCo/7/state")
        assert got == VdaTopic("WheelCo", "7", Topic.STATE)

    @pytest.mark.parametrize(
        "topic",
        [
            "uagv/v2/WheelCo/state",  # too few levels
            "uagv/v2/state",
            "uagv/v2/",
            "uagv/v2",
            "uagv/v2/WheelCo/WC-1/extra/state",  # too many levels
            "uagv/v2/WheelCo/WC-1/state/",  # trailing slash = empty last level
            "uagv/v1/WheelCo/WC-1/state",  # other major version
            "UAGV/v2/WheelCo/WC-1/state",  # topics are case-sensitive
            "other/v2/WheelCo/WC-1/state",
            "uagv/v2x/WheelCo/WC-1/state",  # prefix must end at a level boundary
            "/uagv/v2/WheelCo/WC-1/state",
            "uagv/v2//WC-1/state",  # empty manufacturer
            "uagv/v2/WheelCo//state",  # empty serial
            "uagv/v2/+/WC-1/state",  # wildcards never name a real topic
            "uagv/v2/WheelCo/#/state",
            "uagv/v2/Wheel+Co/WC-1/state",
            "uagv/v2/WheelCo/WC-1/+",
            "uagv/v2/WheelCo/WC\x00/state",  # NUL is forbidden in MQTT topic names
            "",
        ],
    )
    def test_bad_topics(self, topic: str) -> None:
        """Wrong shape is bad_topic."""
        with pytest.raises(MessageRejected) as info:
            parse_topic(PREFIX, topic)
        assert info.value.reason is RejectReason.BAD_TOPIC

    @pytest.mark.parametrize(
        "topic",
        [
            "uagv/v2/WheelCo/WC-1/State",  # case matters
            "uagv/v2/WheelCo/WC-1/instantactions",
            "uagv/v2/WheelCo/WC-1/position",
        ],
    )
    def test_unknown_subtopic(self, topic: str) -> None:
        """Right shape, but no subtopic of the spec: unknown_topic."""
        with pytest.raises(MessageRejected) as info:
            parse_topic(PREFIX, topic)
        assert info.value.reason is RejectReason.UNKNOWN_TOPIC


class TestTopicFor:
    """topic_for builds what parse_topic reads back."""

    @pytest.mark.parametrize("topic", list(Topic))
    def test_round_trip(self, topic: Topic) -> None:
        """Every subtopic survives topic_for -> parse_topic."""
        name = topic_for(PREFIX, "WheelCo", "WC-0001", topic)
        assert parse_topic(PREFIX, name) == VdaTopic("WheelCo", "WC-0001", topic)

    def test_spec_example(self) -> None:
        """Section 6.3's example: uagv/v2/KIT/0001/order."""
        assert topic_for("uagv/v2", "KIT", "0001", Topic.ORDER) == "uagv/v2/KIT/0001/order"

    @pytest.mark.parametrize(
        ("manufacturer", "serial"), [("", "1"), ("a", ""), ("a/b", "1"), ("a", "+"), ("a", "#")]
    )
    def test_refuses_levels_that_cannot_round_trip(self, manufacturer: str, serial: str) -> None:
        """An identity that would change the topic's shape is a programming error."""
        with pytest.raises(ValueError, match="topic level"):
            topic_for(PREFIX, manufacturer, serial, Topic.ORDER)


class TestSubscriptions:
    """fleetd listens to the four robot-to-master subtopics of every robot."""

    def test_filters(self) -> None:
        """One single-level-wildcard filter per inbound subtopic, nothing fleetd sends."""
        assert sorted(subscriptions(PREFIX)) == [
            "uagv/v2/+/+/connection",
            "uagv/v2/+/+/factsheet",
            "uagv/v2/+/+/state",
            "uagv/v2/+/+/visualization",
        ]

    def test_filters_match_what_they_should(self) -> None:
        """Each filter's concrete topics parse to the filter's subtopic."""
        for flt in subscriptions(PREFIX):
            concrete = flt.replace("+", "X", 1).replace("+", "Y", 1)
            assert parse_topic(PREFIX, concrete).topic.value == flt.rsplit("/", 1)[1]


class TestIdentityAlphabet:
    """Identities on topic levels: length, printable, VDA 5050's serialNumber alphabet."""

    @pytest.mark.parametrize(
        "serial",
        ["WC 0001", "WC@0001", "wägen", "\x1b[31mred", "x" * 129, "tab\there"],
    )
    def test_strict_refuses_serials_outside_the_vda_alphabet(self, serial: str) -> None:
        with pytest.raises(MessageRejected) as exc:
            parse_topic(PREFIX, f"uagv/v2/acme/{serial}/state")
        assert exc.value.reason is RejectReason.BAD_TOPIC

    def test_legacy_accepts_printable_serials(self) -> None:
        """``fleet.strict_identities = false``: a legacy serial like ``WC@0001`` passes."""
        got = parse_topic(PREFIX, "uagv/v2/acme/WC@0001/state", strict=False)
        assert got.serial_number == "WC@0001"

    @pytest.mark.parametrize(
        ("manufacturer", "serial"),
        [
            ("acme", "\x1b]0;title\x07"),
            ("ac\x9bme", "r1"),
            ("acme", "a b"),
            ("acme", "r\u202e1"),
            ("m" * 129, "r1"),
        ],
    )
    def test_legacy_still_refuses_control_characters_and_long_levels(
        self, manufacturer: str, serial: str
    ) -> None:
        with pytest.raises(MessageRejected):
            parse_topic(PREFIX, f"uagv/v2/{manufacturer}/{serial}/state", strict=False)

    def test_manufacturer_is_not_held_to_the_serial_alphabet(self) -> None:
        assert parse_topic(PREFIX, "uagv/v2/Acme&Co/r1/state").manufacturer == "Acme&Co"

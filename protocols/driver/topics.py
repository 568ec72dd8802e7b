"""Driver-protocol MQTT topics: ``{driver_prefix}/{driverId}/{topic}``.

``driver_prefix`` is ``MqttSettings.driver_prefix`` (default ``fleetd/driver/v1``) and may
itself have several levels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from protocols.errors import MessageRejected, RejectReason


class DriverTopicName(StrEnum):
    CONNECTION = "connection"  # phone -> fleetd, retained, also the Last Will
    STATUS = "status"  # phone -> fleetd, heartbeat
    OFFER_RESPONSE = "offerResponse"  # phone -> fleetd
    TRIP = "trip"  # phone -> fleetd
    COMMAND_ACK = "commandAck"  # phone -> fleetd
    OFFER = "offer"  # fleetd -> phone
    COMMAND = "command"  # fleetd -> phone


#: What fleetd subscribes to; it publishes the others.
INBOUND_TOPICS: tuple[DriverTopicName, ...] = (
    DriverTopicName.CONNECTION,
    DriverTopicName.STATUS,
    DriverTopicName.OFFER_RESPONSE,
    DriverTopicName.TRIP,
    DriverTopicName.COMMAND_ACK,
)

# Same alphabet as the driverId field, so topic and payload can be compared as strings.
_DRIVER_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_TOPICS_BY_NAME = {t.value: t for t in DriverTopicName}
# Never valid in a received topic name (MQTT wildcards, NUL).
_WILDCARDS = frozenset("+#\x00")


@dataclass(frozen=True, slots=True)
class DriverTopic:
    """A parsed driver topic: whose device and which message."""

    driver_id: str
    topic: DriverTopicName


def parse_topic(prefix: str, topic: str) -> DriverTopic:
    """Split a received topic into driver id and message type.

    Raises :class:`MessageRejected`: ``bad_topic`` for another prefix, a wrong number of
    levels, or a driver id outside ``[A-Za-z0-9_.:-]{1,64}`` (which also excludes
    wildcards); ``unknown_topic`` when the last level is no driver-protocol message.
    """
    head = prefix + "/"
    if not topic.startswith(head):
        raise MessageRejected(RejectReason.BAD_TOPIC, f"not under {prefix!r}: {topic!r}")
    levels = topic[len(head) :].split("/")
    if len(levels) != 2:
        raise MessageRejected(
            RejectReason.BAD_TOPIC, f"expected {prefix}/driverId/topic, got {topic!r}"
        )
    driver_id, name = levels
    if not _DRIVER_ID.fullmatch(driver_id):
        raise MessageRejected(RejectReason.BAD_TOPIC, f"bad driver id level in {topic!r}")
    if not name or not _WILDCARDS.isdisjoint(name):
        raise MessageRejected(RejectReason.BAD_TOPIC, f"bad message level in {topic!r}")
    sub = _TOPICS_BY_NAME.get(name)
    if sub is None:
        raise MessageRejected(RejectReason.UNKNOWN_TOPIC, f"unknown driver topic {name!r}")
    return DriverTopic(driver_id, sub)


def topic_for(prefix: str, driver_id: str, topic: DriverTopicName) -> str:
    """The topic to publish ``topic`` for one driver on.

    Raises :class:`ValueError` for a driver id that :func:`parse_topic` would refuse.
    """
    if not _DRIVER_ID.fullmatch(driver_id):
        raise ValueError(f"driver id {driver_id!r} is not [A-Za-z0-9_.:-]{{1,64}}")
    return f"{prefix}/{driver_id}/{topic.value}"


def subscriptions(prefix: str) -> list[str]:
    """The topic filters fleetd subscribes to: every driver's inbound messages."""
    return [f"{prefix}/+/{t.value}" for t in INBOUND_TOPICS]

"""VDA 5050 MQTT topics: ``{interfaceName}/{majorVersion}/{manufacturer}/{serialNumber}/{topic}``.

``prefix`` is ``{interfaceName}/{majorVersion}`` (``MqttSettings.vda_prefix``, "uagv/v2").
Pure string work, called once per received message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from protocols.errors import MessageRejected, RejectReason


class Topic(StrEnum):
    """The six subtopics of section 6.5 (names are case-sensitive on the wire)."""

    ORDER = "order"
    INSTANT_ACTIONS = "instantActions"
    STATE = "state"
    VISUALIZATION = "visualization"
    CONNECTION = "connection"
    FACTSHEET = "factsheet"


#: What fleetd, as master control, receives. It publishes the other two.
INBOUND_TOPICS: tuple[Topic, ...] = (
    Topic.STATE,
    Topic.CONNECTION,
    Topic.FACTSHEET,
    Topic.VISUALIZATION,
)

# Characters that may not appear in a topic level fleetd accepts or builds: the MQTT
# wildcards (never valid in a PUBLISH topic name), the level separator and NUL
# (forbidden by MQTT in topic names).
_FORBIDDEN = frozenset("+#/\x00")
_TOPICS_BY_NAME = {t.value: t for t in Topic}

#: Longest manufacturer or serial number accepted (a topic level, a label on every page).
MAX_IDENTITY_LENGTH = 128
#: VDA 5050 2.0 §6.5 (header ``serialNumber``): "A-Z a-z 0-9 _ . : -".
VDA_SERIAL = re.compile(r"[A-Za-z0-9_.:-]+")
#: What any identity level may hold, legacy fleets included: printable characters other
#: than white space (no control characters or bidi overrides: identities end up on
#: operators' terminals and pages).
_PRINTABLE = re.compile(r"[^\x00-\x20\x7f-\xa0\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]+")


@dataclass(frozen=True, slots=True)
class VdaTopic:
    """Who a message is about and which subtopic it is on."""

    manufacturer: str
    serial_number: str
    topic: Topic


def identity_problem(manufacturer: str, serial: str, *, strict: bool = True) -> str | None:
    """Why ``manufacturer``/``serial`` cannot name a robot, or None when they can.

    Both must be 1..:data:`MAX_IDENTITY_LENGTH` printable, non-blank characters without
    ``/``, ``+``, ``#``; with ``strict`` (the default, ``fleet.strict_identities``) the
    serial number must also keep to VDA 5050's alphabet, ``A-Z a-z 0-9 _ . : -``.
    """
    for what, level in (("manufacturer", manufacturer), ("serialNumber", serial)):
        if not 0 < len(level) <= MAX_IDENTITY_LENGTH:
            return f"{what} must be 1..{MAX_IDENTITY_LENGTH} characters"
        if not _FORBIDDEN.isdisjoint(level) or _PRINTABLE.fullmatch(level) is None:
            return f"{what} holds a character no identity may hold"
    if strict and VDA_SERIAL.fullmatch(serial) is None:
        return "serialNumber outside VDA 5050's A-Z a-z 0-9 _ . : -"
    return None


def parse_topic(prefix: str, topic: str, *, strict: bool = True) -> VdaTopic:
    """Split a received topic name into manufacturer, serial number and subtopic.

    Raises :class:`MessageRejected` with ``bad_topic`` when the shape is wrong (other
    prefix, wrong number of levels, empty level, wildcard or NUL) or the identity is
    refused by :func:`identity_problem` (``strict``: VDA 5050's serialNumber alphabet),
    ``unknown_topic`` when the last level is none of the six subtopics.
    """
    head = prefix + "/"
    if not topic.startswith(head):
        raise MessageRejected(RejectReason.BAD_TOPIC, f"not under {prefix!r}: {topic!r}")
    levels = topic[len(head) :].split("/")
    if len(levels) != 3:
        raise MessageRejected(
            RejectReason.BAD_TOPIC,
            f"expected {prefix}/manufacturer/serialNumber/topic, got {topic!r}",
        )
    manufacturer, serial, name = levels
    for level in levels:
        if not level or not _FORBIDDEN.isdisjoint(level):
            raise MessageRejected(RejectReason.BAD_TOPIC, f"bad topic level in {topic!r}")
    sub = _TOPICS_BY_NAME.get(name)
    if sub is None:
        raise MessageRejected(RejectReason.UNKNOWN_TOPIC, f"unknown subtopic {name!r}")
    problem = identity_problem(manufacturer, serial, strict=strict)
    if problem is not None:
        raise MessageRejected(RejectReason.BAD_TOPIC, problem)
    return VdaTopic(manufacturer, serial, sub)


_MAJOR_LEVEL = re.compile(r"^v(?P<major>[0-9]+)$")


def major_of_prefix(prefix: str, default: int) -> int:
    """The major version a topic prefix carries (``uagv/v2`` -> 2), or ``default`` when its
    last level is not ``v<digits>`` (a site that chose another interface name scheme)."""
    match = _MAJOR_LEVEL.match(prefix.rstrip("/").rpartition("/")[2])
    return int(match["major"]) if match else default


def topic_for(prefix: str, manufacturer: str, serial: str, topic: Topic) -> str:
    """The topic name to publish ``topic`` for one robot on.

    Raises :class:`ValueError` when manufacturer or serial could not round-trip through
    :func:`parse_topic` (empty, or containing ``/``, ``+``, ``#`` or NUL): that is a
    configuration or programming error, not a bad message.
    """
    for what, level in (("manufacturer", manufacturer), ("serial", serial)):
        if not level or not _FORBIDDEN.isdisjoint(level):
            raise ValueError(f"{what} {level!r} cannot be an MQTT topic level")
    return f"{prefix}/{manufacturer}/{serial}/{topic.value}"


def subscriptions(prefix: str) -> list[str]:
    """The topic filters fleetd subscribes to: every robot's inbound subtopics."""
    return [f"{prefix}/+/+/{t.value}" for t in INBOUND_TOPICS]

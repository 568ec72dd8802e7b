"""Why an incoming vehicle message was refused, shared by the robot and the driver protocol.

The links count rejected messages by :class:`RejectReason` (a metric label) and log the
:attr:`MessageRejected.detail`; a rejected message never reaches the registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class RejectReason(StrEnum):
    """A closed set of reasons, small enough to be a Prometheus label."""

    #: Payload larger than ``mqtt.max_payload_bytes``; refused before it is parsed.
    OVERSIZED = "oversized"
    #: Not JSON at all (syntax error, truncated, not UTF-8).
    MALFORMED_JSON = "malformed_json"
    #: JSON, but not the message the topic promises (missing field, wrong type or enum).
    SCHEMA_INVALID = "schema_invalid"
    #: The topic does not have the expected shape (prefix, number of levels, wildcards).
    BAD_TOPIC = "bad_topic"
    #: Well-formed topic whose last level names no message fleetd accepts there.
    UNKNOWN_TOPIC = "unknown_topic"
    #: The payload names another vehicle than its topic (manufacturer/serialNumber, driverId).
    IDENTITY_MISMATCH = "identity_mismatch"
    #: A vehicle fleetd does not know while ``fleet.unknown_vehicles = "reject"``.
    UNKNOWN_VEHICLE = "unknown_vehicle"
    #: A position on a mapId no configured facility has (the message may still be used).
    UNKNOWN_MAP = "unknown_map"
    #: A position on a map of another facility than the one the vehicle is pinned to.
    FOREIGN_MAP = "foreign_map"
    #: Older than what fleetd already holds for that vehicle (e.g. a stale retained message).
    STALE = "stale"
    #: A ``state`` seen before, or an older one arriving late: its headerId is not above the
    #: last one taken and its timestamp not later (a duplicate, a replay, a reordering).
    REPLAYED = "replayed"
    #: The header's ``version`` is not a version of the protocol the topic promises: another
    #: major version (VDA 5050 ``9.9.9`` on ``uagv/v2``, driver ``2.0`` on ``.../v1``) or
    #: not ``Major.Minor.Patch`` (VDA 5050) / ``Major.Minor`` (driver) at all.
    VERSION_MISMATCH = "version_mismatch"


class MessageRejected(Exception):
    """An incoming message fleetd refuses; carries its reason as data (STYLE.md #10).

    ``detail`` is for the log: it names the first offending field or topic level and
    never contains the whole payload.
    """

    def __init__(self, reason: RejectReason, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else str(self.reason)


def check_payload_size(payload: bytes, max_bytes: int) -> None:
    """Refuse a payload over ``max_bytes`` before any parsing (the cheapest check first).

    Raises :class:`MessageRejected` with :attr:`RejectReason.OVERSIZED`.
    """
    if len(payload) > max_bytes:
        raise MessageRejected(RejectReason.OVERSIZED, f"{len(payload)} bytes, limit {max_bytes}")


def validate_wire(model: type[M], payload: bytes) -> M:
    """Parse a message as it comes off the wire, or raise :class:`MessageRejected`.

    The one wire rule for every protocol: strict JSON types (no "12" for 12) and the wire
    (camelCase) field names only; the Python names are for building messages in code.
    """
    try:
        return model.model_validate_json(payload, strict=True, by_alias=True, by_name=False)
    except ValidationError as exc:
        raise rejection_from(exc) from exc


def rejection_from(exc: ValidationError) -> MessageRejected:
    """Translate a pydantic error from ``model_validate_json`` into a rejection.

    pydantic reports a JSON syntax error as a single ``json_invalid`` error, so the first
    error's type tells ``malformed_json`` from ``schema_invalid`` without parsing twice.
    The detail names the first bad field (``nodeStates[2].sequenceId: ...``), never the
    input value, so a hostile payload cannot flood the log.
    """
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        return MessageRejected(RejectReason.MALFORMED_JSON, first["msg"])
    if tuple(first["loc"]) == ("version",) and first["type"] == "string_pattern_mismatch":
        # A header version outside the pattern the model allows (the driver protocol's
        # ``1.x``): another version of the protocol, told apart from a broken message.
        return MessageRejected(
            RejectReason.VERSION_MISMATCH, f"version: {first['msg']} [{first['type']}]"
        )
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return MessageRejected(
        RejectReason.SCHEMA_INVALID,
        f"{field_path(first['loc'])}: {first['msg']} [{first['type']}]{more}",
    )


def field_path(loc: Sequence[int | str]) -> str:
    """``("nodeStates", 2, "sequenceId")`` -> ``nodeStates[2].sequenceId``."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts) or "(message)"

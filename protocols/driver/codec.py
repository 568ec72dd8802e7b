"""Decode what driver phones send, encode what fleetd sends, build outgoing messages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from protocols.driver.models import (
    DRIVER_PROTOCOL_VERSION,
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
    format_timestamp,
)
from protocols.driver.topics import DriverTopic, DriverTopicName
from protocols.errors import MessageRejected, RejectReason, validate_wire

#: What a phone publishes and fleetd accepts.
InboundDriverMessage = DriverConnection | DriverStatus | OfferResponse | TripProgress | CommandAck
#: What fleetd publishes (and the app, or the simulator, decodes).
OutboundDriverMessage = JobOffer | DriverCommand

_INBOUND: dict[DriverTopicName, type[InboundDriverMessage]] = {
    DriverTopicName.CONNECTION: DriverConnection,
    DriverTopicName.STATUS: DriverStatus,
    DriverTopicName.OFFER_RESPONSE: OfferResponse,
    DriverTopicName.TRIP: TripProgress,
    DriverTopicName.COMMAND_ACK: CommandAck,
}
_OUTBOUND: dict[DriverTopicName, type[OutboundDriverMessage]] = {
    DriverTopicName.OFFER: JobOffer,
    DriverTopicName.COMMAND: DriverCommand,
}


def decode(topic: DriverTopicName, payload: bytes) -> InboundDriverMessage:
    """Parse and validate a phone's message for an inbound ``topic``.

    Raises :class:`MessageRejected`: ``unknown_topic`` for ``offer``/``command`` (fleetd
    sends those), ``malformed_json``, or ``schema_invalid`` naming the first bad field.
    """
    model = _INBOUND.get(topic)
    if model is None:
        raise MessageRejected(RejectReason.UNKNOWN_TOPIC, f"fleetd does not consume {topic!s}")
    return validate_wire(model, payload)


def decode_outbound(topic: DriverTopicName, payload: bytes) -> OutboundDriverMessage:
    """Parse an ``offer`` or ``command``, as the app does (simulator, tests)."""
    model = _OUTBOUND.get(topic)
    if model is None:
        raise MessageRejected(RejectReason.UNKNOWN_TOPIC, f"{topic!s} is not sent to drivers")
    return validate_wire(model, payload)


def check_identity(msg: InboundDriverMessage | OutboundDriverMessage, dt: DriverTopic) -> None:
    """Refuse a message whose ``driverId`` is not the one in its topic.

    Raises :class:`MessageRejected` with ``identity_mismatch``.
    """
    if msg.driver_id != dt.driver_id:
        raise MessageRejected(
            RejectReason.IDENTITY_MISMATCH,
            f"payload names driver {msg.driver_id}, topic is {dt.driver_id}",
        )


def encode(msg: BaseModel) -> bytes:
    """Serialise a message for MQTT: camelCase keys, optional fields left out."""
    return msg.model_dump_json(by_alias=True, exclude_none=True).encode()


def make_header(header_id: int, driver_id: str, *, now: datetime | None = None) -> dict[str, Any]:
    """The four header fields, keyed by wire name, for a message fleetd sends.

    ``header_id`` is per driver and per topic, incremented by the caller.
    """
    return {
        "headerId": header_id,
        "timestamp": format_timestamp(now if now is not None else datetime.now(UTC)),
        "version": DRIVER_PROTOCOL_VERSION,
        "driverId": driver_id,
    }


def make_offer(
    header_id: int,
    driver_id: str,
    *,
    offer_id: str,
    mission_id: str,
    pickup: Place,
    dropoff: Place,
    expires_at: datetime,
    priority: Priority = Priority.NORMAL,
    requested_pickup_at: datetime | None = None,
    notes: str | None = None,
    now: datetime | None = None,
) -> JobOffer:
    """An ``offer`` of ``mission_id`` to one driver, open until ``expires_at`` (aware)."""
    return JobOffer.model_validate(
        {
            **make_header(header_id, driver_id, now=now),
            "offerId": offer_id,
            "missionId": mission_id,
            "pickup": pickup,
            "dropoff": dropoff,
            "expiresAt": expires_at,
            "priority": priority,
            "requestedPickupAt": requested_pickup_at,
            "notes": notes,
        }
    )


def make_command(
    header_id: int,
    driver_id: str,
    command: CommandType,
    *,
    correlation_id: str,
    mission_id: str | None = None,
    enabled: bool = True,
    message: str | None = None,
    now: datetime | None = None,
) -> DriverCommand:
    """A ``command`` for one driver; the app answers on ``commandAck`` with ``correlation_id``."""
    return DriverCommand.model_validate(
        {
            **make_header(header_id, driver_id, now=now),
            "correlationId": correlation_id,
            "command": command,
            "missionId": mission_id,
            "enabled": enabled,
            "message": message,
        }
    )

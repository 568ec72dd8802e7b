"""Putting one command on the wire: a fresh header id, then a QoS 1 publish.

Shared by both vehicle adapters. VDA 5050 ``headerId`` (and the driver protocol's) must
increase per vehicle and topic; the counters live in Redis (``INCR``), so they keep
increasing across daemon restarts and fail-overs. Redis away or the broker away is a
``retry``, never an exception.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as aioredis
import structlog

from dispatcher.links.commands import (
    CommandReason,
    CommandResult,
    VehicleCommand,
    result,
)
from dispatcher.links.mqtt import NotConnected
from dispatcher.metrics import COMMANDS_SENT

log = structlog.get_logger(__name__)

#: header id -> (topic, payload) of the message to send.
Build = Callable[[int], tuple[str, bytes]]


class Publisher(Protocol):
    """The MQTT session (:class:`~dispatcher.links.mqtt.MqttTransport`)."""

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Hand a message to the session; raises ``NotConnected`` when it is down."""
        ...


class Outbox:
    """Numbers, publishes, counts and logs every command sent to a vehicle."""

    def __init__(self, transport: Publisher, redis: aioredis.Redis, *, key_prefix: str) -> None:
        self._transport = transport
        self._redis = redis
        self._key_prefix = key_prefix

    async def send(
        self,
        vehicle_id: uuid.UUID,
        command: VehicleCommand,
        correlation_id: str,
        header_topic: str,
        build: Build,
        *,
        qos: int = 1,
    ) -> CommandResult:
        """Take the next header id of ``header_topic``, build the message, publish it
        (``qos`` 0 for what the sender re-sends itself: see ``RobotVehicles.send_order``)."""
        try:
            header_id: int = await self._redis.incr(
                f"{self._key_prefix}header:{vehicle_id}:{header_topic}"
            )
        except aioredis.RedisError as exc:
            return finish(
                vehicle_id, command, CommandReason.STORE_DOWN, correlation_id, f"redis: {exc}"
            )
        topic, payload = build(header_id)
        try:
            self._transport.publish(topic, payload, qos=qos)
        except NotConnected as exc:
            return finish(vehicle_id, command, CommandReason.BROKER_DOWN, correlation_id, str(exc))
        return finish(
            vehicle_id,
            command,
            CommandReason.SENT,
            correlation_id,
            "sent",
            sent={"topic": topic, "header_id": header_id},
        )


def finish(
    vehicle_id: uuid.UUID,
    command: VehicleCommand,
    reason: CommandReason,
    correlation_id: str,
    detail: str,
    sent: dict[str, object] | None = None,
) -> CommandResult:
    """Count and log a command's result, and return it."""
    res = result(vehicle_id, command, reason, correlation_id, detail, sent)
    COMMANDS_SENT.labels(command.value, res.outcome.value).inc()
    log.info(
        "vehicle.command",
        vehicle_id=str(vehicle_id),
        command=command.value,
        outcome=res.outcome.value,
        reason=reason.value,
        correlation_id=correlation_id,
        detail=detail,
    )
    return res

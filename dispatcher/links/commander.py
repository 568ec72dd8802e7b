"""The one place every command to a vehicle goes through.

Operators (through the API), the dispatch engine and the charging policy all call
:class:`VehicleCommander`; nothing else publishes to a vehicle. Each command gets a
correlation id and a closed result: ``done`` (handed to the broker session for
delivery at QoS 1), ``retry`` (not sent now: broker away, vehicle offline), or
``impossible`` (unknown vehicle, command that does not apply to it). Whether the
vehicle *executed* it shows up in its next state (VDA 5050 actionStates, or the driver's
status), which is how the protocol reports it.

VDA 5050 ``headerId`` must increase per vehicle and topic. The counters live in Redis
(``INCR``), so they keep increasing across daemon restarts and fail-overs.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import redis.asyncio as aioredis
import structlog

from dispatcher.config import Settings
from dispatcher.links.mqtt import MqttTransport, NotConnected
from dispatcher.metrics import COMMANDS_SENT
from fleet.model import VehicleKind
from fleet.record import VehicleRecord
from fleet.registry import FleetRegistry
from protocols.driver import codec as driver_codec
from protocols.driver import topics as driver_topics
from protocols.driver.models import CommandType, DriverCommand, JobOffer
from protocols.vda5050 import codec as vda_codec
from protocols.vda5050 import topics as vda_topics
from protocols.vda5050.models import Action, InstantActions, Order

log = structlog.get_logger(__name__)


class CommandOutcome(StrEnum):
    DONE = "done"
    RETRY = "retry"
    IMPOSSIBLE = "impossible"


class VehicleCommand(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL_ORDER = "cancel_order"
    CHARGE = "charge"
    MAINTENANCE_ON = "maintenance_on"
    MAINTENANCE_OFF = "maintenance_off"
    EMERGENCY_STOP = "emergency_stop"
    ORDER = "order"
    OFFER = "offer"


@dataclass(frozen=True, slots=True)
class CommandResult:
    vehicle_id: uuid.UUID
    command: VehicleCommand
    outcome: CommandOutcome
    correlation_id: str
    detail: str = ""
    #: What went on the wire (topic, headerId), for the audit trail.
    sent: Mapping[str, object] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome is CommandOutcome.DONE


#: Robot instant actions per operator command (docs/protocols/vda5050.md explains each).
_ROBOT_ACTIONS: dict[VehicleCommand, str] = {
    VehicleCommand.PAUSE: "startPause",
    VehicleCommand.RESUME: "stopPause",
    VehicleCommand.CANCEL_ORDER: "cancelOrder",
    VehicleCommand.CHARGE: "startCharging",
    # VDA 5050 2.0 has no e-stop action: a HARD-blocking pause stops motion at once;
    # the robot's own safety field and e-stop circuit remain the real safety layer.
    VehicleCommand.EMERGENCY_STOP: "startPause",
}

_DRIVER_COMMANDS: dict[VehicleCommand, CommandType] = {
    VehicleCommand.PAUSE: CommandType.PAUSE,
    VehicleCommand.RESUME: CommandType.RESUME,
    VehicleCommand.CANCEL_ORDER: CommandType.CANCEL_JOB,
    VehicleCommand.CHARGE: CommandType.GO_TO_CHARGE,
    VehicleCommand.MAINTENANCE_ON: CommandType.MAINTENANCE,
    VehicleCommand.MAINTENANCE_OFF: CommandType.MAINTENANCE,
    VehicleCommand.EMERGENCY_STOP: CommandType.PAUSE,
}


class VehicleCommander:
    """Sends commands to vehicles of both kinds over the daemon's MQTT session."""

    def __init__(
        self,
        settings: Settings,
        registry: FleetRegistry,
        transport: MqttTransport,
        redis: aioredis.Redis,
    ) -> None:
        self._vda_prefix = settings.mqtt.vda_prefix
        self._driver_prefix = settings.mqtt.driver_prefix
        self._key_prefix = settings.redis.key_prefix
        self._registry = registry
        self._transport = transport
        self._redis = redis

    # --- operator commands ------------------------------------------------------------

    async def pause(self, vehicle_id: uuid.UUID) -> CommandResult:
        return await self.command(vehicle_id, VehicleCommand.PAUSE)

    async def resume(self, vehicle_id: uuid.UUID) -> CommandResult:
        return await self.command(vehicle_id, VehicleCommand.RESUME)

    async def cancel_order(self, vehicle_id: uuid.UUID) -> CommandResult:
        return await self.command(vehicle_id, VehicleCommand.CANCEL_ORDER)

    async def send_to_charge(self, vehicle_id: uuid.UUID) -> CommandResult:
        return await self.command(vehicle_id, VehicleCommand.CHARGE)

    async def emergency_stop(self, vehicle_id: uuid.UUID) -> CommandResult:
        return await self.command(vehicle_id, VehicleCommand.EMERGENCY_STOP)

    async def set_maintenance(self, vehicle_id: uuid.UUID, on: bool) -> CommandResult:
        """Take a vehicle out of (or back into) service.

        Maintenance is fleetd's own flag: the planner skips the vehicle at once, even
        while it is offline. Robots get no message (VDA 5050 has no such mode; the
        operating mode stays the robot's); drivers are told, so their app shows it.
        """
        rec = self._registry.record(vehicle_id)
        command = VehicleCommand.MAINTENANCE_ON if on else VehicleCommand.MAINTENANCE_OFF
        correlation = uuid.uuid4().hex
        if rec is None:
            return self._result(
                vehicle_id, command, CommandOutcome.IMPOSSIBLE, correlation, "unknown vehicle"
            )
        self._registry.set_maintenance(rec, on, time.time())
        if rec.key.kind is VehicleKind.DRIVER and rec.online:
            return await self._send_driver(rec, command, correlation, enabled=on)
        return self._result(
            vehicle_id, command, CommandOutcome.DONE, correlation, "maintenance flag set"
        )

    async def command(self, vehicle_id: uuid.UUID, command: VehicleCommand) -> CommandResult:
        """Send one of the operator commands to a vehicle of either kind."""
        correlation = uuid.uuid4().hex
        rec = self._registry.record(vehicle_id)
        if rec is None:
            return self._result(
                vehicle_id, command, CommandOutcome.IMPOSSIBLE, correlation, "unknown vehicle"
            )
        if command in (VehicleCommand.MAINTENANCE_ON, VehicleCommand.MAINTENANCE_OFF):
            return await self.set_maintenance(vehicle_id, command is VehicleCommand.MAINTENANCE_ON)
        if not rec.online:
            return self._result(
                vehicle_id, command, CommandOutcome.RETRY, correlation, "vehicle is offline"
            )
        if rec.key.kind is VehicleKind.ROBOT:
            action_type = _ROBOT_ACTIONS.get(command)
            if action_type is None:
                return self._result(
                    vehicle_id,
                    command,
                    CommandOutcome.IMPOSSIBLE,
                    correlation,
                    "not a robot command",
                )
            if command is VehicleCommand.EMERGENCY_STOP:
                action = vda_codec.emergency_stop_action(action_id=correlation)
            else:
                action = vda_codec.instant_action(action_type, action_id=correlation)
            return await self._send_instant(rec, command, correlation, [action])
        return await self._send_driver(rec, command, correlation)

    # --- dispatch engine --------------------------------------------------------------

    async def send_order(self, vehicle_id: uuid.UUID, order: Order) -> CommandResult:
        """Publish a VDA 5050 order (its header is filled in here)."""
        correlation = f"{order.order_id}:{order.order_update_id}"
        rec = self._registry.record(vehicle_id)
        if rec is None or rec.key.kind is not VehicleKind.ROBOT:
            return self._result(
                vehicle_id,
                VehicleCommand.ORDER,
                CommandOutcome.IMPOSSIBLE,
                correlation,
                "not a known robot",
            )
        if not rec.online:
            return self._result(
                vehicle_id, VehicleCommand.ORDER, CommandOutcome.RETRY, correlation, "offline"
            )
        header_id = await self._next_header(rec, vda_topics.Topic.ORDER.value)
        msg = order.model_copy(
            update=vda_codec.header_fields(header_id, rec.key.manufacturer, rec.key.serial)
        )
        topic = vda_topics.topic_for(
            self._vda_prefix, rec.key.manufacturer, rec.key.serial, vda_topics.Topic.ORDER
        )
        return self._publish(
            rec, VehicleCommand.ORDER, correlation, topic, vda_codec.encode(msg), header_id
        )

    async def offer_job(self, vehicle_id: uuid.UUID, offer: JobOffer) -> CommandResult:
        """Send a job offer to a driver (the driver answers on its offerResponse topic)."""
        correlation = offer.offer_id
        rec = self._registry.record(vehicle_id)
        if rec is None or rec.key.kind is not VehicleKind.DRIVER:
            return self._result(
                vehicle_id,
                VehicleCommand.OFFER,
                CommandOutcome.IMPOSSIBLE,
                correlation,
                "not a known driver",
            )
        if not rec.online:
            return self._result(
                vehicle_id, VehicleCommand.OFFER, CommandOutcome.RETRY, correlation, "offline"
            )
        header_id = await self._next_header(rec, driver_topics.DriverTopicName.OFFER.value)
        msg = offer.model_copy(update={"header_id": header_id, "driver_id": rec.key.serial})
        topic = driver_topics.topic_for(
            self._driver_prefix, rec.key.serial, driver_topics.DriverTopicName.OFFER
        )
        return self._publish(
            rec, VehicleCommand.OFFER, correlation, topic, driver_codec.encode(msg), header_id
        )

    # --- internals --------------------------------------------------------------------

    async def _send_instant(
        self, rec: VehicleRecord, command: VehicleCommand, correlation: str, actions: list[Action]
    ) -> CommandResult:
        topic_name = vda_topics.Topic.INSTANT_ACTIONS
        try:
            header_id = await self._next_header(rec, topic_name.value)
        except aioredis.RedisError as exc:
            return self._result(rec.id, command, CommandOutcome.RETRY, correlation, f"redis: {exc}")
        msg = InstantActions.model_validate(
            {
                **vda_codec.make_header(header_id, rec.key.manufacturer, rec.key.serial),
                "actions": actions,
            }
        )
        topic = vda_topics.topic_for(
            self._vda_prefix, rec.key.manufacturer, rec.key.serial, topic_name
        )
        return self._publish(rec, command, correlation, topic, vda_codec.encode(msg), header_id)

    async def _send_driver(
        self, rec: VehicleRecord, command: VehicleCommand, correlation: str, *, enabled: bool = True
    ) -> CommandResult:
        kind = _DRIVER_COMMANDS.get(command)
        if kind is None:
            return self._result(
                rec.id, command, CommandOutcome.IMPOSSIBLE, correlation, "not a driver command"
            )
        topic_name = driver_topics.DriverTopicName.COMMAND
        try:
            header_id = await self._next_header(rec, topic_name.value)
        except aioredis.RedisError as exc:
            return self._result(rec.id, command, CommandOutcome.RETRY, correlation, f"redis: {exc}")
        msg = DriverCommand.model_validate(
            {
                **driver_codec.make_header(header_id, rec.key.serial),
                "command": kind,
                "correlationId": correlation,
                "enabled": enabled,
            }
        )
        topic = driver_topics.topic_for(self._driver_prefix, rec.key.serial, topic_name)
        return self._publish(rec, command, correlation, topic, driver_codec.encode(msg), header_id)

    def _publish(
        self,
        rec: VehicleRecord,
        command: VehicleCommand,
        correlation: str,
        topic: str,
        payload: bytes,
        header_id: int,
    ) -> CommandResult:
        try:
            self._transport.publish(topic, payload, qos=1)
        except NotConnected as exc:
            return self._result(rec.id, command, CommandOutcome.RETRY, correlation, str(exc))
        return self._result(
            rec.id,
            command,
            CommandOutcome.DONE,
            correlation,
            "sent",
            sent={"topic": topic, "header_id": header_id},
        )

    async def _next_header(self, rec: VehicleRecord, topic: str) -> int:
        n: int = await self._redis.incr(f"{self._key_prefix}header:{rec.id}:{topic}")
        return n

    @staticmethod
    def _result(
        vehicle_id: uuid.UUID,
        command: VehicleCommand,
        outcome: CommandOutcome,
        correlation: str,
        detail: str,
        sent: Mapping[str, object] | None = None,
    ) -> CommandResult:
        COMMANDS_SENT.labels(command.value, outcome.value).inc()
        log.info(
            "vehicle.command",
            vehicle_id=str(vehicle_id),
            command=command.value,
            outcome=outcome.value,
            correlation_id=correlation,
            detail=detail,
        )
        return CommandResult(vehicle_id, command, outcome, correlation, detail, sent or {})

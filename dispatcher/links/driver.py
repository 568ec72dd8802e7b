"""The driver implementation of the vehicle interface: the driver protocol both ways.

Inbound is :class:`~dispatcher.links.driver_link.DriverLink` (status into the registry;
offer answers, trip progress and command acks out as typed events); outbound, operator
commands become ``command`` messages carrying the correlation id the app echoes in its
``commandAck``, and jobs are offered on ``offer``.
"""

from __future__ import annotations

from typing import Final

from dispatcher.config import Settings
from dispatcher.links.commands import CommandReason, CommandResult, VehicleCommand
from dispatcher.links.driver_link import DriverLink
from dispatcher.links.mqtt import Route
from dispatcher.links.outbox import Outbox, finish
from fleet.model import VehicleKind
from fleet.record import VehicleRecord
from protocols.driver import codec as driver_codec
from protocols.driver import topics as driver_topics
from protocols.driver.models import CommandType, DriverCommand, JobOffer
from protocols.vda5050.models import Order

_COMMANDS: Final[dict[VehicleCommand, CommandType]] = {
    VehicleCommand.PAUSE: CommandType.PAUSE,
    VehicleCommand.RESUME: CommandType.RESUME,
    VehicleCommand.CANCEL_ORDER: CommandType.CANCEL_JOB,
    VehicleCommand.CHARGE: CommandType.GO_TO_CHARGE,
    VehicleCommand.MAINTENANCE_ON: CommandType.MAINTENANCE,
    VehicleCommand.MAINTENANCE_OFF: CommandType.MAINTENANCE,
    VehicleCommand.EMERGENCY_STOP: CommandType.PAUSE,
}

_SUPPORTED = frozenset(_COMMANDS) | {VehicleCommand.OFFER}


class DriverVehicles:
    """Commands driver phones; its :attr:`route` feeds their messages to the link."""

    def __init__(self, settings: Settings, link: DriverLink, outbox: Outbox) -> None:
        self._prefix = settings.mqtt.driver_prefix
        self.link = link
        self._outbox = outbox

    @property
    def kind(self) -> VehicleKind:
        return VehicleKind.DRIVER

    @staticmethod
    def route_for(settings: Settings, link: DriverLink) -> Route:
        """The inbound route of this kind: every topic under the prefix, to ``link``."""
        return Route.whole_prefix(link.LINK, settings.mqtt.driver_prefix, link.handle)

    @property
    def route(self) -> Route:
        return Route.whole_prefix(self.link.LINK, self._prefix, self.link.handle)

    def supports(self, command: VehicleCommand) -> bool:
        return command in _SUPPORTED

    async def command(
        self, rec: VehicleRecord, command: VehicleCommand, correlation_id: str
    ) -> CommandResult:
        """Send an operator command to the driver's app."""
        return await self._send(rec, command, correlation_id, enabled=True)

    async def announce_maintenance(
        self, rec: VehicleRecord, on: bool, correlation_id: str
    ) -> CommandResult:
        """Tell the driver, so the app shows it."""
        command = VehicleCommand.MAINTENANCE_ON if on else VehicleCommand.MAINTENANCE_OFF
        return await self._send(rec, command, correlation_id, enabled=on)

    async def send_order(self, rec: VehicleRecord, order: Order) -> CommandResult:
        """Drivers are offered jobs, not given VDA 5050 orders."""
        return finish(
            rec.id,
            VehicleCommand.ORDER,
            CommandReason.NOT_SUPPORTED,
            f"{order.order_id}:{order.order_update_id}",
            "not a known robot",
        )

    async def offer_job(self, rec: VehicleRecord, offer: JobOffer) -> CommandResult:
        """Send a job offer (the answer arrives as an ``OfferAnswered`` event)."""
        topic_name = driver_topics.DriverTopicName.OFFER

        def build(header_id: int) -> tuple[str, bytes]:
            msg = offer.model_copy(update={"header_id": header_id, "driver_id": rec.key.serial})
            topic = driver_topics.topic_for(self._prefix, rec.key.serial, topic_name)
            return topic, driver_codec.encode(msg)

        return await self._outbox.send(
            rec.id, VehicleCommand.OFFER, offer.offer_id, topic_name.value, build
        )

    async def cancel_job(
        self,
        rec: VehicleRecord,
        correlation_id: str,
        *,
        mission_id: str | None,
        offer_id: str | None,
        message: str | None = None,
    ) -> CommandResult:
        """Take back one job, offered or accepted: ``cancel_job`` naming the mission and
        the offer (the dispatch engine's withdrawal; the app acks it like any command)."""
        fields = {"missionId": mission_id, "offerId": offer_id, "message": message}
        return await self._send(
            rec, VehicleCommand.CANCEL_ORDER, correlation_id, enabled=True, fields=fields
        )

    async def _send(
        self,
        rec: VehicleRecord,
        command: VehicleCommand,
        correlation_id: str,
        *,
        enabled: bool,
        fields: dict[str, str | None] | None = None,
    ) -> CommandResult:
        kind = _COMMANDS.get(command)
        if kind is None:
            return finish(
                rec.id, command, CommandReason.NOT_SUPPORTED, correlation_id, "not a driver command"
            )
        topic_name = driver_topics.DriverTopicName.COMMAND

        def build(header_id: int) -> tuple[str, bytes]:
            msg = DriverCommand.model_validate(
                {
                    **driver_codec.make_header(header_id, rec.key.serial),
                    "command": kind,
                    "correlationId": correlation_id,
                    "enabled": enabled,
                    **{k: v for k, v in (fields or {}).items() if v is not None},
                }
            )
            topic = driver_topics.topic_for(self._prefix, rec.key.serial, topic_name)
            return topic, driver_codec.encode(msg)

        return await self._outbox.send(rec.id, command, correlation_id, topic_name.value, build)

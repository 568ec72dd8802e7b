"""The robot implementation of the vehicle interface: VDA 5050 v2.0 both ways.

Inbound is :class:`~dispatcher.links.robot_link.RobotLink`; outbound, operator commands
become instant actions whose ``actionId`` is the command's correlation id (the robot
reports that action's status in its state, which the link publishes as
:class:`~dispatcher.links.vehicle_events.ActionStateChanged`), and mission legs become
orders. Nothing is sent to a robot the master control is not in charge of
(:mod:`dispatcher.links.robot_policy`).
"""

from __future__ import annotations

from dispatcher.config import Settings
from dispatcher.links.commands import (
    MAINTENANCE_COMMANDS,
    CommandReason,
    CommandResult,
    VehicleCommand,
)
from dispatcher.links.mqtt import Route
from dispatcher.links.outbox import Outbox, finish
from dispatcher.links.robot_link import RobotLink
from dispatcher.links.robot_policy import INSTANT_ACTIONS, master_in_control
from fleet.model import VehicleKind
from fleet.record import VehicleRecord
from protocols.driver.models import JobOffer
from protocols.vda5050 import codec as vda_codec
from protocols.vda5050 import topics as vda_topics
from protocols.vda5050.models import InstantActions, Order

_SUPPORTED = frozenset(INSTANT_ACTIONS) | MAINTENANCE_COMMANDS | {VehicleCommand.ORDER}


class RobotVehicles:
    """Commands VDA 5050 robots; its :attr:`route` feeds their messages to the link."""

    def __init__(self, settings: Settings, link: RobotLink, outbox: Outbox) -> None:
        self._prefix = settings.mqtt.vda_prefix
        self.link = link
        self._outbox = outbox

    @property
    def kind(self) -> VehicleKind:
        return VehicleKind.ROBOT

    @staticmethod
    def route_for(settings: Settings, link: RobotLink) -> Route:
        """The inbound route of this kind: every topic under the prefix, to ``link``."""
        return Route.whole_prefix(link.LINK, settings.mqtt.vda_prefix, link.handle)

    @property
    def route(self) -> Route:
        return Route.whole_prefix(self.link.LINK, self._prefix, self.link.handle)

    def supports(self, command: VehicleCommand) -> bool:
        return command in _SUPPORTED

    async def command(
        self, rec: VehicleRecord, command: VehicleCommand, correlation_id: str
    ) -> CommandResult:
        """Send the instant action an operator command stands for."""
        action_type = INSTANT_ACTIONS.get(command)
        if action_type is None:
            return finish(
                rec.id, command, CommandReason.NOT_SUPPORTED, correlation_id, "not a robot command"
            )
        refused = self._refuse_if_not_in_control(rec, command, correlation_id)
        if refused is not None:
            return refused
        if command is VehicleCommand.EMERGENCY_STOP:
            action = vda_codec.emergency_stop_action(action_id=correlation_id)
        else:
            action = vda_codec.instant_action(action_type, action_id=correlation_id)
        topic_name = vda_topics.Topic.INSTANT_ACTIONS

        def build(header_id: int) -> tuple[str, bytes]:
            msg = InstantActions.model_validate(
                {
                    **vda_codec.make_header(header_id, rec.key.manufacturer, rec.key.serial),
                    "actions": [action],
                }
            )
            return self._topic(rec, topic_name), vda_codec.encode(msg)

        return await self._outbox.send(rec.id, command, correlation_id, topic_name.value, build)

    async def announce_maintenance(
        self, rec: VehicleRecord, on: bool, correlation_id: str
    ) -> CommandResult:
        """Robots get no message: VDA 5050 has no such mode, the operating mode is theirs."""
        command = VehicleCommand.MAINTENANCE_ON if on else VehicleCommand.MAINTENANCE_OFF
        return finish(
            rec.id, command, CommandReason.FLAG_SET, correlation_id, "maintenance flag set"
        )

    async def send_order(self, rec: VehicleRecord, order: Order) -> CommandResult:
        """Publish a VDA 5050 order (its header is filled in here)."""
        correlation_id = f"{order.order_id}:{order.order_update_id}"
        refused = self._refuse_if_not_in_control(rec, VehicleCommand.ORDER, correlation_id)
        if refused is not None:
            return refused
        topic_name = vda_topics.Topic.ORDER

        def build(header_id: int) -> tuple[str, bytes]:
            msg = order.model_copy(
                update=vda_codec.header_fields(header_id, rec.key.manufacturer, rec.key.serial)
            )
            return self._topic(rec, topic_name), vda_codec.encode(msg)

        # QoS 0, as VDA 5050 §6.2 says for orders: the robot channel re-sends an order until
        # the robot's state echoes it, and a QoS 1 order still unacknowledged when the broker
        # went away would be replayed by the persistent session on reconnect, seconds late,
        # after the channel may have given the mission to another robot.
        return await self._outbox.send(
            rec.id, VehicleCommand.ORDER, correlation_id, topic_name.value, build, qos=0
        )

    async def offer_job(self, rec: VehicleRecord, offer: JobOffer) -> CommandResult:
        """Robots are given orders, not offers."""
        return finish(
            rec.id,
            VehicleCommand.OFFER,
            CommandReason.NOT_SUPPORTED,
            offer.offer_id,
            "not a known driver",
        )

    def _refuse_if_not_in_control(
        self, rec: VehicleRecord, command: VehicleCommand, correlation_id: str
    ) -> CommandResult | None:
        mode = None if rec.operating_mode is None else str(rec.operating_mode)
        if master_in_control(mode):
            return None
        return finish(
            rec.id,
            command,
            CommandReason.NOT_IN_CONTROL,
            correlation_id,
            f"robot is in {mode} mode: fleetd sends it no orders or actions",
        )

    def _topic(self, rec: VehicleRecord, topic: vda_topics.Topic) -> str:
        return vda_topics.topic_for(self._prefix, rec.key.manufacturer, rec.key.serial, topic)

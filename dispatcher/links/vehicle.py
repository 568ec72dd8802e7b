"""The vehicle interface: what the daemon needs from "a vehicle we can command".

A :class:`VehicleAdapter` serves one kind of vehicle and pairs both directions of its
protocol: the inbound :class:`~dispatcher.links.mqtt.Route` (messages into the registry,
telemetry into a :class:`TelemetrySink`, typed events onto an :class:`EventPublisher`)
and the outbound commands, each answered with a closed
:class:`~dispatcher.links.commands.CommandResult`. The robot (VDA 5050,
:mod:`dispatcher.links.robot`) and the driver (driver protocol,
:mod:`dispatcher.links.driver`) are its two implementations;
:class:`~dispatcher.links.commander.VehicleCommander` picks one by the vehicle's kind.
Model: Open-RMF free_fleet ``robot_adapter.py``.

Adapters are called with a known, online record; the commander checks both first.
"""

from __future__ import annotations

from typing import Protocol

from dispatcher.links.commands import CommandResult, VehicleCommand
from dispatcher.links.mqtt import Route
from dispatcher.links.vehicle_events import VehicleEvent
from dispatcher.storage.telemetry import TelemetryRow
from fleet.model import VehicleKind
from fleet.record import VehicleRecord
from protocols.driver.models import JobOffer
from protocols.vda5050.models import Order


class TelemetrySink(Protocol):
    """Where the inbound links put telemetry rows; must not block (the MQTT callback)."""

    def add(self, row: TelemetryRow) -> None: ...


class EventPublisher(Protocol):
    """Where the inbound links put typed vehicle events; must not block."""

    def publish(self, event: VehicleEvent) -> None: ...


class VehicleAdapter(Protocol):
    """One kind of vehicle: its inbound route and its outbound commands."""

    @property
    def kind(self) -> VehicleKind:
        """The kind of vehicle this adapter serves."""
        ...

    @property
    def route(self) -> Route:
        """The inbound messages of this kind, for the MQTT session."""
        ...

    def supports(self, command: VehicleCommand) -> bool:
        """Whether this kind of vehicle can be sent ``command`` at all."""
        ...

    async def command(
        self, rec: VehicleRecord, command: VehicleCommand, correlation_id: str
    ) -> CommandResult:
        """Send an operator command (pause, resume, cancel, charge, e-stop)."""
        ...

    async def announce_maintenance(
        self, rec: VehicleRecord, on: bool, correlation_id: str
    ) -> CommandResult:
        """Tell the vehicle its maintenance flag changed (the flag is already set)."""
        ...

    async def send_order(self, rec: VehicleRecord, order: Order) -> CommandResult:
        """Send the next leg of a mission as a VDA 5050 order."""
        ...

    async def offer_job(self, rec: VehicleRecord, offer: JobOffer) -> CommandResult:
        """Offer a job (the answer arrives later as an event)."""
        ...

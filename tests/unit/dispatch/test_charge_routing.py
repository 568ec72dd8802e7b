"""The operator's charge command goes to the engine when it takes it, else to the link."""

from __future__ import annotations

import uuid

from dispatcher.links.commands import CommandOutcome, CommandResult, VehicleCommand
from dispatcher.ops.charge_routing import ChargeRoutingCommander


class Link:
    def __init__(self) -> None:
        self.sent: list[VehicleCommand] = []

    async def command(self, vehicle_id: uuid.UUID, command: VehicleCommand) -> CommandResult:
        self.sent.append(command)
        return CommandResult(vehicle_id, command, CommandOutcome.DONE, "c1")


class Engine:
    def __init__(self, takes: bool) -> None:
        self.takes = takes
        self.asked: list[uuid.UUID] = []

    def request_charge(self, vehicle_id: uuid.UUID) -> bool:
        self.asked.append(vehicle_id)
        return self.takes


class TestChargeRouting:
    async def test_charge_goes_to_the_engine(self) -> None:
        link, engine, vid = Link(), Engine(takes=True), uuid.uuid4()
        result = await ChargeRoutingCommander(link, engine).command(vid, VehicleCommand.CHARGE)
        assert result.ok and engine.asked == [vid] and link.sent == []

    async def test_charge_the_engine_declines_goes_to_the_link(self) -> None:
        """A driver, or a robot kind without a channel: the link's own charge command."""
        link, engine = Link(), Engine(takes=False)
        await ChargeRoutingCommander(link, engine).command(uuid.uuid4(), VehicleCommand.CHARGE)
        assert link.sent == [VehicleCommand.CHARGE]

    async def test_other_commands_go_to_the_link(self) -> None:
        link, engine = Link(), Engine(takes=True)
        await ChargeRoutingCommander(link, engine).command(uuid.uuid4(), VehicleCommand.PAUSE)
        assert link.sent == [VehicleCommand.PAUSE] and engine.asked == []

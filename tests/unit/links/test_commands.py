"""The closed command results and the robot command policy (VDA 5050 operating modes)."""

from __future__ import annotations

import uuid

import pytest

from dispatcher.links.commands import CommandOutcome, CommandReason, VehicleCommand, result
from dispatcher.links.robot_policy import INSTANT_ACTIONS, master_in_control


class TestCommandReason:
    @pytest.mark.parametrize(
        ("reason", "outcome"),
        [
            (CommandReason.SENT, CommandOutcome.DONE),
            (CommandReason.FLAG_SET, CommandOutcome.DONE),
            (CommandReason.VEHICLE_OFFLINE, CommandOutcome.RETRY),
            (CommandReason.BROKER_DOWN, CommandOutcome.RETRY),
            (CommandReason.STORE_DOWN, CommandOutcome.RETRY),
            (CommandReason.UNKNOWN_VEHICLE, CommandOutcome.IMPOSSIBLE),
            (CommandReason.NOT_SUPPORTED, CommandOutcome.IMPOSSIBLE),
            (CommandReason.NOT_IN_CONTROL, CommandOutcome.IMPOSSIBLE),
        ],
    )
    def test_each_reason_belongs_to_one_outcome(
        self, reason: CommandReason, outcome: CommandOutcome
    ) -> None:
        assert reason.outcome is outcome

    def test_every_reason_has_an_outcome(self) -> None:
        assert all(r.outcome in CommandOutcome for r in CommandReason)

    def test_a_result_takes_its_outcome_from_its_reason(self) -> None:
        vid = uuid.uuid4()
        res = result(vid, VehicleCommand.PAUSE, CommandReason.STORE_DOWN, "c1", "redis: down")
        assert (res.outcome, res.reason, res.ok, res.sent) == (
            CommandOutcome.RETRY,
            CommandReason.STORE_DOWN,
            False,
            {},
        )
        assert result(vid, VehicleCommand.PAUSE, CommandReason.SENT, "c2", "sent").ok


class TestRobotPolicy:
    @pytest.mark.parametrize(
        ("mode", "in_control"),
        [
            ("AUTOMATIC", True),
            ("SEMIAUTOMATIC", True),
            ("MANUAL", False),
            ("SERVICE", False),
            ("TEACHIN", False),
            (None, True),  # no state yet: an operator must still be able to stop it
        ],
    )
    def test_master_control_commands_only_in_the_modes_the_spec_allows(
        self, mode: str | None, in_control: bool
    ) -> None:
        assert master_in_control(mode) is in_control

    def test_emergency_stop_is_a_pause(self) -> None:
        assert INSTANT_ACTIONS[VehicleCommand.EMERGENCY_STOP] == "startPause"

    def test_orders_offers_and_maintenance_are_no_instant_actions(self) -> None:
        assert not {
            VehicleCommand.ORDER,
            VehicleCommand.OFFER,
            VehicleCommand.MAINTENANCE_ON,
            VehicleCommand.MAINTENANCE_OFF,
        } & set(INSTANT_ACTIONS)

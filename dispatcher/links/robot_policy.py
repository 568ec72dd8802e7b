"""Which VDA 5050 message a command becomes, and when a robot may get one (pure).

VDA 5050 2.0 §6.10.6 (operating modes): in MANUAL, SERVICE and TEACHIN "master control
is not in control of the AGV" and "doesn't send driving order or actions to the AGV".
So neither orders nor instant actions go to a robot in those modes; the command is
``impossible`` with reason ``not_in_control``. AUTOMATIC and SEMIAUTOMATIC robots are
under master control. A robot whose mode is not known yet (no state received since
start-up) is commanded: refusing would leave an operator unable to stop a robot that
has just connected.
"""

from __future__ import annotations

from typing import Final

from dispatcher.links.commands import VehicleCommand

#: Operating modes in which the master control sends nothing (VDA 5050 2.0 §6.10.6).
NOT_IN_CONTROL_MODES: Final = frozenset({"MANUAL", "SERVICE", "TEACHIN"})

#: Robot instant actions per operator command (docs/protocols/vda5050.md explains each).
INSTANT_ACTIONS: Final[dict[VehicleCommand, str]] = {
    VehicleCommand.PAUSE: "startPause",
    VehicleCommand.RESUME: "stopPause",
    VehicleCommand.CANCEL_ORDER: "cancelOrder",
    VehicleCommand.CHARGE: "startCharging",
    VehicleCommand.STATE_REQUEST: "stateRequest",
    # VDA 5050 2.0 has no e-stop action: a HARD-blocking pause stops motion at once;
    # the robot's own safety field and e-stop circuit remain the real safety layer.
    VehicleCommand.EMERGENCY_STOP: "startPause",
}


def master_in_control(operating_mode: str | None) -> bool:
    """Whether fleetd may send orders and instant actions to a robot in this mode."""
    return operating_mode not in NOT_IN_CONTROL_MODES

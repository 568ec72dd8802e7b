"""How each kind of stop is written as a VDA 5050 action, per robot manufacturer (pure).

VDA 5050 names the actions (``pick``, ``drop``, ``startCharging``) but leaves their
parameters to the vehicle: a robot whose factsheet declares ``pick`` with required
``stationType`` and ``loadType`` refuses a parameterless one. fleetd writes the plain
actions by default; ``[dispatch.robot_actions.<manufacturer>.<pick|drop|charge>]`` in the
configuration gives a manufacturer's robots another action type and/or fixed parameters,
without any change on the robot's side.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from dispatcher.dispatch.legs import StopAction

#: What VDA 5050 calls each kind of stop (fleetd's default).
DEFAULT_ACTION = MappingProxyType(
    {StopAction.PICK: "pick", StopAction.DROP: "drop", StopAction.CHARGE: "startCharging"}
)

ParameterValue = str | int | float | bool


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """One stop's action as written in an order: its type and fixed parameters."""

    action_type: str
    parameters: tuple[tuple[str, ParameterValue], ...] = ()


@dataclass(frozen=True, slots=True)
class ActionMapping:
    """Per manufacturer, the :class:`ActionSpec` of each kind of stop (defaults elsewhere)."""

    by_manufacturer: Mapping[str, Mapping[StopAction, ActionSpec]] = field(default_factory=dict)

    def spec(self, manufacturer: str, stop: StopAction) -> ActionSpec:
        """How ``stop`` is written for a robot of ``manufacturer``."""
        found = self.by_manufacturer.get(manufacturer, {}).get(stop)
        return found if found is not None else ActionSpec(DEFAULT_ACTION[stop])

    def kinds(self, manufacturer: str) -> Mapping[str, StopAction]:
        """Action type -> kind of stop, for reading a robot's action states back."""
        return {self.spec(manufacturer, stop).action_type: stop for stop in StopAction}

"""Which :class:`LegChannel` carries legs for each kind of vehicle (the wiring point).

The robot channel (VDA 5050 orders) and the driver channel (offers and trips) are built
by their own modules; this function is where the daemon gets them. A kind without a
channel is not planned (the engine logs ``dispatch.no_channel`` at start).
"""

from __future__ import annotations

from collections.abc import Mapping

from dispatcher.config import Settings
from dispatcher.dispatch.legs import LegChannel
from dispatcher.links.assembly import VehicleLinks
from fleet.model import VehicleKind
from fleet.registry import FleetRegistry


def make_channels(
    settings: Settings, registry: FleetRegistry, links: VehicleLinks
) -> Mapping[VehicleKind, LegChannel]:
    """The channels of this build: none yet on this branch (the robot and driver channels
    come from their own branches and are plugged in here at merge)."""
    del settings, registry, links
    return {}

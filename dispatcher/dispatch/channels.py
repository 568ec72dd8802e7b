"""Which :class:`LegChannel` carries legs for each kind of vehicle (the wiring point).

The robot channel (VDA 5050 orders) and the driver channel (offers and trips) are built
by their own modules; this function is where the daemon gets them. A kind without a
channel is not planned (the engine logs ``dispatch.no_channel`` at start).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping

from dispatcher.config import Settings
from dispatcher.dispatch.driver_channel import driver_channel
from dispatcher.dispatch.legs import LegChannel
from dispatcher.dispatch.robot_channel import robot_channel
from dispatcher.facility_layouts import FacilityLayouts
from dispatcher.links.assembly import VehicleLinks
from fleet.model import VehicleKind
from fleet.registry import FleetRegistry
from geo.layout.zones import ZoneSet


def make_channels(
    settings: Settings,
    registry: FleetRegistry,
    links: VehicleLinks,
    layouts: Mapping[str, FacilityLayouts],
    zones: Callable[[uuid.UUID], ZoneSet] | None = None,
) -> Mapping[VehicleKind, LegChannel]:
    """The channel of each kind of vehicle, over the daemon's registry, vehicle links and
    the facilities' layouts (robots' orders follow the LIF route graph, around ``zones``)."""
    return {
        VehicleKind.ROBOT: robot_channel(settings, links.commander, registry, layouts, zones=zones),
        VehicleKind.DRIVER: driver_channel(settings, registry, links),
    }

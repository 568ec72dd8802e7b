"""Test support: the shipped campus layout as the order builder sees it."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from dispatcher.dispatch.robot_orders import OrderLayout, OrderSettings
from geo.layout.cache import RouteGraphs
from geo.layout.graph import VehicleProfile
from geo.layout.loader import load_lif
from geo.layout.model import LifDocument
from protocols.vda5050 import codec
from protocols.vda5050.models import Order

VEHICLE_TYPE = "simbot.wheelchair"
CFG = OrderSettings(default_map_id="campus")


@cache
def campus() -> LifDocument:
    """The demo campus shipped in geo/maps."""
    return load_lif(str(resources.files("geo").joinpath("maps", "hospital-campus.lif.json")))


@cache
def campus_layout() -> OrderLayout:
    """The campus for the wheelchair robots, top speed 1.2 m/s."""
    doc = campus()
    graph = RouteGraphs().graph(doc, VehicleProfile(VEHICLE_TYPE, 1.2))
    return OrderLayout(doc, VEHICLE_TYPE, graph)


def wire(order: Order) -> Any:
    """The order as it goes on the wire (JSON), for schema checks."""
    return json.loads(codec.encode(order))

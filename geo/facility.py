"""A facility as the core sees it: its maps and named places, as frozen values.

The daemon's settings (pydantic, :mod:`dispatcher.config`) are translated into these once
at start-up, so nothing below the edges depends on how the configuration is read.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

#: Coordinates closer than this (degrees, ~1 cm) are the same point.
SAME_POINT_DEG = 1e-7


@dataclass(frozen=True, slots=True)
class MapSpec:
    """A facility map: the robots' local metric frame and where it sits on Earth."""

    map_id: str
    origin_lat: float
    origin_lon: float
    #: Angle from geographic east to the map's +x axis, counter-clockwise, in degrees.
    rotation_deg: float = 0.0


@dataclass(frozen=True, slots=True)
class PlaceSpec:
    """A named place operators can use as a pickup or dropoff (WGS84)."""

    name: str
    lat: float
    lon: float
    #: Route-graph node the robots use for this place, if any.
    node_id: str | None = None


@dataclass(frozen=True, slots=True)
class FacilitySpec:
    """One facility: its stable id and key, its maps and its places."""

    id: uuid.UUID
    key: str
    name: str
    timezone: str = "UTC"
    maps: tuple[MapSpec, ...] = ()
    places: tuple[PlaceSpec, ...] = ()

    def find_place(self, name: str) -> PlaceSpec | None:
        """The place called ``name``: exact match first, then case-insensitive if unambiguous."""
        for place in self.places:
            if place.name == name:
                return place
        folded = [p for p in self.places if p.name.casefold() == name.casefold()]
        return folded[0] if len(folded) == 1 else None


def same_point(lat1: float, lon1: float, lat2: float, lon2: float) -> bool:
    """True when two coordinates are the same point (within :data:`SAME_POINT_DEG`)."""
    return math.isclose(lat1, lat2, abs_tol=SAME_POINT_DEG) and math.isclose(
        lon1, lon2, abs_tol=SAME_POINT_DEG
    )

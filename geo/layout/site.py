"""A facility's surroundings in its map frame: building outlines and zones (a small JSON).

LIF carries the route graph only. What a drawing needs around it (buildings) and the zones
a demo or a test applies are kept beside the LIF file as ``<name>.site.json``::

    {"mapId": "campus",
     "buildings": [{"name": "Main Hospital", "polygon": [[x, y], ...]}],
     "zones": [{"zoneId": "...", "kind": "no_go" | "slow", "name": "...",
                "speedLimitMps": 0.5, "polygon": [[x, y], ...]}]}

In the running daemon zones come from PostGIS instead; this file is for examples.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shapely

from geo.layout.errors import InvalidElementError, LayoutSyntaxError
from geo.layout.zones import Zone, ZoneKind, ZoneSet


@dataclass(frozen=True)
class Building:
    name: str
    outline: shapely.Polygon


@dataclass(frozen=True)
class Site:
    map_id: str | None
    buildings: tuple[Building, ...]
    zones: ZoneSet
    zone_names: tuple[str, ...]


def _polygon(raw: Any, path: str, source: str) -> shapely.Polygon:
    try:
        poly = shapely.Polygon(raw)
    except (ValueError, TypeError) as exc:
        raise InvalidElementError(
            f"not a polygon: {exc}", source=source, element="polygon", json_path=path
        ) from exc
    if not poly.is_valid or poly.area <= 0:
        raise InvalidElementError(
            "polygon is empty or self-intersecting",
            source=source,
            element="polygon",
            json_path=path,
        )
    return poly


def parse_site(data: dict[str, Any], source: str = "") -> Site:
    """Build a :class:`Site` from its JSON object."""
    map_id = data.get("mapId")
    buildings = tuple(
        Building(str(b["name"]), _polygon(b["polygon"], f"$.buildings[{i}].polygon", source))
        for i, b in enumerate(data.get("buildings", []))
    )
    zones = []
    for i, z in enumerate(data.get("zones", [])):
        try:
            zone = Zone(
                zone_id=str(z["zoneId"]),
                kind=ZoneKind(z["kind"]),
                geometry=_polygon(z["polygon"], f"$.zones[{i}].polygon", source),
                speed_limit_mps=z.get("speedLimitMps"),
                map_id=map_id,
            )
        except (KeyError, ValueError) as exc:
            raise InvalidElementError(
                f"bad zone: {exc}",
                source=source,
                element="zone",
                element_id=z.get("zoneId"),
                json_path=f"$.zones[{i}]",
            ) from exc
        zones.append(zone)
    names = tuple(str(z.get("name", z.get("zoneId"))) for z in data.get("zones", []))
    return Site(map_id, buildings, ZoneSet(tuple(zones)), names)


def load_site(path: str | Path) -> Site:
    """Read a ``.site.json`` file."""
    p = Path(path)
    try:
        data = json.loads(p.read_bytes())
    except (OSError, json.JSONDecodeError) as exc:
        raise LayoutSyntaxError(f"cannot read site file: {exc}", source=str(p)) from exc
    return parse_site(data, str(p))

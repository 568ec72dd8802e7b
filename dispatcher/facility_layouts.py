"""The edge between configuration and geo.layout: which LIF files and roads a facility has.

Paths in the configuration: ``fleetd:NAME`` is a file shipped with fleetd (geo/maps), an
absolute path is itself, a relative one is relative to the configuration file's directory
(the working directory when there is no file). Loading every facility's files at start-up
stops fleetd on the first bad one with the file, element and reason named.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from dispatcher.config import FacilitySettings
from geo.layout.drivers import DriverModel, GeodesicModel, RoadGraph
from geo.layout.errors import DanglingReferenceError, LayoutError, LayoutSyntaxError
from geo.layout.loader import load_lif
from geo.layout.model import LifDocument

SHIPPED_PREFIX = "fleetd:"


def resolve(ref: str, base_dir: Path | None) -> Path:
    """The file a configured layout or roads reference names."""
    if ref.startswith(SHIPPED_PREFIX):
        return Path(str(resources.files("geo").joinpath("maps", ref[len(SHIPPED_PREFIX) :])))
    p = Path(ref)
    if p.is_absolute():
        return p
    return (base_dir or Path.cwd()) / p


@dataclass(frozen=True)
class FacilityLayouts:
    """One facility's robot layouts (LIF documents) and its drivers' travel model."""

    key: str
    documents: tuple[LifDocument, ...]
    drivers: DriverModel
    roads: RoadGraph | None = None

    def has_node(self, node_id: str) -> bool:
        return any(node_id in d.nodes for d in self.documents)


def _load_roads(path: Path, facility: FacilitySettings) -> RoadGraph:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, json.JSONDecodeError) as exc:
        raise LayoutSyntaxError(f"cannot read roads: {exc}", source=str(path)) from exc
    try:
        return RoadGraph(
            data,
            speed_mps=facility.driver_speed_mps,
            detour_factor=facility.driver_detour_factor,
        )
    except LayoutError as exc:
        exc.source = str(path)
        raise


def load_facility(facility: FacilitySettings, base_dir: Path | None) -> FacilityLayouts:
    """Load and check one facility's layouts and roads; places must name layout nodes."""
    docs = tuple(load_lif(resolve(ref, base_dir)) for ref in facility.layouts)
    roads = _load_roads(resolve(facility.roads, base_dir), facility) if facility.roads else None
    geodesic = GeodesicModel(facility.driver_detour_factor, facility.driver_speed_mps)
    loaded = FacilityLayouts(facility.key, docs, roads or geodesic, roads)
    if docs:
        for i, place in enumerate(facility.places):
            if place.node_id is not None and not loaded.has_node(place.node_id):
                raise DanglingReferenceError(
                    f"node_id {place.node_id!r} is not a node of the facility's layouts",
                    source=f"facility {facility.key!r}",
                    element="place",
                    element_id=place.name,
                    json_path=f"places[{i}].node_id",
                )
    return loaded


def load_facility_layouts(
    facilities: Iterable[FacilitySettings], base_dir: Path | None
) -> dict[str, FacilityLayouts]:
    """Every facility's layouts by facility key; raises the first :class:`LayoutError`."""
    return {f.key: load_facility(f, base_dir) for f in facilities}

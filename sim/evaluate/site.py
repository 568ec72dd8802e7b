"""The facility as the offline evaluation drives on it: spots and real travel matrices.

A *spot* is somewhere a vehicle can stand between events: a named place of the facility
(pickups and drop-offs) or a charging station of its layout. Robots travel between spots
along the layout's route graph (VDA LIF, compiled with scipy's csgraph, as the robot
channel routes them); drivers on the facility's driver model (its roads, else geodesic
distance times the detour factor). These are the times the vehicles *take*; the planner
keeps estimating them as the daemon does (:mod:`dispatcher.dispatch.problem`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from dispatcher.config import FacilitySettings, Settings
from dispatcher.dispatch.charging import Station
from dispatcher.dispatch.service import charging_stations
from dispatcher.facility_layouts import FacilityLayouts, load_facility
from geo.facility_maps import FacilityMaps
from geo.frames import MapFrame
from geo.layout.graph import VehicleProfile, build_edge_table
from geo.layout.routing import CompiledGraph

FloatArray = npt.NDArray[np.float64]

#: The simulated robots' top speed (m/s), as sim.robot's virtual robots drive.
ROBOT_SPEED_MPS = 1.2


@dataclass(frozen=True, slots=True)
class Spot:
    """A place or a charging station: WGS84 for the planner, layout metres for plots."""

    name: str
    lat: float
    lon: float
    node_id: str | None
    x: float
    y: float


@dataclass(frozen=True)
class Site:
    """Spots and the travel (seconds, metres) between them per vehicle kind."""

    key: str
    spots: tuple[Spot, ...]
    places: tuple[str, ...]  # the spots missions may use
    stations: tuple[Station, ...]  # the dispatch engine's charging stations
    robot_s: FloatArray  # inf: robots cannot go there
    robot_m: FloatArray
    driver_s: FloatArray
    driver_m: FloatArray

    def index(self, name: str) -> int:
        for i, spot in enumerate(self.spots):
            if spot.name == name:
                return i
        raise KeyError(name)


class SiteError(ValueError):
    """A facility the evaluation cannot drive on, with the reason."""


def facility_settings(settings: Settings, key: str) -> FacilitySettings:
    """The facility ``key`` of ``settings`` (or of the built-in demo campus)."""
    for facility in settings.effective_facilities:
        if facility.key == key:
            return facility
    known = ", ".join(f.key for f in settings.effective_facilities)
    raise SiteError(f"facility {key!r} is not configured (known: {known})")


def _frame(facility: FacilitySettings) -> MapFrame | None:
    return MapFrame(facility.maps[0].to_spec()) if facility.maps else None


def _robot_matrices(loaded: FacilityLayouts, spots: list[Spot]) -> tuple[FloatArray, FloatArray]:
    n = len(spots)
    secs = np.full((n, n), np.inf)
    metres = np.full((n, n), np.inf)
    np.fill_diagonal(secs, 0.0)
    np.fill_diagonal(metres, 0.0)
    for doc in loaded.documents:
        types = sorted(doc.vehicle_types())
        if not types:
            continue
        graph = CompiledGraph(build_edge_table(doc, VehicleProfile(types[0], ROBOT_SPEED_MPS)))
        on = [i for i, s in enumerate(spots) if s.node_id is not None and s.node_id in doc.nodes]
        if not on:
            continue
        m = graph.matrices([spots[i].node_id or "" for i in on])
        idx = np.ix_(on, on)
        secs[idx] = np.minimum(secs[idx], m.durations)
        metres[idx] = np.minimum(metres[idx], m.distances)
    return secs, metres


def facility_stations(settings: Settings, key: str, loaded: FacilityLayouts) -> tuple[Station, ...]:
    """The charging stations of the facility ``key``'s layouts, as the daemon finds them."""
    return tuple(charging_stations({key: loaded}, FacilityMaps(settings.facility_specs)))


def mission_places(facility: FacilitySettings, stations: Sequence[Station]) -> tuple[str, ...]:
    """The places a scenario's missions go between: the facility's places, less those at
    a charging station (robots park and charge there). The live run and the offline
    evaluation both draw their workload over these."""
    station_nodes = {s.node_id for s in stations}
    return tuple(p.name for p in facility.places if p.node_id not in station_nodes)


def load_site(settings: Settings, key: str, base_dir: Path | None = None) -> Site:
    """The facility ``key``: its places, its layouts' charging stations, travel matrices."""
    facility = facility_settings(settings, key)
    loaded = load_facility(facility, base_dir)
    stations = facility_stations(settings, key, loaded)
    frame = _frame(facility)

    def spot(name: str, lat: float, lon: float, node_id: str | None) -> Spot:
        node = None
        for doc in loaded.documents:
            node = doc.nodes.get(node_id) if node_id is not None else None
            if node is not None:
                break
        if node is not None:
            x, y = node.x, node.y
        elif frame is not None:
            x, y = frame.from_wgs84(lat, lon)
        else:
            x, y = lon, lat
        return Spot(name, lat, lon, node_id, x, y)

    spots = [spot(p.name, p.lat, p.lon, p.node_id) for p in facility.places]
    places = mission_places(facility, stations)
    named = {s.name for s in spots}
    for st in stations:
        if st.name not in named:
            spots.append(spot(st.name, st.lat, st.lon, st.node_id))
            named.add(st.name)
    if len(places) < 2:
        raise SiteError(f"facility {key!r} has fewer than two places for missions")
    robot_s, robot_m = _robot_matrices(loaded, spots)
    drivers = loaded.drivers.matrices([s.lat for s in spots], [s.lon for s in spots])
    return Site(
        key=key,
        spots=tuple(spots),
        places=places,
        stations=stations,
        robot_s=robot_s,
        robot_m=robot_m,
        driver_s=np.asarray(drivers.durations, dtype=np.float64),
        driver_m=np.asarray(drivers.distances, dtype=np.float64),
    )

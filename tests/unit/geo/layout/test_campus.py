"""The shipped hospital campus: loads, meets the promised counts, agrees with its config."""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from dispatcher.config import FacilitySettings, PlaceSettings, builtin_facilities
from dispatcher.facility_layouts import load_facility, load_facility_layouts, resolve
from geo.frames import MapFrame
from geo.layout import DanglingReferenceError, RouteGraphs, VehicleProfile, load_lif
from geo.layout.drivers import GeodesicModel
from geo.layout.model import LifDocument
from geo.layout.site import Site, load_site

CAMPUS = Path(str(resources.files("geo").joinpath("maps", "hospital-campus.lif.json")))
SITE = CAMPUS.with_name("hospital-campus.site.json")
ROBOT = VehicleProfile("simbot.wheelchair", max_speed_mps=1.2)


@pytest.fixture(scope="module")
def campus() -> LifDocument:
    return load_lif(CAMPUS)


@pytest.fixture(scope="module")
def site() -> Site:
    return load_site(SITE)


def _facility() -> FacilitySettings:
    return builtin_facilities()[0]


class TestShippedCampus:
    def test_counts(self, campus: LifDocument) -> None:
        """At least 150 nodes, 10 charging stations, 20 named places, one-way corridors."""
        assert len(campus.nodes) >= 150
        assert len(campus.charging_stations()) >= 10
        assert len(_facility().places) >= 20
        pairs = {(e.start_node_id, e.end_node_id) for e in campus.edges.values()}
        assert sum((b, a) not in pairs for a, b in pairs) >= 10

    def test_site_has_buildings_and_a_no_go_zone(self, site: Site) -> None:
        """Several buildings, and a no-go zone."""
        assert len(site.buildings) >= 5
        assert any(z.kind.value == "no_go" for z in site.zones.zones)

    def test_default_facility_uses_it(self) -> None:
        """The built-in facility names the campus layout and its roads."""
        facility = _facility()
        assert facility.layouts == ["fleetd:hospital-campus.lif.json"]
        assert resolve(facility.layouts[0], None) == CAMPUS
        loaded = load_facility_layouts([facility], None)[facility.key]
        assert loaded.roads is not None and len(loaded.documents) == 1

    def test_places_sit_on_their_nodes(self, campus: LifDocument) -> None:
        """Each place's lat/lon is its node's x/y through the map frame (within 0.2 m)."""
        facility = _facility()
        frame = MapFrame(facility.maps[0].to_spec())
        for place in facility.places:
            assert place.node_id is not None
            node = campus.nodes[place.node_id]
            x, y = frame.from_wgs84(place.lat, place.lon)
            assert math.hypot(x - node.x, y - node.y) < 0.2, place.name

    def test_every_place_reaches_every_other(self, campus: LifDocument) -> None:
        """All places are mutually reachable for the wheelchair robot, loaded or not."""
        nodes = [p.node_id for p in _facility().places if p.node_id]
        for load in (None, "loaded"):
            profile = VehicleProfile(ROBOT.vehicle_type_id, 1.2, load=load)
            m = RouteGraphs().matrices(campus, profile, nodes)
            assert np.isfinite(m.durations).all()

    def test_no_go_zone_forces_a_detour(self, campus: LifDocument, site: Site) -> None:
        """The construction site cuts the field path: Ward A is further from the gate."""
        graphs = RouteGraphs()
        free = graphs.route(campus, ROBOT, "entrance", "ward-a")
        blocked = graphs.route(campus, ROBOT, "entrance", "ward-a", site.zones)
        assert free is not None and blocked is not None
        assert any(e.startswith("field-path") or "field-path" in e for e in free.edge_ids)
        assert not any("field-path" in e for e in blocked.edge_ids)
        assert blocked.duration_s > free.duration_s

    def test_one_way_ring_in_the_main_hospital(self, campus: LifDocument) -> None:
        """Emergency to Admissions goes with the ring; back the other way is longer."""
        graphs = RouteGraphs()
        there = graphs.route(campus, ROBOT, "h-emergency", "h-admissions")
        back = graphs.route(campus, ROBOT, "h-admissions", "h-emergency")
        assert there is not None and back is not None
        assert back.distance_m > 2 * there.distance_m


class TestFacilityLayouts:
    def test_place_on_a_missing_node_is_refused(self) -> None:
        """A place whose node_id is not in the layouts stops loading, naming the place."""
        facility = _facility().model_copy(
            update={
                "places": [
                    PlaceSettings(name="Nowhere", lat=52.52, lon=13.405, node_id="no-such-node")
                ]
            }
        )
        with pytest.raises(DanglingReferenceError) as exc:
            load_facility(facility, None)
        assert (exc.value.element, exc.value.element_id) == ("place", "Nowhere")

    def test_relative_paths_start_at_the_config_directory(self, tmp_path: Path) -> None:
        """A relative layout path is read from the configuration file's directory."""
        (tmp_path / "site.lif.json").write_bytes(CAMPUS.read_bytes())
        facility = FacilitySettings(key="x", name="X", layouts=["site.lif.json"])
        assert len(load_facility(facility, tmp_path).documents) == 1


class TestDriverModels:
    def test_campus_drivers_use_its_roads(self) -> None:
        """The campus names a road file: drivers' matrices come from the road graph."""
        loaded = load_facility(_facility(), None)
        assert loaded.drivers is loaded.roads
        gate, ward = _facility().places[0], _facility().places[1]
        m = loaded.drivers.matrices([gate.lat, ward.lat], [gate.lon, ward.lon])
        assert 0 < m.durations[0, 1] < float("inf")

    def test_without_roads_the_configured_geodesic_model(self) -> None:
        """No road file: geodesic distance times the facility's detour factor and speed."""
        facility = FacilitySettings(
            key="x", name="X", driver_detour_factor=2.0, driver_speed_mps=5.0
        )
        loaded = load_facility(facility, None)
        assert isinstance(loaded.drivers, GeodesicModel)
        assert (loaded.drivers.detour_factor, loaded.drivers.speed_mps) == (2.0, 5.0)

"""FacilityMaps: frames, facilities and places by the names vehicles and operators use."""

from __future__ import annotations

import uuid

import pytest

from dispatcher.config import FacilitySettings, builtin_facilities
from geo.facility import FacilitySpec
from geo.facility_maps import FacilityMaps


def facility(key: str, *map_ids: str, places: tuple[str, ...] = ()) -> FacilitySpec:
    return FacilitySettings.model_validate(
        {
            "key": key,
            "name": key.title(),
            "maps": [
                {"map_id": m, "origin_lat": 52.0 + i, "origin_lon": 13.0, "rotation_deg": 10.0 * i}
                for i, m in enumerate(map_ids)
            ],
            "places": [
                {"name": p, "lat": 52.0, "lon": 13.0, "node_id": f"node-{p.lower()}"}
                for p in places
            ],
        }
    ).spec


@pytest.fixture
def maps() -> FacilityMaps:
    return FacilityMaps(
        [
            facility("north", "north-g", "north-1", places=("Ward A", "Lobby")),
            facility("south", "south-g", places=("Lobby",)),
        ]
    )


class TestFrames:
    """Each map id has one frame and one facility."""

    def test_frame_per_map(self, maps: FacilityMaps) -> None:
        """frame() returns the map's own frame (its origin and rotation)."""
        f = maps.frame("north-1")
        assert f is not None
        assert f.map_id == "north-1"
        assert f.spec.origin_lat == 53.0 and f.spec.rotation_deg == 10.0

    def test_unknown_map(self, maps: FacilityMaps) -> None:
        """A map no facility has: no frame and no facility (never a guess)."""
        assert maps.frame("elsewhere") is None
        assert maps.facility_for_map("elsewhere") is None

    def test_facility_for_map(self, maps: FacilityMaps) -> None:
        """A robot's mapId tells which facility it is in."""
        found = maps.facility_for_map("south-g")
        assert found is not None and found.key == "south"

    def test_map_in_two_facilities_is_refused(self) -> None:
        """Robots name maps without a facility, so a map id must be unique."""
        with pytest.raises(ValueError, match="shared"):
            FacilityMaps([facility("a", "shared"), facility("b", "shared")])

    def test_duplicate_facility_key_is_refused(self) -> None:
        """Two facilities with one key would make lookups ambiguous."""
        with pytest.raises(ValueError, match="twice"):
            FacilityMaps([facility("a"), facility("a")])


class TestFacilities:
    """Facilities by key, UUID or UUID text."""

    def test_by_key_id_and_text(self, maps: FacilityMaps) -> None:
        """All three spellings find the same facility."""
        north = maps.facility("north")
        assert north is not None
        assert maps.facility(north.id) is north
        assert maps.facility(str(north.id)) is north

    @pytest.mark.parametrize("key", ["east", str(uuid.uuid4()), "", "not-a-uuid-either"])
    def test_unknown(self, maps: FacilityMaps, key: str) -> None:
        """Unknown keys and ids give None."""
        assert maps.facility(key) is None

    def test_iteration(self, maps: FacilityMaps) -> None:
        """Iterating yields the facilities in configuration order."""
        assert [f.key for f in maps] == ["north", "south"]
        assert len(maps) == 2


class TestPlaces:
    """Named places, scoped to their facility."""

    def test_place_by_name(self, maps: FacilityMaps) -> None:
        """A place is found by facility (key or id) and name."""
        place = maps.place("north", "Ward A")
        assert place is not None and place.node_id == "node-ward a"
        north = maps.facility("north")
        assert north is not None
        assert maps.place(north.id, "Ward A") is place

    def test_same_name_in_two_facilities(self, maps: FacilityMaps) -> None:
        """Place names are per facility."""
        assert maps.place("north", "Lobby") is not maps.place("south", "Lobby")

    def test_unknown_place_or_facility(self, maps: FacilityMaps) -> None:
        """Unknown names or facilities give None."""
        assert maps.place("north", "Radiology") is None
        assert maps.place("east", "Lobby") is None

    def test_place_at_node(self, maps: FacilityMaps) -> None:
        """A robot's lastNodeId names the place it stands at."""
        place = maps.place_at_node("south", "node-lobby")
        assert place is not None and place.name == "Lobby"
        assert maps.place_at_node("south", "node-nowhere") is None


class TestBuiltinCampus:
    """The shipped demo campus works end to end."""

    def test_demo_campus(self) -> None:
        """Its map, facility and places resolve; a place converts into the map frame."""
        maps = FacilityMaps(f.spec for f in builtin_facilities())
        f = maps.frame("campus")
        assert f is not None
        entrance = maps.place("demo-campus", "Main Entrance")
        assert entrance is not None
        x, y = f.from_wgs84(entrance.lat, entrance.lon)
        # 0.0002 deg east and 0.0001 deg north of the origin at 52.52 N.
        assert x == pytest.approx(13.57, abs=0.05)
        assert y == pytest.approx(11.13, abs=0.05)

"""The core's facility values, and the settings' translation into them."""

from __future__ import annotations

from dispatcher.config import FacilitySettings, Settings, facility_id
from geo.facility import FacilitySpec, MapSpec, PlaceSpec, same_point


class TestFacilitySpec:
    def test_settings_translate_into_frozen_values(self) -> None:
        """Every configured value reaches the spec; the id is the settings' own."""
        settings = FacilitySettings.model_validate(
            {
                "key": "north",
                "name": "North",
                "timezone": "Europe/Berlin",
                "maps": [{"map_id": "g", "origin_lat": 52.0, "origin_lon": 13.0}],
                "places": [{"name": "Lobby", "lat": 52.1, "lon": 13.1, "node_id": "n1"}],
            }
        )
        assert settings.spec == FacilitySpec(
            id=facility_id("north"),
            key="north",
            name="North",
            timezone="Europe/Berlin",
            maps=(MapSpec("g", 52.0, 13.0, 0.0),),
            places=(PlaceSpec("Lobby", 52.1, 13.1, "n1"),),
        )
        assert settings.spec is settings.spec  # built once

    def test_effective_facilities_translate_too(self) -> None:
        """With no facility configured, the demo campus is the one spec."""
        specs = Settings().facility_specs
        assert [s.key for s in specs] == ["demo-campus"]
        assert specs[0].find_place("Main Entrance") is not None

    def test_find_place_prefers_the_exact_name(self) -> None:
        """Exact match first; a case-insensitive one only when it is unambiguous."""
        spec = FacilitySpec(
            id=facility_id("x"),
            key="x",
            name="X",
            places=(PlaceSpec("Ward", 1, 1), PlaceSpec("WARD", 2.0, 2.0), PlaceSpec("Lab", 3, 3)),
        )
        assert spec.find_place("WARD") == PlaceSpec("WARD", 2.0, 2.0)
        assert spec.find_place("ward") is None
        assert spec.find_place("lab") == PlaceSpec("Lab", 3, 3)


def test_same_point_within_a_centimetre() -> None:
    """Coordinates closer than 1e-7 degrees are one point."""
    assert same_point(52.5, 13.4, 52.50000005, 13.4)
    assert not same_point(52.5, 13.4, 52.5001, 13.4)

"""A layout's map placed on Earth from the facility's places when no map is configured."""

from __future__ import annotations

import math

import pytest

from dispatcher.config import Settings
from dispatcher.facility_layouts import load_facility_layouts
from geo.facility import MapSpec, PlaceSpec
from geo.frames import MapFrame
from geo.layout.georef import fit_map, fitted_maps


def test_the_campus_places_give_back_the_configured_map() -> None:
    """The demo campus configures map 'campus'; fitted from its 26 places alone, the
    placement lands within a metre of it and its rotation within a tenth of a degree."""
    facility = Settings().default_facility
    docs = load_facility_layouts([facility], None)[facility.key].documents
    fitted, missing = fitted_maps(docs, facility.spec.places)
    assert missing == () and set(fitted) == {"campus"}
    fit = fitted["campus"]
    configured = MapFrame(facility.maps[0].to_spec())
    got = MapFrame(fit.spec)
    for x, y in ((0.0, 0.0), (300.0, 200.0), (-50.0, 400.0)):
        a, b = configured.to_wgs84(x, y), got.to_wgs84(x, y)
        assert abs(a[0] - b[0]) * 111_320 < 1.0 and abs(a[1] - b[1]) * 68_000 < 1.0
    assert abs(fit.spec.rotation_deg - facility.maps[0].rotation_deg) < 0.1
    assert fit.pairs >= 20 and fit.rms_m < 2.0
    # Maps already configured are not fitted again.
    assert fitted_maps(docs, facility.spec.places, ["campus"]) == ({}, ())


@pytest.mark.parametrize("rotation", [0.0, 30.0, -120.0])
def test_a_rotated_map_is_recovered(rotation: float) -> None:
    truth = MapFrame(MapSpec("m", 48.137, 11.575, rotation))
    pts = [(0.0, 0.0), (120.0, 10.0), (40.0, 90.0), (-30.0, 60.0)]
    pairs = [(x, y, *truth.to_wgs84(x, y)) for x, y in pts]
    fit = fit_map("m", pairs)
    assert fit.spec.rotation_deg == pytest.approx(rotation, abs=1e-3)
    assert fit.spec.origin_lat == pytest.approx(48.137, abs=1e-7)
    assert fit.spec.origin_lon == pytest.approx(11.575, abs=1e-7)
    assert fit.rms_m < 0.01


def test_one_place_fixes_the_origin_and_none_is_reported() -> None:
    truth = MapFrame(MapSpec("m", 48.137, 11.575, 0.0))
    lat, lon = truth.to_wgs84(25.0, -10.0)
    fit = fit_map("m", [(25.0, -10.0, lat, lon)])
    assert fit.spec.rotation_deg == 0.0
    assert math.isclose(fit.spec.origin_lat, 48.137, abs_tol=1e-7)
    facility = Settings().default_facility
    docs = load_facility_layouts([facility], None)[facility.key].documents
    far = (PlaceSpec("nowhere", 0.0, 0.0, None),)
    assert fitted_maps(docs, far) == ({}, ("campus",))

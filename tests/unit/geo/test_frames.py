"""Map frames: facility map (x, y, theta) <-> WGS84 (lat, lon, heading)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pyproj import Geod

from geo.facility import MapSpec
from geo.frames import MapFrame

BERLIN = (52.52, 13.405)
WGS84 = Geod(ellps="WGS84")


def frame(rotation_deg: float = 0.0, origin: tuple[float, float] = BERLIN) -> MapFrame:
    return MapFrame(
        MapSpec(
            map_id="campus", origin_lat=origin[0], origin_lon=origin[1], rotation_deg=rotation_deg
        )
    )


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Geodesic distance between two (lat, lon) points."""
    _, _, d = WGS84.inv(a[1], a[0], b[1], b[0])
    return float(d)


class TestPositions:
    """Points move between the frames without losing precision."""

    def test_origin_is_the_configured_point(self) -> None:
        """(0, 0) is origin_lat/origin_lon exactly, in both directions."""
        f = frame(rotation_deg=33.0)
        lat, lon = f.to_wgs84(0.0, 0.0)
        assert (lat, lon) == pytest.approx(BERLIN, abs=1e-12)
        assert f.from_wgs84(*BERLIN) == pytest.approx((0.0, 0.0), abs=1e-9)

    def test_one_km_east_at_berlin(self) -> None:
        """1 km along +x (rotation 0 = east) is ~0.0147 degrees of longitude at 52.52 N."""
        lat, lon = frame().to_wgs84(1000.0, 0.0)
        assert lon - BERLIN[1] == pytest.approx(0.014732, abs=2e-6)
        assert lat == pytest.approx(BERLIN[0], abs=1e-5)  # a straight line leaves the parallel
        assert distance_m(BERLIN, (lat, lon)) == pytest.approx(1000.0, abs=1e-3)

    def test_one_km_north(self) -> None:
        """1 km along +y is ~0.008987 degrees of latitude (111.28 km/deg there), same lon."""
        lat, lon = frame().to_wgs84(0.0, 1000.0)
        assert lat - BERLIN[0] == pytest.approx(0.0089866, abs=2e-6)
        assert lon == pytest.approx(BERLIN[1], abs=1e-12)
        assert distance_m(BERLIN, (lat, lon)) == pytest.approx(1000.0, abs=1e-3)

    @pytest.mark.parametrize("rotation", [0.0, 17.5, 90.0, -135.0, 359.0])
    def test_distances_are_true(self, rotation: float) -> None:
        """Distance from the origin is the map distance, whatever the rotation."""
        f = frame(rotation)
        for x, y in [(1500.0, -700.0), (-2000.0, 10.0), (3.0, 4.0)]:
            assert distance_m(BERLIN, f.to_wgs84(x, y)) == pytest.approx(math.hypot(x, y), abs=1e-3)

    @pytest.mark.parametrize("rotation", [0.0, 33.0, 90.0, -90.0, 180.0, 271.5])
    @pytest.mark.parametrize("origin", [BERLIN, (-33.87, 151.21), (64.15, -21.94), (0.0, 179.99)])
    def test_round_trip_within_a_millimetre_over_2_km(
        self, rotation: float, origin: tuple[float, float]
    ) -> None:
        """x, y -> lat, lon -> x, y comes back within 1 mm anywhere within 2 km."""
        f = frame(rotation, origin)
        rng = np.random.default_rng(5050)
        for x, y in rng.uniform(-2000.0, 2000.0, size=(200, 2)):
            bx, by = f.from_wgs84(*f.to_wgs84(float(x), float(y)))
            assert math.hypot(bx - x, by - y) < 1e-3

    def test_rotation_90_puts_plus_x_north(self) -> None:
        """rotation_deg=90: the map's +x axis points north, +y points west."""
        f = frame(90.0)
        lat, lon = f.to_wgs84(1000.0, 0.0)
        assert lat > BERLIN[0] and lon == pytest.approx(BERLIN[1], abs=1e-9)
        lat, lon = f.to_wgs84(0.0, 1000.0)
        assert lon < BERLIN[1] and lat == pytest.approx(BERLIN[0], abs=1e-4)

    def test_rotation_is_counter_clockwise(self) -> None:
        """rotation_deg=45: +x points north-east."""
        lat, lon = frame(45.0).to_wgs84(1000.0, 0.0)
        fwd, _, _ = WGS84.inv(BERLIN[1], BERLIN[0], lon, lat)
        assert fwd == pytest.approx(45.0, abs=0.01)


class TestBatch:
    """to_wgs84_many converts a whole flush in one call, with the same results."""

    def test_matches_single_conversions(self) -> None:
        """Element by element equal to to_wgs84."""
        f = frame(21.0)
        xs = [0.0, 10.0, -250.5, 1999.0]
        ys = [0.0, -3.0, 800.25, -1999.0]
        lats, lons = f.to_wgs84_many(xs, ys)
        assert lats.dtype == np.float64 and lats.shape == (4,)
        for x, y, lat, lon in zip(xs, ys, lats, lons, strict=True):
            assert (lat, lon) == pytest.approx(f.to_wgs84(x, y), abs=1e-12)

    def test_numpy_in_and_back(self) -> None:
        """Arrays in, arrays out; from_wgs84_many inverts to_wgs84_many."""
        f = frame(-60.0)
        rng = np.random.default_rng(1)
        xs, ys = rng.uniform(-2000, 2000, 5000), rng.uniform(-2000, 2000, 5000)
        bx, by = f.from_wgs84_many(*f.to_wgs84_many(xs, ys))
        assert np.max(np.hypot(bx - xs, by - ys)) < 1e-3

    def test_empty_batch(self) -> None:
        """An empty flush converts to empty arrays."""
        lats, lons = frame().to_wgs84_many([], [])
        assert lats.shape == lons.shape == (0,)

    def test_shape_mismatch(self) -> None:
        """xs and ys of different lengths are a caller bug."""
        with pytest.raises(ValueError, match="shape"):
            frame().to_wgs84_many([1.0, 2.0], [1.0])


class TestHeadings:
    """Map theta (rad, CCW from +x) <-> compass heading (deg, CW from north)."""

    @pytest.mark.parametrize(
        ("rotation", "theta", "heading"),
        [
            (0.0, 0.0, 90.0),  # +x is east
            (0.0, math.pi / 2, 0.0),  # +y is north
            (0.0, math.pi, 270.0),
            (0.0, -math.pi / 2, 180.0),
            (90.0, 0.0, 0.0),  # rotation 90: +x is north
            (90.0, math.pi / 2, 270.0),  # and +y west
            (30.0, 0.0, 60.0),
        ],
    )
    def test_known_headings(self, rotation: float, theta: float, heading: float) -> None:
        """The compass heading of a map direction."""
        got = frame(rotation).heading_to_geo(theta)
        assert 0.0 <= got < 360.0
        assert got == pytest.approx(heading, abs=1e-9)

    @pytest.mark.parametrize("rotation", [0.0, 45.0, -170.0])
    def test_round_trip(self, rotation: float) -> None:
        """theta -> heading -> theta is the identity, within VDA 5050's [-pi, pi]."""
        f = frame(rotation)
        for theta in np.linspace(-math.pi + 1e-9, math.pi, 37):
            back = f.heading_from_geo(f.heading_to_geo(float(theta)))
            assert -math.pi <= back <= math.pi
            assert math.isclose(back, theta, abs_tol=1e-9)

    def test_heading_matches_the_geodesic_direction(self) -> None:
        """A robot facing theta moves along the compass heading reported for it."""
        f = frame(20.0)
        theta = 0.7
        lat, lon = f.to_wgs84(100 * math.cos(theta), 100 * math.sin(theta))
        fwd, _, _ = WGS84.inv(BERLIN[1], BERLIN[0], lon, lat)
        assert fwd % 360 == pytest.approx(f.heading_to_geo(theta), abs=0.01)

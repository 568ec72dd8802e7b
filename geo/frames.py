"""A facility map's local metric frame and WGS84, both ways.

A VDA 5050 robot reports ``agvPosition`` (x, y in metres, theta in radians) in its map's
frame: right-handed, z up, theta counter-clockwise from +x (spec section 6.6.5). The
map's origin sits at ``origin_lat/origin_lon`` and its +x axis points ``rotation_deg``
counter-clockwise from geographic east (:class:`geo.facility.MapSpec`).

The frame is an azimuthal equidistant projection centred on the origin, so distances
and directions from the origin are true and the error stays far below a millimetre over
a campus. A map (x, y) is first rotated into (east, north) metres, then unprojected.
One pyproj ``Transformer`` per map is built once and used in both directions.

Headings ignore the meridian convergence of the projection: within 2 km of the origin
grid north and true north differ by less than 0.03 degrees.

pyproj transformers are not thread-safe; fleetd uses them from the event loop only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from pyproj import CRS, Transformer
from pyproj.enums import TransformDirection

from geo.facility import MapSpec

FloatArray = npt.NDArray[np.float64]


class MapFrame:
    """Conversions between one map's (x, y, theta) and (lat, lon, heading)."""

    __slots__ = ("_cos", "_rotation_rad", "_sin", "_transformer", "spec")

    def __init__(self, spec: MapSpec) -> None:
        self.spec = spec
        local = CRS.from_proj4(
            f"+proj=aeqd +lat_0={spec.origin_lat!r} +lon_0={spec.origin_lon!r} "
            "+x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs"
        )
        # always_xy: (lon, lat) and (east, north) in that order, whatever EPSG says.
        self._transformer = Transformer.from_crs(local, CRS.from_epsg(4326), always_xy=True)
        self._rotation_rad = math.radians(spec.rotation_deg)
        self._cos = math.cos(self._rotation_rad)
        self._sin = math.sin(self._rotation_rad)

    @property
    def map_id(self) -> str:
        return self.spec.map_id

    # -- positions ---------------------------------------------------------------------

    def to_wgs84(self, x: float, y: float) -> tuple[float, float]:
        """Map (x, y) in metres -> (lat, lon) in degrees."""
        east, north = self._to_en(x, y)
        lon, lat = self._transformer.transform(east, north)
        return float(lat), float(lon)

    def from_wgs84(self, lat: float, lon: float) -> tuple[float, float]:
        """(lat, lon) in degrees -> map (x, y) in metres."""
        east, north = self._transformer.transform(lon, lat, direction=TransformDirection.INVERSE)
        return self._from_en(float(east), float(north))

    def to_wgs84_many(
        self, xs: Sequence[float] | FloatArray, ys: Sequence[float] | FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Vectorised :meth:`to_wgs84`: one pyproj call for the whole batch.

        Returns ``(lats, lons)`` as float64 arrays of the inputs' length.
        """
        x = np.asarray(xs, dtype=np.float64)
        y = np.asarray(ys, dtype=np.float64)
        if x.shape != y.shape:
            raise ValueError(f"xs and ys differ in shape: {x.shape} != {y.shape}")
        east = x * self._cos - y * self._sin
        north = x * self._sin + y * self._cos
        lons, lats = self._transformer.transform(east, north)
        return np.asarray(lats, dtype=np.float64), np.asarray(lons, dtype=np.float64)

    def from_wgs84_many(
        self, lats: Sequence[float] | FloatArray, lons: Sequence[float] | FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Vectorised :meth:`from_wgs84`; returns ``(xs, ys)``."""
        lat = np.asarray(lats, dtype=np.float64)
        lon = np.asarray(lons, dtype=np.float64)
        if lat.shape != lon.shape:
            raise ValueError(f"lats and lons differ in shape: {lat.shape} != {lon.shape}")
        east, north = self._transformer.transform(lon, lat, direction=TransformDirection.INVERSE)
        east = np.asarray(east, dtype=np.float64)
        north = np.asarray(north, dtype=np.float64)
        return east * self._cos + north * self._sin, -east * self._sin + north * self._cos

    # -- headings ----------------------------------------------------------------------

    def heading_to_geo(self, theta_rad: float) -> float:
        """Map theta (radians, CCW from +x) -> compass heading (degrees CW from north, [0, 360))."""
        ccw_from_east = math.degrees(theta_rad) + self.spec.rotation_deg
        return (90.0 - ccw_from_east) % 360.0

    def heading_from_geo(self, heading_deg: float) -> float:
        """Compass heading (degrees CW from north) -> map theta in radians, in (-pi, pi]."""
        theta = math.radians(90.0 - heading_deg - self.spec.rotation_deg)
        # Normalise to VDA 5050's [-pi, pi] range.
        return math.pi - (math.pi - theta) % math.tau

    # -- helpers -----------------------------------------------------------------------

    def _to_en(self, x: float, y: float) -> tuple[float, float]:
        return x * self._cos - y * self._sin, x * self._sin + y * self._cos

    def _from_en(self, east: float, north: float) -> tuple[float, float]:
        return east * self._cos + north * self._sin, -east * self._sin + north * self._cos

    def __repr__(self) -> str:
        s = self.spec
        return (
            f"MapFrame({s.map_id!r}, origin=({s.origin_lat}, {s.origin_lon}), "
            f"rotation_deg={s.rotation_deg})"
        )

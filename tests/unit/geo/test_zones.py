"""Zone geometry checks (pure): what may be stored, and errors that name the culprit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from geo.zones import GeometryError, validate_geometry

SQUARE = [[13.40, 52.52], [13.41, 52.52], [13.41, 52.53], [13.40, 52.53], [13.40, 52.52]]


def polygon(*rings: Sequence[Sequence[object]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": list(rings)}


class TestValidGeometry:
    def test_polygon_passes_as_2d_geojson(self) -> None:
        """A closed ring is accepted; an altitude is dropped (storage is 2-D)."""
        with_altitude = [[*p, 34.0] for p in SQUARE]
        assert validate_geometry(polygon(with_altitude)) == polygon(SQUARE)

    def test_multipolygon_passes(self) -> None:
        """A MultiPolygon of valid polygons is accepted as it is."""
        geometry = {"type": "MultiPolygon", "coordinates": [[SQUARE]]}
        assert validate_geometry(geometry) == geometry


class TestRefused:
    @pytest.mark.parametrize(
        ("geometry", "field"),
        [
            ({"type": "Point", "coordinates": [13.4, 52.5]}, "body.geometry.type"),
            (polygon(), "body.geometry.coordinates"),
            (polygon(SQUARE[:3]), "body.geometry.coordinates[0]"),
            (polygon([*SQUARE[:4], [13.40, 52.521]]), "body.geometry.coordinates[0]"),
            (polygon([SQUARE[0], [200.0, 52.5], *SQUARE[2:]]), "body.geometry.coordinates[0][1]"),
            (polygon([SQUARE[0], [13.41, "x"], *SQUARE[2:]]), "body.geometry.coordinates[0][1]"),
        ],
        ids=["not_a_polygon", "no_rings", "short_ring", "open_ring", "longitude", "not_numbers"],
    )
    def test_error_names_the_member(self, geometry: dict[str, Any], field: str) -> None:
        """Each problem is reported on the member that has it."""
        with pytest.raises(GeometryError) as exc:
            validate_geometry(geometry)
        assert exc.value.field == field

    def test_self_intersection_is_invalid(self) -> None:
        """A bow tie is closed and in range, but not a valid polygon for GEOS."""
        bow_tie = [[13.40, 52.52], [13.41, 52.53], [13.41, 52.52], [13.40, 52.53], [13.40, 52.52]]
        with pytest.raises(GeometryError) as exc:
            validate_geometry(polygon(bow_tie))
        assert exc.value.field == "body.geometry" and "Self-intersection" in exc.value.message

    def test_too_many_positions(self) -> None:
        """Beyond the vertex limit the geometry is refused before GEOS sees it."""
        with pytest.raises(GeometryError) as exc:
            validate_geometry(polygon(SQUARE), max_vertices=4)
        assert "at most 4" in exc.value.message

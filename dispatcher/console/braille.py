"""A facility map in braille characters: each cell holds 2x4 dots, so a 40x12 panel is an
80x48 dot canvas. Pure: the layout outline (``GET /v1/facilities/{key}/layout``) and the
vehicles' positions in, text lines out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_BASE = 0x2800
#: Dot bit of (column 0-1, row 0-3) inside one braille cell.
_BITS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))


class Canvas:
    """A grid of braille cells to draw dots and lines on, plus single-character marks."""

    def __init__(self, cols: int, rows: int) -> None:
        self.cols, self.rows = max(1, cols), max(1, rows)
        self._dots = [[0] * self.cols for _ in range(self.rows)]
        self._marks: dict[tuple[int, int], str] = {}

    @property
    def width(self) -> int:
        return self.cols * 2

    @property
    def height(self) -> int:
        return self.rows * 4

    def dot(self, x: int, y: int) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            self._dots[y // 4][x // 2] |= _BITS[x % 2][y % 4]

    def line(self, x0: int, y0: int, x1: int, y1: int) -> None:
        """Bresenham's line between two dots."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        for _ in range(self.width + self.height + 2):
            self.dot(x0, y0)
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def mark(self, x: int, y: int, char: str) -> None:
        """Put ``char`` in the cell holding dot (x, y) (a vehicle over the graph)."""
        if 0 <= x < self.width and 0 <= y < self.height:
            self._marks[(y // 4, x // 2)] = char[:1]

    def lines(self) -> list[str]:
        out = []
        for r, row in enumerate(self._dots):
            cells = [
                self._marks.get((r, c)) or (chr(_BASE + bits) if bits else " ")
                for c, bits in enumerate(row)
            ]
            out.append("".join(cells))
        return out


@dataclass(frozen=True, slots=True)
class Projection:
    """Latitude/longitude onto the canvas's dots, keeping the aspect (a terminal cell is
    about twice as tall as wide; a braille dot is roughly square)."""

    min_lat: float
    min_lon: float
    scale: float
    width: int
    height: int
    x_off: float
    y_off: float

    @classmethod
    def fit(cls, bounds: Sequence[float], width: int, height: int, lat_factor: float) -> Projection:
        min_lat, min_lon, max_lat, max_lon = bounds
        span_x = max((max_lon - min_lon) * lat_factor, 1e-9)
        span_y = max(max_lat - min_lat, 1e-9)
        scale = min((width - 1) / span_x, (height - 1) / span_y)
        x_off = ((width - 1) - span_x * scale) / 2
        y_off = ((height - 1) - span_y * scale) / 2
        return cls(min_lat, min_lon, scale, width, height, x_off / lat_factor, y_off)

    def to_dot(self, lat: float, lon: float, lat_factor: float) -> tuple[int, int]:
        x = (lon - self.min_lon) * lat_factor * self.scale + self.x_off * lat_factor
        y = (self.height - 1) - ((lat - self.min_lat) * self.scale + self.y_off)
        return round(x), round(y)


def draw_map(
    cols: int,
    rows: int,
    nodes: Sequence[Sequence[object]],
    edges: Iterable[Sequence[int]],
    vehicles: Iterable[tuple[float, float, str]],
    bounds: Sequence[float] | None,
) -> list[str]:
    """``rows`` lines of ``cols`` characters: the route graph in braille, each vehicle as
    its mark (``vehicles``: lat, lon, one character). Empty lines without bounds."""
    canvas = Canvas(cols, rows)
    if not bounds:
        return canvas.lines()
    import math

    mid_lat = (float(bounds[0]) + float(bounds[2])) / 2
    lat_factor = max(math.cos(math.radians(mid_lat)), 0.01)
    proj = Projection.fit([float(b) for b in bounds], canvas.width, canvas.height, lat_factor)
    points = [proj.to_dot(float(n[1]), float(n[2]), lat_factor) for n in nodes]  # type: ignore[arg-type]
    for a, b in edges:
        if 0 <= a < len(points) and 0 <= b < len(points):
            canvas.line(*points[a], *points[b])
    for x, y in points:
        canvas.dot(x, y)
    for lat, lon, char in vehicles:
        canvas.mark(*proj.to_dot(lat, lon, lat_factor), char)
    return canvas.lines()

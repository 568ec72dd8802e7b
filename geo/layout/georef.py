"""Where a layout's map lies on Earth when the configuration does not say (pure).

A LIF file has node positions in metres in each map's local frame but no geographic
reference; ``[[facilities.maps]]`` gives it (origin and rotation). A facility configured
with layouts but without maps still has its places: each named place with a ``node_id``
pairs a node's map position with the place's latitude and longitude. From those pairs
:func:`fit_map` finds the map's origin and rotation (a rigid 2-D fit: LIF units are metres,
so no scale), which is what zones stored on Earth need to be cut into the route graph.

One pair fixes the origin only (the map is taken as x east, y north); two or more fix the
rotation too (least squares, Kabsch). :func:`fit_map` reports the fit's root-mean-square
residual, so a caller can warn about places drawn far from their nodes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from geo.facility import MapSpec, PlaceSpec
from geo.frames import MapFrame
from geo.layout.model import LifDocument


@dataclass(frozen=True, slots=True)
class FittedMap:
    """A map's fitted placement and how well the places agree with it."""

    spec: MapSpec
    #: How many place/node pairs it rests on.
    pairs: int
    #: Root-mean-square distance (m) between the places and their nodes once placed.
    rms_m: float


def fit_map(map_id: str, pairs: Sequence[tuple[float, float, float, float]]) -> FittedMap:
    """The placement of map ``map_id`` from ``(x, y, lat, lon)`` pairs (at least one)."""
    if not pairs:
        raise ValueError(f"map {map_id!r}: no place with a node to locate it")
    arr = np.asarray(pairs, dtype=np.float64)
    xy, lat, lon = arr[:, :2], arr[:, 2], arr[:, 3]
    # A local metric frame centred on the places, east and north (no rotation).
    local = MapFrame(MapSpec("fit", float(lat.mean()), float(lon.mean())))
    east, north = local.from_wgs84_many(lat, lon)
    en = np.column_stack([east, north])
    pc, qc = xy - xy.mean(axis=0), en - en.mean(axis=0)
    theta = 0.0
    if len(arr) > 1:
        h = pc.T @ qc  # cross-covariance; the best rotation maximises trace(R h)
        theta = math.atan2(h[0, 1] - h[1, 0], h[0, 0] + h[1, 1])
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    shift = en.mean(axis=0) - rot @ xy.mean(axis=0)
    residual = (rot @ xy.T).T + shift - en
    origin_lat, origin_lon = local.to_wgs84(float(shift[0]), float(shift[1]))
    spec = MapSpec(map_id, origin_lat, origin_lon, math.degrees(theta))
    rms = float(np.sqrt((residual**2).sum(axis=1).mean()))
    return FittedMap(spec, len(arr), rms)


def layout_map_ids(documents: Iterable[LifDocument]) -> tuple[str, ...]:
    """Every map id the documents' nodes are on, sorted."""
    return tuple(sorted({n.map_id for d in documents for n in d.nodes.values() if n.map_id}))


def fitted_maps(
    documents: Sequence[LifDocument], places: Iterable[PlaceSpec], known: Iterable[str] = ()
) -> tuple[dict[str, FittedMap], tuple[str, ...]]:
    """Placements fitted from ``places`` for the layouts' maps not in ``known``, and the
    map ids that could not be placed (no place names one of their nodes)."""
    skip = set(known)
    pairs: dict[str, list[tuple[float, float, float, float]]] = {}
    for place in places:
        if place.node_id is None:
            continue
        for doc in documents:
            node = doc.nodes.get(place.node_id)
            if node is not None and node.map_id and node.map_id not in skip:
                pairs.setdefault(node.map_id, []).append((node.x, node.y, place.lat, place.lon))
                break
    fitted = {m: fit_map(m, p) for m, p in sorted(pairs.items())}
    missing = tuple(m for m in layout_map_ids(documents) if m not in skip and m not in fitted)
    return fitted, missing

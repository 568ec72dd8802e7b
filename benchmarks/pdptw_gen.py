"""Seeded Li & Lim-like PDPTW instances in VROOM's JSON problem format.

Locations are random (R), clustered (C) or mixed (RC) points on a 100x100 plane; travel
time and cost are the rounded Euclidean distance times ``scale`` (as in the Li & Lim
instances, where time equals distance). One depot; identical vehicles with a capacity;
each shipment's pickup window is tight (width 0.5-1.5 h scaled) or wide (a quarter of
the horizon), the delivery window starts no earlier than a direct trip allows.
"""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np


def _points(rng: random.Random, n: int, layout: str) -> list[tuple[float, float]]:
    if layout == "R":
        return [(rng.uniform(0, 100), rng.uniform(0, 100)) for _ in range(n)]
    centres = [(rng.uniform(10, 90), rng.uniform(10, 90)) for _ in range(max(3, n // 25))]
    clustered = []
    for _ in range(n):
        cx, cy = rng.choice(centres)
        clustered.append((min(100, max(0, rng.gauss(cx, 5))), min(100, max(0, rng.gauss(cy, 5)))))
    if layout == "C":
        return clustered
    return [clustered[i] if i % 2 else (rng.uniform(0, 100), rng.uniform(0, 100)) for i in range(n)]


def instance(
    n_shipments: int, layout: str, tight: bool, seed: int, scale: int = 10
) -> dict[str, Any]:
    """A VROOM problem with ``n_shipments`` shipments (layout ``R``, ``C`` or ``RC``)."""
    rng = random.Random(seed)
    pts = [(50.0, 50.0), *_points(rng, 2 * n_shipments, layout)]
    xy = np.asarray(pts)
    dist = np.rint(
        np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1]) * scale
    )
    matrix = dist.astype(np.int64)
    horizon = int(1000 * scale)
    capacity = 200 if not tight else 100
    service = 10 * scale
    shipments = []
    for i in range(n_shipments):
        p, d = 1 + 2 * i, 2 + 2 * i
        direct = int(matrix[0, p] + matrix[p, d] + matrix[d, 0]) + 2 * service
        latest = max(int(matrix[0, p]), horizon - direct + int(matrix[0, p]))
        ready = rng.randint(int(matrix[0, p]), max(int(matrix[0, p]), latest))
        width = int(rng.uniform(0.5, 1.5) * 60 * scale) if tight else horizon // 4
        p_tw = [ready, min(ready + width, latest)]
        d_open = p_tw[0] + service + int(matrix[p, d])
        d_close = max(
            d_open, min(p_tw[1] + service + int(matrix[p, d]) + width, horizon - int(matrix[d, 0]))
        )
        amount = rng.randint(10, 40)
        shipments.append(
            {
                "amount": [amount],
                "pickup": {
                    "id": i + 1,
                    "location_index": p,
                    "service": service,
                    "time_windows": [p_tw],
                },
                "delivery": {
                    "id": i + 1,
                    "location_index": d,
                    "service": service,
                    "time_windows": [[d_open, d_close]],
                },
            }
        )
    n_vehicles = max(5, math.ceil(n_shipments / 4))
    vehicles = [
        {
            "id": k + 1,
            "start_index": 0,
            "end_index": 0,
            "capacity": [capacity],
            "time_window": [0, horizon],
        }
        for k in range(n_vehicles)
    ]
    return {
        "vehicles": vehicles,
        "shipments": shipments,
        "matrices": {"car": {"durations": matrix.tolist()}},
    }

"""Edge shapes: a straight segment, or the edge's NURBS trajectory sampled as a polyline."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.interpolate import BSpline

from geo.layout.model import Trajectory

FloatArray = npt.NDArray[np.float64]

#: Points per trajectory when sampling it; curves in a facility are a few metres long, and
#: 64 chords put the length error of a quarter circle below 0.01 %.
SAMPLES = 64


def sample_trajectory(traj: Trajectory, samples: int = SAMPLES) -> FloatArray:
    """``samples`` points (x, y) along a NURBS trajectory, from its first knot to its last.

    A rational B-spline is a plain B-spline in homogeneous coordinates (w*x, w*y, w),
    divided back by w, so scipy's BSpline evaluates it without a Python loop.
    """
    pts = np.array([(c.x * c.weight, c.y * c.weight, c.weight) for c in traj.control_points])
    knots = np.asarray(traj.knot_vector, dtype=np.float64)
    spline = BSpline(knots, pts, traj.degree, extrapolate=False)
    lo, hi = knots[traj.degree], knots[-traj.degree - 1]
    t = np.linspace(lo, hi, samples)
    h = spline(t)
    out: FloatArray = h[:, :2] / h[:, 2:3]
    return out


def polyline_length(points: FloatArray) -> float:
    """Sum of the chord lengths of a polyline given as an (n, 2) array."""
    return float(np.hypot(*np.diff(points, axis=0).T).sum())

"""Is a driver's position fix plausible? A small filter in front of the live position (pure).

A phone's GPS can scatter by tens of metres (indoors, between tall buildings); planning
with such a fix sends offers to the wrong driver. A fix is refused, and the driver's
last plausible position kept, when

- it reports an ``accuracy_m`` worse than ``max_accuracy_m`` (the phone itself says the
  fix is poor), or
- it is farther from the last accepted fix than the driver could have travelled since:
  ``max_speed_mps`` times the seconds between the two, plus both fixes' accuracy (or
  ``default_accuracy_m`` each when the phone does not say) for the jitter of a driver
  standing still.

The first fix of a driver has nothing to be compared with and is taken (unless its
accuracy is too poor). A real jump (a driver whose phone had no fix for a while) is
taken as soon as the time since the last accepted fix allows that distance. A driver
with ``unreliable_after`` refused fixes within ``window_s`` is *unreliable* (the
``position_unreliable`` alert) until a window passes without a refused fix.
"""

from __future__ import annotations

import math
import uuid
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from fleet.model import GeoPosition


class FixReason(StrEnum):
    """Why a fix was refused (a metric label)."""

    ACCURACY = "accuracy"
    SPEED = "speed"


@dataclass(frozen=True, slots=True)
class FixLimits:
    """When a fix is implausible, and when a driver's fixes are unreliable."""

    max_speed_mps: float = 15.0
    max_accuracy_m: float = 30.0
    #: Assumed accuracy of a fix that reports none (metres).
    default_accuracy_m: float = 10.0
    unreliable_after: int = 5
    window_s: float = 60.0


@dataclass(frozen=True, slots=True)
class _Accepted:
    lat: float
    lon: float
    accuracy_m: float | None
    at: float


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine), metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000.0 * math.asin(math.sqrt(min(1.0, a)))


def judge(
    last: _Accepted | None, fix: GeoPosition, at: float, limits: FixLimits
) -> FixReason | None:
    """Why ``fix`` (received at ``at``, epoch seconds) is implausible after ``last``, or
    None when it is plausible."""
    if fix.accuracy_m is not None and fix.accuracy_m > limits.max_accuracy_m:
        return FixReason.ACCURACY
    if last is None:
        return None
    dt = max(0.0, at - last.at)
    slack = (last.accuracy_m if last.accuracy_m is not None else limits.default_accuracy_m) + (
        fix.accuracy_m if fix.accuracy_m is not None else limits.default_accuracy_m
    )
    if distance_m(last.lat, last.lon, fix.lat, fix.lon) > limits.max_speed_mps * dt + slack:
        return FixReason.SPEED
    return None


@dataclass(slots=True)
class FixFilter:
    """Per driver: the last accepted fix and the recent refusals."""

    limits: FixLimits = field(default_factory=FixLimits)
    _last: dict[uuid.UUID, _Accepted] = field(default_factory=dict)
    _refused: dict[uuid.UUID, deque[float]] = field(default_factory=dict)
    #: Drivers found unreliable, until a window passes without a refused fix.
    _flagged: set[uuid.UUID] = field(default_factory=set)

    def take(self, vehicle_id: uuid.UUID, fix: GeoPosition, at: float) -> FixReason | None:
        """Judge one fix: None (accepted, now the reference) or why it is refused."""
        reason = judge(self._last.get(vehicle_id), fix, at, self.limits)
        if reason is None:
            self._last[vehicle_id] = _Accepted(fix.lat, fix.lon, fix.accuracy_m, at)
            return None
        times = self._refused.setdefault(vehicle_id, deque(maxlen=self.limits.unreliable_after))
        times.append(at)
        if len(times) >= self.limits.unreliable_after and at - times[0] <= self.limits.window_s:
            self._flagged.add(vehicle_id)
        return reason

    def forget(self, vehicle_id: uuid.UUID) -> None:
        """A driver gone (offline, removed): its next fix starts afresh."""
        self._last.pop(vehicle_id, None)
        self._refused.pop(vehicle_id, None)
        self._flagged.discard(vehicle_id)

    def unreliable(self, now: float) -> frozenset[uuid.UUID]:
        """Drivers that had ``unreliable_after`` refused fixes within ``window_s``, and
        have had a refused fix within the last ``window_s`` since."""
        for vehicle_id, times in list(self._refused.items()):
            if not times or now - times[-1] > self.limits.window_s:
                del self._refused[vehicle_id]  # a quiet window: reliable again
                self._flagged.discard(vehicle_id)
        return frozenset(self._flagged)

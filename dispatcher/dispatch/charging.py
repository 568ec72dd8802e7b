"""The charging policy (pure): who goes to charge, where, and when it is back in service.

A robot below ``charge_below_pct`` with no mission goes to the nearest charging station
of its facility that nobody else uses or is heading to; one station, one robot. It is
dispatchable again above ``resume_above_pct`` and is never planned below its reserve.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ChargePolicy:
    """Thresholds, in percent of a full battery."""

    charge_below_pct: float
    resume_above_pct: float
    reserve_pct: float


@dataclass(frozen=True, slots=True)
class Station:
    """A charging station: a place of the facility (and its layout node for robots)."""

    name: str
    facility_id: uuid.UUID
    node_id: str | None
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class RobotNeed:
    """A robot that might need to charge."""

    vehicle_id: uuid.UUID
    facility_id: uuid.UUID
    lat: float
    lon: float
    battery_pct: float
    busy: bool  # holds a mission or a leg
    charging: bool
    forced: bool = False  # the operator asked it to charge


def needs_charge(robot: RobotNeed, policy: ChargePolicy) -> bool:
    """Whether ``robot`` should go and charge now."""
    if robot.busy or robot.charging:
        return False
    return robot.forced or robot.battery_pct < policy.charge_below_pct


def dispatchable(battery_pct: float | None, charging: bool, policy: ChargePolicy) -> bool:
    """Whether a vehicle's battery lets it take missions: above the reserve, and when it
    is charging, above the resume threshold (a vehicle with no battery reading may go)."""
    if battery_pct is None:
        return True
    if charging:
        return battery_pct >= policy.resume_above_pct
    return battery_pct > policy.reserve_pct


def _distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine), good enough to rank stations of one site."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000.0 * math.asin(math.sqrt(min(1.0, a)))


def choose_stations(
    robots: Sequence[RobotNeed],
    stations: Sequence[Station],
    taken: Iterable[str],
    policy: ChargePolicy,
) -> dict[uuid.UUID, Station]:
    """Robot -> station for every robot that needs to charge and can get a free one.

    ``taken`` names stations in use or already promised. The lowest battery chooses
    first, each its nearest free station of its own facility; no station twice.
    """
    used = set(taken)
    out: dict[uuid.UUID, Station] = {}
    needy = sorted(
        (r for r in robots if needs_charge(r, policy)),
        key=lambda r: (not r.forced, r.battery_pct, str(r.vehicle_id)),
    )
    for robot in needy:
        free = [s for s in stations if s.facility_id == robot.facility_id and s.name not in used]
        if not free:
            continue
        best = min(free, key=lambda s: (_distance_m(robot.lat, robot.lon, s.lat, s.lon), s.name))
        used.add(best.name)
        out[robot.vehicle_id] = best
    return out

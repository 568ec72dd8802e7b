"""VROOM's JSON problem and solution formats (docs/API.md of VROOM-Project/vroom).

``read_problem`` turns a VROOM problem (a parsed JSON object) into a :class:`Problem`;
``write_solution`` turns a :class:`Plan` into VROOM's solution object; ``write_problem``
goes the other way for snapshots. fleetd reads shipments (not jobs), custom matrices
(``matrices`` per profile, or the legacy top-level ``matrix``) and location indices, not
coordinates. Extensions fleetd reads and writes live under ``fleetd`` keys, which VROOM
ignores (see docs/dispatch.md).
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dispatcher.planner.model import (
    HORIZON,
    Objective,
    Problem,
    Profile,
    Request,
    Vehicle,
    VehicleKind,
)

NonNeg = Annotated[int, Field(ge=0)]
Window = tuple[NonNeg, NonNeg]


class ProblemFormatError(ValueError):
    """A problem file that does not match the format; ``field`` names where (dotted path)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class VroomCosts(_In):
    fixed: NonNeg = 0
    per_hour: NonNeg = 3600
    per_km: NonNeg = 0


class VroomVehicleExt(_In):
    """fleetd's per-vehicle extension (``vehicles[].fleetd``)."""

    kind: VehicleKind = VehicleKind.ROBOT
    capabilities: list[str] = Field(default_factory=list)
    range_m: NonNeg | None = None
    reserve_m: NonNeg = 0
    id: str | None = None


class VroomVehicle(_In):
    id: NonNeg
    profile: str = "car"
    start_index: NonNeg | None = None
    end_index: NonNeg | None = None
    capacity: list[NonNeg] = Field(default_factory=list)
    skills: list[NonNeg] = Field(default_factory=list)
    time_window: Window | None = None
    costs: VroomCosts = Field(default_factory=VroomCosts)
    max_tasks: NonNeg | None = None
    max_distance: NonNeg | None = None
    speed_factor: Annotated[float, Field(gt=0, le=5)] = 1.0
    fleetd: VroomVehicleExt | None = None


class VroomStep(_In):
    id: NonNeg
    location_index: NonNeg
    service: NonNeg = 0
    setup: NonNeg = 0
    time_windows: list[Window] = Field(default_factory=list)
    description: str | None = None


class VroomShipmentExt(_In):
    """fleetd's per-shipment extension (``shipments[].fleetd``)."""

    required_kind: VehicleKind | None = None
    capabilities: list[str] = Field(default_factory=list)
    onboard_vehicle: str | None = None
    id: str | None = None


class VroomShipment(_In):
    pickup: VroomStep
    delivery: VroomStep
    amount: list[NonNeg] = Field(default_factory=list)
    skills: list[NonNeg] = Field(default_factory=list)
    priority: Annotated[int, Field(ge=0, le=100)] = 0
    fleetd: VroomShipmentExt | None = None


class VroomMatrices(_In):
    durations: list[list[NonNeg]]
    costs: list[list[NonNeg]] | None = None
    distances: list[list[NonNeg]] | None = None


class VroomExt(_In):
    objective: Objective = Objective.COST


class VroomProblem(_In):
    vehicles: Annotated[list[VroomVehicle], Field(min_length=1)]
    shipments: list[VroomShipment] = Field(default_factory=list)
    jobs: list[dict[str, Any]] = Field(default_factory=list)
    matrices: dict[str, VroomMatrices] = Field(default_factory=dict)
    matrix: list[list[NonNeg]] | None = None
    fleetd: VroomExt = Field(default_factory=VroomExt)


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse(data: object) -> VroomProblem:
    """Validate a VROOM problem object; :class:`ProblemFormatError` names the first bad field."""
    if not isinstance(data, dict):
        raise ProblemFormatError("(top level)", "a VROOM problem is a JSON object")
    try:
        parsed = VroomProblem.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ProblemFormatError(_field_path(tuple(first["loc"])), first["msg"]) from exc
    if parsed.jobs:
        raise ProblemFormatError("jobs", "fleetd plans shipments only; express jobs as shipments")
    return parsed


def _square(name: str, rows: list[list[int]], size: int | None = None) -> np.ndarray[Any, Any]:
    arr = np.asarray(rows, dtype=np.int64)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ProblemFormatError(name, "must be a square matrix")
    if size is not None and arr.shape[0] != size:
        raise ProblemFormatError(name, f"must be {size}x{size} like the durations")
    return arr


def _profiles(vp: VroomProblem) -> dict[str, Profile]:
    """One planner profile per (VROOM profile, per_hour, per_km, speed_factor) in use."""
    raw = dict(vp.matrices)
    if vp.matrix is not None and "car" not in raw:
        raw["car"] = VroomMatrices(durations=vp.matrix)
    out: dict[str, Profile] = {}
    for i, veh in enumerate(vp.vehicles):
        if veh.profile not in raw:
            raise ProblemFormatError(f"vehicles[{i}].profile", f"no matrices for {veh.profile!r}")
        key = _profile_key(veh)
        if key in out:
            continue
        m = raw[veh.profile]
        where = f"matrices.{veh.profile}"
        dur = _square(f"{where}.durations", m.durations)
        n = dur.shape[0]
        dist = None if m.distances is None else _square(f"{where}.distances", m.distances, n)
        if veh.speed_factor != 1.0:
            dur = np.rint(dur / veh.speed_factor).astype(np.int64)
        if m.costs is not None:
            cost = _square(f"{where}.costs", m.costs, n)
        else:
            cost = (dur * veh.costs.per_hour) // 3600
            if veh.costs.per_km and dist is not None:
                cost = cost + (dist * veh.costs.per_km) // 1000
        out[key] = Profile(dur, cost, dist)
    return out


def _profile_key(veh: VroomVehicle) -> str:
    c = veh.costs
    if (c.per_hour, c.per_km, veh.speed_factor) == (3600, 0, 1.0):
        return veh.profile
    return f"{veh.profile}|{c.per_hour}|{c.per_km}|{veh.speed_factor:g}"


def _windows(windows: list[tuple[int, int]], where: str) -> tuple[tuple[int, int], ...]:
    if not windows:
        return ((0, HORIZON),)
    ordered = sorted(windows)
    for k, (a, b) in enumerate(ordered):
        if a > b:
            raise ProblemFormatError(f"{where}[{k}]", "window start after its end")
    return tuple(ordered)


def _skills(skills: list[int], labels: list[str]) -> frozenset[str]:
    return frozenset([f"skill:{s}" for s in skills] + labels)


def _check_index(where: str, index: int | None, size: int) -> None:
    if index is not None and index >= size:
        raise ProblemFormatError(where, f"index {index} outside the {size}x{size} matrix")


def _vehicle(i: int, v: VroomVehicle, size: int, dims: int) -> Vehicle:
    _check_index(f"vehicles[{i}].start_index", v.start_index, size)
    _check_index(f"vehicles[{i}].end_index", v.end_index, size)
    ext = v.fleetd or VroomVehicleExt()
    tw = v.time_window or (0, HORIZON)
    if tw[0] > tw[1]:
        raise ProblemFormatError(f"vehicles[{i}].time_window", "start after end")
    battery = ext.range_m
    if v.max_distance is not None:
        battery = min(battery, v.max_distance + ext.reserve_m) if battery else v.max_distance
    return Vehicle(
        id=ext.id or str(v.id),
        start=v.start_index,
        end=v.end_index,
        profile=_profile_key(v),
        kind=ext.kind,
        capacity=tuple(v.capacity) + (0,) * (dims - len(v.capacity))
        if v.capacity
        else (HORIZON,) * dims,
        capabilities=_skills(
            [] if v.fleetd else v.skills, [*ext.capabilities, f"kind:{ext.kind.value}"]
        ),
        ready_time=tw[0],
        available_until=tw[1],
        range_m=battery,
        reserve_m=ext.reserve_m if ext.range_m is not None else 0,
        fixed_cost=v.costs.fixed,
        max_tasks=v.max_tasks,
    )


def _request(i: int, s: VroomShipment, sizes: dict[str, int], dims: int) -> Request:
    size = min(sizes.values())
    _check_index(f"shipments[{i}].pickup.location_index", s.pickup.location_index, size)
    _check_index(f"shipments[{i}].delivery.location_index", s.delivery.location_index, size)
    ext = s.fleetd or VroomShipmentExt()
    labels = list(ext.capabilities)
    if ext.required_kind is not None:
        labels.append(f"kind:{ext.required_kind.value}")
    return Request(
        id=ext.id or str(s.pickup.id),
        pickup=s.pickup.location_index,
        dropoff=s.delivery.location_index,
        demand=tuple(s.amount) + (0,) * (dims - len(s.amount)),
        pickup_service=s.pickup.service + s.pickup.setup,
        dropoff_service=s.delivery.service + s.delivery.setup,
        pickup_windows=_windows(s.pickup.time_windows, f"shipments[{i}].pickup.time_windows"),
        dropoff_windows=_windows(s.delivery.time_windows, f"shipments[{i}].delivery.time_windows"),
        priority=s.priority,
        required_kind=None,
        required_capabilities=_skills([] if s.fleetd else s.skills, labels),
        onboard_vehicle=ext.onboard_vehicle,
    )


def read_problem(data: object) -> Problem:
    """A :class:`Problem` from a VROOM problem object (see the module docstring).

    Skills become capabilities ``skill:N``, except where a ``fleetd`` object is present:
    its ``capabilities`` names are then authoritative (``skills`` is VROOM's copy of them).
    A vehicle's fleetd kind becomes the capability ``kind:robot`` / ``kind:driver``,
    which a shipment's ``required_kind`` requires.
    A vehicle without ``capacity`` is unlimited, as in VROOM.
    """
    return problem_from(parse(data))


def problem_from(vp: VroomProblem) -> Problem:
    """:func:`read_problem` for an already validated :class:`VroomProblem`."""
    profiles = _profiles(vp)
    sizes = {k: p.size for k, p in profiles.items()}
    dims = max([len(v.capacity) for v in vp.vehicles] + [len(s.amount) for s in vp.shipments])
    vehicles = tuple(
        _vehicle(i, v, sizes[_profile_key(v)], dims) for i, v in enumerate(vp.vehicles)
    )
    requests = tuple(_request(i, s, sizes, dims) for i, s in enumerate(vp.shipments))
    _unique("vehicles", [v.id for v in vehicles])
    _unique("shipments", [r.id for r in requests])
    return Problem(vehicles, requests, profiles, vp.fleetd.objective)


def _unique(where: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for k, i in enumerate(ids):
        if i in seen:
            raise ProblemFormatError(f"{where}[{k}].id", f"duplicate id {i}")
        seen.add(i)

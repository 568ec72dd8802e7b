"""Which alerts hold now: a pure function of the live fleet and the open missions.

No I/O: :func:`current_alerts` takes plain values and returns the alerts that should be
open, keyed by ``(kind, subject)``. The watch task (``dispatcher/alerting/watch.py``)
compares that set with the open rows and raises or clears the difference. It judges a
vehicle again only when the vehicle changed (:func:`vehicle_alerts`), and the missions
every round (:func:`mission_alerts`).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from fleet.model import VehicleFacts, VehicleStatus


class AlertKind(StrEnum):
    """What an alert is about (stored in ``alerts.kind``, CHECK-constrained)."""

    VEHICLE_OFFLINE = "vehicle_offline"
    LOW_BATTERY = "low_battery"
    FATAL_ERROR = "fatal_error"
    SAFETY_STOP = "safety_stop"
    #: A mission waits for a vehicle longer than ``alerts.mission_wait_s`` (a scheduled
    #: one counted from its window's start: not released before it is due, it is not late).
    MISSION_WAITING = "mission_waiting"
    #: The dispatch engine holds a mission for an operator's decision (resolve it).
    MISSION_DECISION = "mission_decision"
    #: A robot expected to move made no progress for ``dispatch.stuck_after_s``.
    VEHICLE_STUCK = "vehicle_stuck"
    #: Battery at or below ``alerts.critical_battery_pct``, not charging.
    BATTERY_CRITICAL = "battery_critical"
    #: A driver's position fixes keep being implausible: its position is not used.
    POSITION_UNRELIABLE = "position_unreliable"


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


SEVERITY: Mapping[AlertKind, Severity] = {
    AlertKind.VEHICLE_OFFLINE: Severity.CRITICAL,
    AlertKind.LOW_BATTERY: Severity.WARNING,
    AlertKind.FATAL_ERROR: Severity.CRITICAL,
    AlertKind.SAFETY_STOP: Severity.CRITICAL,
    AlertKind.MISSION_WAITING: Severity.WARNING,
    AlertKind.MISSION_DECISION: Severity.CRITICAL,
    AlertKind.VEHICLE_STUCK: Severity.CRITICAL,
    AlertKind.BATTERY_CRITICAL: Severity.CRITICAL,
    AlertKind.POSITION_UNRELIABLE: Severity.WARNING,
}

#: Vehicle kinds of alert, and mission kinds: the subject is a vehicle or a mission.
VEHICLE_KINDS = frozenset(
    {
        AlertKind.VEHICLE_OFFLINE,
        AlertKind.LOW_BATTERY,
        AlertKind.FATAL_ERROR,
        AlertKind.SAFETY_STOP,
        AlertKind.VEHICLE_STUCK,
        AlertKind.BATTERY_CRITICAL,
        AlertKind.POSITION_UNRELIABLE,
    }
)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When a condition becomes an alert."""

    #: Battery at or below this (percent), while not charging.
    low_battery_pct: float = 20.0
    #: A pending mission unassigned for this long (seconds).
    mission_wait_s: float = 300.0
    #: Battery at or below this (percent), not charging: battery_critical instead.
    critical_battery_pct: float = 10.0


@dataclass(frozen=True, slots=True)
class Sensed:
    """What other parts of the daemon found about vehicles, beyond their own reports."""

    #: Robots the dispatch watchdog finds stuck (dispatcher/dispatch/vehicle_sense.py).
    stuck: Collection[uuid.UUID] = frozenset()
    #: Drivers whose position fixes keep being implausible (dispatcher/links/fixes.py).
    unreliable: Collection[uuid.UUID] = frozenset()


@dataclass(frozen=True, slots=True)
class OpenMission:
    """What the rules need of one open (not final) mission."""

    id: uuid.UUID
    facility_id: uuid.UUID
    status: str
    #: Epoch seconds the mission was created.
    created_at: float
    vehicle_id: uuid.UUID | None
    #: Epoch seconds its pickup window opens (None: as soon as possible).
    window_start: float | None = None

    @property
    def ready_at(self) -> float:
        """When the rider is ready: a booked mission waits from its window's start."""
        if self.window_start is None:
            return self.created_at
        return max(self.created_at, self.window_start)


@dataclass(frozen=True, slots=True)
class AlertKey:
    kind: AlertKind
    subject_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class AlertCondition:
    """One alert that holds now."""

    key: AlertKey
    facility_id: uuid.UUID
    vehicle_id: uuid.UUID | None
    mission_id: uuid.UUID | None
    message: str

    @property
    def severity(self) -> Severity:
        return SEVERITY[self.key.kind]


def vehicle_alerts(v: VehicleFacts, limits: Thresholds, sensed: Sensed) -> Iterable[AlertCondition]:
    """The alerts that hold for one vehicle."""

    def cond(kind: AlertKind, message: str) -> AlertCondition:
        return AlertCondition(AlertKey(kind, v.id), v.facility_id, v.id, None, message[:500])

    if v.maintenance:
        return  # taken out of service on purpose: nothing to alert about
    if not v.online:
        if v.last_seen is not None:  # never heard from: configured but not started yet
            yield cond(AlertKind.VEHICLE_OFFLINE, f"{v.name} is offline (no sign of life)")
        return
    fatal = [e for e in v.errors if e.level.upper() == "FATAL"]
    if fatal or v.status is VehicleStatus.ERROR:
        what = "; ".join(f"{e.type}: {e.description}".rstrip(": ") for e in fatal[:3])
        yield cond(
            AlertKind.FATAL_ERROR,
            f"{v.name} reports a fatal error" + (f" ({what})" if what else ""),
        )
    if v.safety_stop:
        yield cond(
            AlertKind.SAFETY_STOP, f"{v.name} is in a safety stop (e-stop or field violation)"
        )
    if v.battery_pct is not None and not v.charging:
        if v.battery_pct <= limits.critical_battery_pct:
            yield cond(
                AlertKind.BATTERY_CRITICAL, f"{v.name} battery critical at {v.battery_pct:.0f}%"
            )
        elif v.battery_pct <= limits.low_battery_pct:
            yield cond(AlertKind.LOW_BATTERY, f"{v.name} battery at {v.battery_pct:.0f}%")
    if v.id in sensed.stuck:
        yield cond(AlertKind.VEHICLE_STUCK, f"{v.name} makes no progress (stuck)")
    if v.id in sensed.unreliable:
        yield cond(
            AlertKind.POSITION_UNRELIABLE,
            f"{v.name} reports implausible positions; its position is not used for dispatch",
        )


def current_alerts(
    vehicles: Iterable[VehicleFacts],
    missions: Iterable[OpenMission],
    held: Mapping[uuid.UUID, str],
    *,
    now: float,
    limits: Thresholds = Thresholds(),
    sensed: Sensed = Sensed(),
) -> dict[AlertKey, AlertCondition]:
    """Every alert that holds at ``now`` (epoch seconds).

    ``held`` maps missions the dispatch engine holds for an operator to the reason;
    ``sensed`` says which vehicles are stuck or report implausible positions.
    """
    out: dict[AlertKey, AlertCondition] = {}
    for v in vehicles:
        for c in vehicle_alerts(v, limits, sensed):
            out[c.key] = c
    out.update(mission_alerts(missions, held, now=now, limits=limits))
    return out


def mission_alerts(
    missions: Iterable[OpenMission],
    held: Mapping[uuid.UUID, str],
    *,
    now: float,
    limits: Thresholds = Thresholds(),
) -> dict[AlertKey, AlertCondition]:
    """The alerts that hold for the open missions at ``now`` (epoch seconds)."""
    out: dict[AlertKey, AlertCondition] = {}
    for m in missions:
        reason = held.get(m.id)
        if reason is not None:
            key = AlertKey(AlertKind.MISSION_DECISION, m.id)
            out[key] = AlertCondition(
                key, m.facility_id, m.vehicle_id, m.id, f"mission needs a decision: {reason}"[:500]
            )
        elif m.status == "pending" and now - m.ready_at >= limits.mission_wait_s:
            key = AlertKey(AlertKind.MISSION_WAITING, m.id)
            minutes = limits.mission_wait_s / 60
            out[key] = AlertCondition(
                key,
                m.facility_id,
                None,
                m.id,
                f"mission waiting for a vehicle for over {minutes:.0f} min",
            )
    return out

"""The status view's state and what it shows, without Textual: pure and unit-tested.

:class:`FleetState` is built from a snapshot (vehicles, missions, alerts as the API
returns them, as JSON dicts) and kept current by events from ``/v1/events``
(:meth:`FleetState.apply_event`). The widgets only ask it for rows
(:meth:`vehicle_rows`, :meth:`mission_rows`, :meth:`alert_rows`) and details.

``stale`` is set the moment the connection to the daemon is lost and cleared when a
fresh snapshot arrives: the view never shows old data as live.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

#: Recent events kept per vehicle or mission (the details pane shows them).
RECENT_EVENTS = 20
FINAL_MISSION_STATES = frozenset({"completed", "cancelled", "failed"})
PRIORITY_RANK = {"urgent": 3, "high": 2, "normal": 1, "low": 0}

#: Battery thresholds (percent) of the bar's colours: red at or below LOW, yellow to MID.
BATTERY_LOW = 20.0
BATTERY_MID = 50.0


class Permission(StrEnum):
    """The API permissions the view's actions need (names as ``GET /v1/me`` gives them)."""

    FLEET_VIEW = "fleet_view"
    VEHICLE_COMMAND = "vehicle_command"
    MISSION_VIEW_ALL = "mission_view_all"
    MISSION_CANCEL_ANY = "mission_cancel_any"
    ZONE_VIEW = "zone_view"


class Action(StrEnum):
    """What staff can do from the view (each behind a confirmation)."""

    PAUSE = "pause"
    RESUME = "resume"
    CHARGE = "charge"
    CANCEL_MISSION = "cancel"
    RESOLVE_MISSION = "resolve"
    ACKNOWLEDGE = "acknowledge"


#: The permission each action needs.
ACTION_PERMISSION: Mapping[Action, Permission] = {
    Action.PAUSE: Permission.VEHICLE_COMMAND,
    Action.RESUME: Permission.VEHICLE_COMMAND,
    Action.CHARGE: Permission.VEHICLE_COMMAND,
    Action.CANCEL_MISSION: Permission.MISSION_CANCEL_ANY,
    Action.RESOLVE_MISSION: Permission.MISSION_CANCEL_ANY,
    Action.ACKNOWLEDGE: Permission.VEHICLE_COMMAND,
}
VEHICLE_ACTIONS = (Action.PAUSE, Action.RESUME, Action.CHARGE)
MISSION_ACTIONS = (Action.CANCEL_MISSION, Action.RESOLVE_MISSION)


def allowed_actions(permissions: Iterable[str], offered: Sequence[Action]) -> list[Action]:
    """The actions of ``offered`` a token with ``permissions`` may take."""
    held = set(permissions)
    return [a for a in offered if ACTION_PERMISSION[a].value in held]


def parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def battery_bar(pct: float | None, width: int = 5) -> tuple[str, str]:
    """``("███░░ 62%", level)``: a bar readable without colour, and its level
    (``low``, ``mid``, ``ok``, ``unknown``) for the colour."""
    if pct is None:
        return ("?".ljust(width) + "   -", "unknown")
    pct = max(0.0, min(100.0, float(pct)))
    full = round(pct / 100 * width)
    bar = "█" * full + "░" * (width - full)
    level = "low" if pct <= BATTERY_LOW else "mid" if pct <= BATTERY_MID else "ok"
    return (f"{bar} {pct:3.0f}%", level)


def age_text(seconds: float | None) -> str:
    """``0.4s``, ``12s``, ``3m``, ``2h``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    s = max(0.0, seconds)
    if s < 10:
        return f"{s:.1f}s"
    if s < 120:
        return f"{s:.0f}s"
    if s < 7200:
        return f"{s / 60:.0f}m"
    return f"{s / 3600:.0f}h"


def _uuid(value: Any) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _point_in_ring(lon: float, lat: float, ring: Sequence[Sequence[float]]) -> bool:
    inside = False
    n = len(ring)
    for i in range(n):
        x1, y1 = ring[i][0], ring[i][1]
        x2, y2 = ring[(i + 1) % n][0], ring[(i + 1) % n][1]
        if (y1 > lat) != (y2 > lat):
            cross = x1 + (lat - y1) * (x2 - x1) / (y2 - y1)
            if lon < cross:
                inside = not inside
    return inside


def in_geometry(lat: float, lon: float, geometry: Mapping[str, Any]) -> bool:
    """Whether the point lies in a GeoJSON Polygon or MultiPolygon (holes respected)."""
    coords = geometry.get("coordinates") or []
    polygons = [coords] if geometry.get("type") == "Polygon" else coords
    for poly in polygons:
        if not poly:
            continue
        if _point_in_ring(lon, lat, poly[0]) and not any(
            _point_in_ring(lon, lat, hole) for hole in poly[1:]
        ):
            return True
    return False


@dataclass(frozen=True, slots=True)
class Column:
    """A table column: its key, its header, and how soon it goes when the table is narrow."""

    key: str
    label: str
    #: 0: always shown; otherwise dropped when the table is too narrow, highest first.
    drop: int = 0


def fit_columns(
    columns: Sequence[Column], widths: Mapping[str, int], available: int, padding: int = 1
) -> list[Column]:
    """The columns to show in ``available`` cells, in their order: all of them when they
    fit, else without the highest ``drop`` ones, one at a time, until the rest fits (the
    ``drop`` 0 ones always stay; they may still not fit in a tiny terminal).

    ``widths``: the widest cell of each column (cells); each column also takes its header's
    width and ``padding`` cells on each side."""

    def need(cols: Sequence[Column]) -> int:
        return sum(max(len(c.label), widths.get(c.key, 0)) + 2 * padding for c in cols)

    shown = list(columns)
    for column in sorted((c for c in columns if c.drop), key=lambda c: -c.drop):
        if need(shown) <= available:
            break
        shown.remove(column)
    return shown


#: Alert kinds in a word, for a narrow alerts panel (the details pane says it in full).
SHORT_ALERT_KINDS: Mapping[str, str] = {
    "vehicle_offline": "offline",
    "low_battery": "battery",
    "fatal_error": "fatal",
    "safety_stop": "e-stop",
    "mission_waiting": "waiting",
    "mission_decision": "decide",
}


@dataclass(frozen=True, slots=True)
class EventLine:
    """One line of a vehicle's or mission's recent history."""

    at: datetime
    text: str


@dataclass(frozen=True, slots=True)
class VehicleRow:
    id: str
    name: str
    kind: str
    status: str
    battery: str
    battery_level: str
    heartbeat: str
    mission: str
    zone: str
    alert: bool


@dataclass(frozen=True, slots=True)
class MissionRow:
    id: str
    short_id: str
    priority: str
    status: str
    vehicle: str
    waiting: str
    late: bool
    decision: bool


@dataclass(frozen=True, slots=True)
class AlertRow:
    id: str
    kind: str
    severity: str
    subject: str
    message: str
    age: str
    acknowledged: bool
    new: bool


@dataclass(frozen=True, slots=True)
class VehicleFilter:
    """What the vehicles table shows: every field empty means everything."""

    kind: str = ""
    status: str = ""
    zone: str = ""
    text: str = ""

    @classmethod
    def parse(cls, query: str) -> VehicleFilter:
        """``kind:robot status:idle zone:ward free text`` (any order; words without a
        prefix are free text, matched against name, status, zone and mission)."""
        fields: dict[str, str] = {}
        words: list[str] = []
        for word in query.split():
            key, sep, value = word.partition(":")
            if sep and key.lower() in ("kind", "status", "zone") and value:
                fields[key.lower()] = value.lower()
            else:
                words.append(word.lower())
        return cls(text=" ".join(words), **fields)

    def matches(self, row: VehicleRow) -> bool:
        if self.kind and not row.kind.lower().startswith(self.kind):
            return False
        if self.status and self.status not in row.status.lower():
            return False
        if self.zone and self.zone not in row.zone.lower():
            return False
        if self.text:
            hay = " ".join((row.name, row.kind, row.status, row.zone, row.mission, row.id)).lower()
            return all(w in hay for w in self.text.split())
        return True


class SortKey(StrEnum):
    NAME = "name"
    STATUS = "status"
    BATTERY = "battery"
    HEARTBEAT = "heartbeat"
    KIND = "kind"
    ZONE = "zone"


@dataclass
class FleetState:
    """Everything the view shows, as of the last snapshot plus the events since."""

    vehicles: dict[str, dict[str, Any]] = field(default_factory=dict)
    missions: dict[str, dict[str, Any]] = field(default_factory=dict)
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    zones: list[dict[str, Any]] = field(default_factory=list)
    #: Mission id -> the last mission event name (its phase: pickup_completed, ...).
    mission_phase: dict[str, str] = field(default_factory=dict)
    recent: dict[str, deque[EventLine]] = field(default_factory=dict)
    #: Alerts raised since the view last showed them (highlighted until acknowledged or seen).
    new_alerts: set[str] = field(default_factory=set)
    permissions: frozenset[str] = frozenset()
    role: str = ""
    #: True from the moment the daemon is lost until a fresh snapshot arrives.
    stale: bool = True
    #: Why the data is stale (shown in the status line); "" when live.
    stale_reason: str = "connecting"
    as_of: datetime | None = None
    last_event_id: str | None = None
    #: What the token may not read (shown instead of an empty table).
    unavailable: dict[str, str] = field(default_factory=dict)
    #: ``GET /v1/fleet/summary``: the counts, for a token that may not list vehicles.
    summary: dict[str, Any] = field(default_factory=dict)

    # Feeding ----------------------------------------------------------------------------

    def apply_snapshot(
        self,
        *,
        vehicles: Iterable[Mapping[str, Any]],
        missions: Iterable[Mapping[str, Any]],
        alerts: Iterable[Mapping[str, Any]],
        zones: Iterable[Mapping[str, Any]] = (),
        me: Mapping[str, Any] | None = None,
        at: datetime | None = None,
        unavailable: Mapping[str, str] | None = None,
        summary: Mapping[str, Any] | None = None,
    ) -> None:
        """Replace the state by a fresh read of the daemon; the data is live again."""
        self.vehicles = {str(v["id"]): dict(v) for v in vehicles if "id" in v}
        self.missions = {
            str(m["id"]): dict(m)
            for m in missions
            if "id" in m and m.get("status") not in FINAL_MISSION_STATES
        }
        fresh = {str(a["id"]): dict(a) for a in alerts if "id" in a and not a.get("cleared_at")}
        self.new_alerts = {
            a for a, row in fresh.items() if a not in self.alerts and not row.get("acknowledged_at")
        } | (self.new_alerts & fresh.keys())
        self.alerts = fresh
        self.zones = [dict(z) for z in zones]
        if me is not None:
            self.permissions = frozenset(str(p) for p in me.get("permissions", ()))
            self.role = str(me.get("role", ""))
        self.unavailable = dict(unavailable or {})
        self.summary = dict(summary or {})
        self.as_of = at or datetime.now(UTC)
        self.stale = False
        self.stale_reason = ""

    def mark_stale(self, reason: str) -> None:
        """The daemon is lost: everything shown is as of :attr:`as_of`, no longer live."""
        self.stale = True
        self.stale_reason = reason

    def update_vehicle(self, vehicle: Mapping[str, Any]) -> None:
        if "id" in vehicle:
            self.vehicles[str(vehicle["id"])] = dict(vehicle)

    def update_mission(self, mission: Mapping[str, Any]) -> None:
        if "id" not in mission:
            return
        mid = str(mission["id"])
        timeline = mission.get("timeline")
        if isinstance(timeline, list) and timeline and isinstance(timeline[-1], Mapping):
            self.mission_phase[mid] = str(timeline[-1].get("event", ""))
        if mission.get("status") in FINAL_MISSION_STATES:
            self.missions.pop(mid, None)
        else:
            self.missions[mid] = dict(mission)

    def apply_event(self, name: str, data: Mapping[str, Any], event_id: str | None = None) -> str:
        """Apply one stream event; returns the id of the vehicle, mission or alert it was
        about ("" when it was not understood: counted by the caller, never raised)."""
        if event_id is not None:
            self.last_event_id = event_id
        kind = str(data.get("type", name.partition(".")[0]))
        event = str(data.get("event", name.partition(".")[2]))
        at = parse_time(data.get("at")) or datetime.now(UTC)
        if kind == "vehicle":
            return self._vehicle_event(event, data, at)
        if kind == "mission":
            return self._mission_event(event, data, at)
        if kind == "alert":
            return self._alert_event(event, data, at)
        return ""

    def _remember(self, subject: str, at: datetime, text: str) -> None:
        lines = self.recent.setdefault(subject, deque(maxlen=RECENT_EVENTS))
        lines.append(EventLine(at, text))

    def _vehicle_event(self, event: str, data: Mapping[str, Any], at: datetime) -> str:
        vid = _uuid(data.get("vehicle_id"))
        if vid is None:
            return ""
        key = str(vid)
        v = self.vehicles.get(key)
        details = data.get("details") or {}
        if v is not None:
            if event == "went_online":
                v["online"] = True
            elif event == "went_offline":
                v["online"] = False
                v["status"] = "offline"
            elif event == "status_changed" and data.get("to_status"):
                v["status"] = str(data["to_status"])
            v["last_seen"] = max(str(v.get("last_seen") or ""), at.isoformat())
        text = event.replace("_", " ")
        if event == "status_changed":
            text = f"status {data.get('from_status')} -> {data.get('to_status')}"
        elif event in ("error_raised", "error_cleared") and isinstance(details, Mapping):
            text += f" {details.get('type', '')} {details.get('description', '')}".rstrip()
        self._remember(key, at, text)
        return key

    def _mission_event(self, event: str, data: Mapping[str, Any], at: datetime) -> str:
        mid = _uuid(data.get("mission_id"))
        if mid is None:
            return ""
        key = str(mid)
        to_status = data.get("to_status")
        self.mission_phase[key] = event
        if to_status in FINAL_MISSION_STATES:
            self.missions.pop(key, None)
        else:
            m = self.missions.setdefault(
                key,
                {
                    "id": key,
                    "status": to_status,
                    "priority": "normal",
                    "created_at": at.isoformat(),
                },
            )
            if to_status:
                m["status"] = str(to_status)
            if data.get("vehicle_id") is not None:
                m["vehicle_id"] = str(data["vehicle_id"])
        actor = data.get("actor")
        self._remember(key, at, f"{event}" + (f" by {actor}" if actor else ""))
        vehicle = data.get("vehicle_id")
        if vehicle:
            self._remember(str(vehicle), at, f"mission {key[:8]} {event}")
        return key

    def _alert_event(self, event: str, data: Mapping[str, Any], at: datetime) -> str:
        aid = _uuid(data.get("alert_id"))
        details = data.get("details")
        if aid is None or not isinstance(details, Mapping):
            return ""
        key = str(aid)
        if event == "raised":
            self.alerts[key] = {
                "id": key,
                "facility_id": data.get("facility_id"),
                "kind": details.get("kind"),
                "severity": details.get("severity"),
                "subject_id": details.get("subject_id"),
                "vehicle_id": details.get("vehicle_id"),
                "mission_id": details.get("mission_id"),
                "message": details.get("message"),
                "raised_at": details.get("raised_at") or at.isoformat(),
                "acknowledged_at": None,
                "acknowledged_by": None,
            }
            self.new_alerts.add(key)
        elif event == "cleared":
            self.alerts.pop(key, None)
            self.new_alerts.discard(key)
        elif event == "acknowledged":
            a = self.alerts.get(key)
            if a is not None:
                a["acknowledged_at"] = at.isoformat()
                a["acknowledged_by"] = data.get("actor") or details.get("acknowledged_by")
            self.new_alerts.discard(key)
        else:
            return ""
        subject = details.get("subject_id")
        if subject:
            self._remember(str(subject), at, f"alert {details.get('kind')} {event}")
        return key

    # Reading ----------------------------------------------------------------------------

    def zone_of(self, vehicle: Mapping[str, Any]) -> str:
        """The name of the first zone the vehicle stands in ("" when none or unknown)."""
        lat, lon = vehicle.get("lat"), vehicle.get("lon")
        if lat is None or lon is None:
            return ""
        for z in self.zones:
            geometry = z.get("geometry")
            if isinstance(geometry, Mapping) and in_geometry(float(lat), float(lon), geometry):
                return str(z.get("name", ""))
        return ""

    def display_status(self, v: Mapping[str, Any]) -> str:
        """The one word staff read: idle, to pickup, carrying, to dropoff, charging,
        paused, maintenance, error, offline (else the daemon's own status)."""
        status = str(v.get("status") or "?")
        if not v.get("online") or status == "offline":
            return "offline"
        if v.get("maintenance") or status == "maintenance":
            return "maintenance"
        if status in ("error", "paused"):
            return status
        if v.get("charging") or status == "charging":
            return "charging"
        mission = v.get("mission_id") or self.mission_of(str(v.get("id", "")))
        if mission:
            phase = self.mission_phase.get(str(mission))
            m = self.missions.get(str(mission))
            on_board = phase in ("pickup_completed", "in_transit", "dropoff_arrived") or (
                phase is None and m is not None and m.get("status") == "in_progress"
            )
            if not on_board:
                return "to pickup"
            return "to dropoff" if status == "driving" else "carrying"
        return status

    def missions_by_vehicle(self) -> dict[str, str]:
        """Vehicle id -> the open mission it works on: the one in progress, else the
        oldest assigned (a vehicle may have several planned)."""
        best: dict[str, tuple[tuple[int, str], str]] = {}
        for mid, m in self.missions.items():
            vid = m.get("vehicle_id")
            if not vid:
                continue
            rank = (0 if m.get("status") == "in_progress" else 1, str(m.get("created_at", "")))
            current = best.get(str(vid))
            if current is None or rank < current[0]:
                best[str(vid)] = (rank, mid)
        return {vid: mid for vid, (_, mid) in best.items()}

    def mission_of(self, vehicle_id: str) -> str | None:
        """The open mission the vehicle works on (when the vehicle does not say)."""
        return self.missions_by_vehicle().get(vehicle_id)

    def _alerted_subjects(self) -> set[str]:
        return {str(a.get("subject_id")) for a in self.alerts.values()}

    def vehicle_rows(
        self,
        *,
        now: datetime | None = None,
        flt: VehicleFilter = VehicleFilter(),
        sort: SortKey = SortKey.NAME,
        reverse: bool = False,
    ) -> list[VehicleRow]:
        now = now or datetime.now(UTC)
        alerted = self._alerted_subjects()
        by_vehicle = self.missions_by_vehicle()
        rows: list[tuple[Any, VehicleRow]] = []
        for vid, v in self.vehicles.items():
            seen = parse_time(v.get("last_seen"))
            age = (now - seen).total_seconds() if seen else None
            bar, level = battery_bar(v.get("battery"))
            mission = v.get("mission_id") or by_vehicle.get(vid)
            row = VehicleRow(
                id=vid,
                name=str(v.get("name", "?")),
                kind=str(v.get("kind", "?")),
                status=self.display_status(v),
                battery=bar,
                battery_level=level,
                heartbeat=age_text(age),
                mission=str(mission)[:8] if mission else "-",
                zone=self.zone_of(v) or "-",
                alert=vid in alerted,
            )
            if not flt.matches(row):
                continue
            battery = v.get("battery")
            key: Any = {
                SortKey.NAME: (row.name.lower(), vid),
                SortKey.STATUS: (row.status, row.name.lower()),
                SortKey.BATTERY: (battery if battery is not None else -1.0, row.name.lower()),
                SortKey.HEARTBEAT: (age if age is not None else float("inf"), row.name.lower()),
                SortKey.KIND: (row.kind, row.name.lower()),
                SortKey.ZONE: (row.zone, row.name.lower()),
            }[sort]
            rows.append((key, row))
        rows.sort(key=lambda kr: kr[0], reverse=reverse)
        return [r for _, r in rows]

    def decision_missions(self) -> set[str]:
        return {
            str(a.get("mission_id"))
            for a in self.alerts.values()
            if a.get("kind") == "mission_decision" and a.get("mission_id")
        }

    def is_late(self, m: Mapping[str, Any], now: datetime) -> bool:
        """Late against its window: not picked up by the window's end (or not assigned
        by its start)."""
        window = m.get("window")
        if not isinstance(window, Mapping):
            return False
        start, end = parse_time(window.get("start")), parse_time(window.get("end"))
        if end is not None and now > end:
            return True
        return start is not None and now > start and m.get("status") == "pending"

    def mission_rows(self, *, now: datetime | None = None) -> list[MissionRow]:
        """Open missions: those waiting for a decision first, then by priority (highest
        first), then by age (oldest first)."""
        now = now or datetime.now(UTC)
        decision = self.decision_missions()
        names = {vid: str(v.get("name", vid[:8])) for vid, v in self.vehicles.items()}
        out: list[tuple[Any, MissionRow]] = []
        for mid, m in self.missions.items():
            created = parse_time(m.get("created_at"))
            waited = (now - created).total_seconds() if created else None
            vehicle = m.get("vehicle_id")
            row = MissionRow(
                id=mid,
                short_id=mid[:8],
                priority=str(m.get("priority", "normal")),
                status=str(m.get("status", "?")),
                vehicle=names.get(str(vehicle), str(vehicle)[:8]) if vehicle else "-",
                waiting=age_text(waited),
                late=self.is_late(m, now),
                decision=mid in decision,
            )
            key = (
                0 if row.decision else 1,
                -PRIORITY_RANK.get(row.priority, 1),
                created or now,
                mid,
            )
            out.append((key, row))
        out.sort(key=lambda kr: kr[0])
        return [r for _, r in out]

    def alert_rows(self, *, now: datetime | None = None) -> list[AlertRow]:
        """Open alerts: unacknowledged first; among those, missions waiting for an
        operator's decision (someone must act, a rider may be waiting), then critical
        before warning; newest first."""
        now = now or datetime.now(UTC)
        names = {vid: str(v.get("name", vid[:8])) for vid, v in self.vehicles.items()}
        out: list[tuple[Any, AlertRow]] = []
        for aid, a in self.alerts.items():
            raised = parse_time(a.get("raised_at"))
            subject = str(a.get("subject_id") or "")
            shown = names.get(subject) or (
                f"mission {subject[:8]}" if a.get("mission_id") else subject[:8]
            )
            row = AlertRow(
                id=aid,
                kind=str(a.get("kind", "?")),
                severity=str(a.get("severity", "warning")),
                subject=shown,
                message=str(a.get("message", "")),
                age=age_text((now - raised).total_seconds() if raised else None),
                acknowledged=bool(a.get("acknowledged_at")),
                new=aid in self.new_alerts,
            )
            stamp = raised.timestamp() if raised else 0.0
            decision = row.kind == "mission_decision"
            key = (row.acknowledged, not decision, row.severity != "critical", -stamp, aid)
            out.append((key, row))
        out.sort(key=lambda kr: kr[0])
        return [r for _, r in out]

    def recent_events(self, subject: str) -> list[EventLine]:
        return list(self.recent.get(subject, ()))

    def counts(self) -> dict[str, int]:
        if "vehicles" in self.unavailable and self.summary:
            return {
                "vehicles": int(self.summary.get("total", 0)),
                "online": int(self.summary.get("online", 0)),
                "missions": len(self.missions),
                "alerts": 0,
            }
        online = sum(1 for v in self.vehicles.values() if v.get("online"))
        return {
            "vehicles": len(self.vehicles),
            "online": online,
            "missions": len(self.missions),
            "alerts": sum(1 for a in self.alerts.values() if not a.get("acknowledged_at")),
        }

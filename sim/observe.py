"""What fleetd was seen to do: its event stream, its metrics, and faults matched to both.

The live run reads ``GET /v1/events`` (Server-Sent Events) as an operator's screen would,
keeps every mission event of the missions it created and every vehicle event, and scrapes
``GET /metrics`` now and then. After the run, :func:`observations` says for each injected
fault what fleetd did about the vehicle it hit, within :data:`OBSERVE_WINDOW_S` wall
seconds of the fault's end: the vehicle went offline or into error, an alert was raised
about it (``vehicle_stuck``, ``battery_critical``, ``position_unreliable``...), its leg
was withdrawn or its mission reassigned or failed, a mission was held for an operator,
messages were refused, position fixes were not used.

The parsing and matching here are pure (no I/O) and unit-tested; the reading is in
:mod:`sim.live`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sim.run_record import MissionRecord

#: How long after a fault (its end, for faults that last) fleetd's reaction is looked for.
OBSERVE_WINDOW_S = 30.0

#: Vehicle statuses worth naming as a reaction (idle, driving, busy are everyday).
NOTABLE_STATUSES = frozenset({"error", "charging", "paused", "maintenance"})

#: Metric families the run scrapes, summed over their labels.
SCRAPED = (
    "fleetd_messages_rejected_total",
    "fleetd_messages_received_total",
    "fleetd_vehicles_online",
    "fleetd_dispatch_alerts_total",
    "fleetd_position_fixes_rejected_total",
)

#: Faults whose reaction shows in a metric (summed over all vehicles: the run's faults of
#: one kind are spread out, so a rise within a fault's window is taken as its doing).
METRIC_REACTIONS = {
    "malformed_burst": ("fleetd_messages_rejected_total", "messages refused"),
    "noisy_gps": ("fleetd_position_fixes_rejected_total", "fixes rejected"),
}


@dataclass(frozen=True, slots=True)
class SeenEvent:
    """One event from the stream (wall time as epoch seconds)."""

    at: float
    type: str  # mission | vehicle | alert
    event: str
    mission_id: str | None
    vehicle_id: str | None
    to_status: str | None
    details: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Injected:
    """A fault as the host injected it (wall time, epoch seconds)."""

    kind: str
    vehicle: str
    at: float
    wall_duration_s: float
    note: str


def sse_events(lines: Iterable[str]) -> Iterator[tuple[str | None, str]]:
    """(id, data) of each Server-Sent Event in ``lines`` (comments and blank keep-alives
    skipped; multi-line data joined)."""
    event_id: str | None = None
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r")
        if not line:
            if data:
                yield event_id, "\n".join(data)
            event_id, data = None, []
        elif line.startswith(":"):
            continue
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
        elif line.startswith("id:"):
            event_id = line[3:].strip()


def parse_event(data: str) -> SeenEvent | None:
    """An event's ``data`` JSON as a :class:`SeenEvent`; None when it is not one."""
    try:
        body = json.loads(data)
        at = datetime.fromisoformat(str(body["at"]).replace("Z", "+00:00")).timestamp()
        kind = str(body["type"])
        event = str(body["event"])
    except (ValueError, KeyError, TypeError):
        return None
    mission = body.get("mission_id")
    vehicle = body.get("vehicle_id")
    details = body.get("details")
    return SeenEvent(
        at=at,
        type=kind,
        event=event,
        mission_id=str(mission) if mission else None,
        vehicle_id=str(vehicle) if vehicle else None,
        to_status=body.get("to_status"),
        details=details if isinstance(details, dict) else {},
    )


def apply_mission_event(record: MissionRecord, ev: SeenEvent, t_s: float) -> None:
    """Update a mission's record with one of its events at simulated time ``t_s``."""
    if ev.event == "assigned":
        if record.assigned_s is None:
            record.assigned_s = t_s
        record.vehicle_id = ev.vehicle_id or record.vehicle_id
    elif ev.event == "reassigned":
        record.reassignments += 1
    elif ev.event == "pickup_completed":
        record.picked_up_s = t_s
        record.vehicle_id = ev.vehicle_id or record.vehicle_id
    elif ev.event == "completed":
        record.completed_s = t_s
        record.final_status = "completed"
    elif ev.event in ("failed", "cancelled"):
        record.final_status = ev.event
        reason = ev.details.get("reason") or ev.details.get("failure")
        record.failure_reason = str(reason) if reason else ev.event


def metric_sums(text: str) -> dict[str, float]:
    """The :data:`SCRAPED` families of a Prometheus text page, each summed over labels."""
    sums = dict.fromkeys(SCRAPED, 0.0)
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition(" ")
        family = name.split("{", 1)[0]
        if family in sums:
            try:
                sums[family] += float(rest.split()[0])
            except (ValueError, IndexError):
                continue
    return sums


def _describe(ev: SeenEvent) -> str | None:
    if ev.type == "vehicle":
        if ev.event == "went_offline":
            return "vehicle offline"
        if ev.event == "went_online":
            return "vehicle back online"
        if ev.event == "error_raised":
            return "vehicle error raised"
        if ev.event == "status_changed" and ev.to_status in NOTABLE_STATUSES:
            return f"vehicle {ev.to_status}"
        return None
    if ev.type == "alert":
        kind = ev.details.get("kind")
        return f"alert {kind} raised" if ev.event == "raised" and kind else None
    reason = ev.details.get("reason")
    if ev.event == "unassigned":
        # fleetd took the leg back from this vehicle (the next one is ``reassigned``).
        return f"leg withdrawn ({reason})" if reason else "mission unassigned"
    if ev.event == "held":
        return f"mission held ({reason})" if reason else "mission held"
    if ev.event in ("reassigned", "failed", "expired", "declined"):
        return f"mission {ev.event}"
    return None


def observations(
    fault: Injected,
    vehicle_uuid: str | None,
    events: Sequence[SeenEvent],
    scrapes: Sequence[tuple[float, dict[str, float]]],
    held: Mapping[str, str],
    until: float | None = None,
) -> list[str]:
    """What fleetd did about ``fault``, in order, each thing once.

    ``events``: the stream's events; ``scrapes``: (wall time, :func:`metric_sums`) in
    order; ``held``: vehicle uuid -> the reason a mission of it waits for an operator;
    ``until``: the moment the run began to stop (what every vehicle does then, going
    offline, is the end of the run, not a reaction to a fault).
    """
    start = fault.at
    end = fault.at + fault.wall_duration_s + OBSERVE_WINDOW_S
    if until is not None:
        end = min(end, until)
    seen: list[str] = []
    if vehicle_uuid is not None:
        for ev in events:
            if ev.vehicle_id != vehicle_uuid or not start <= ev.at <= end:
                continue
            what = _describe(ev)
            if what is not None and what not in seen:
                seen.append(what)
        if vehicle_uuid in held:
            seen.append(f"waiting for operator ({held[vehicle_uuid]})")
    metric = METRIC_REACTIONS.get(fault.kind)
    if metric is not None:
        key, what = metric
        before = [s for t, s in scrapes if t <= start]
        # A burst is counted at once; a lasting fault's effect is summed over its window.
        after = [s for t, s in scrapes if start + 2.0 <= t <= end]
        if before and after:
            last = after[0] if fault.kind == "malformed_burst" else after[-1]
            counted = last[key] - before[-1][key]
            if counted > 0:
                seen.append(f"{what} ({counted:.0f} counted in {key})")
    return seen

"""The run's key figures, computed from its :class:`~sim.run_record.RunRecord` alone (pure).

Definitions (docs/simulator.md, "Offline evaluation and reports"):

- *pickup wait*: from the moment a mission could be served (created, or its window's
  start) to its pickup; over the missions picked up.
- *on time*: picked up by its deadline: the window's end for a scheduled mission, else
  ``created + ON_TIME_TARGET_S[priority]``. A mission not picked up counts late once its
  deadline has passed within the run, and is left out while it has not.
- *empty distance per mission*: metres driven to pickups, over the missions completed
  (those whose distance was measured: see :mod:`sim.odometry` for a live run).
- *utilisation*: the share of (vehicle, sample) pairs online in which the vehicle held a
  mission.
- *re-plan time*: wall time of the full plans (the daemon's quick insertions of new
  missions are counted apart).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

from sim.run_record import MissionRecord, RunRecord

PRIORITIES = ("urgent", "high", "normal", "low")

#: Pickup deadline of an unscheduled mission, seconds after it was created.
ON_TIME_TARGET_S: dict[str, float] = {
    "urgent": 300.0,
    "high": 600.0,
    "normal": 900.0,
    "low": 1800.0,
}


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by linear interpolation between closest ranks
    (numpy's default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


@dataclass(frozen=True, slots=True)
class WaitFigures:
    missions: int
    mean_s: float | None
    p95_s: float | None


def wait_figures(missions: Iterable[MissionRecord]) -> WaitFigures:
    waits = [w for m in missions if (w := m.pickup_wait_s) is not None]
    return WaitFigures(len(waits), mean(waits), percentile(waits, 95))


def deadline_s(m: MissionRecord) -> float:
    """When ``m`` must be picked up to be on time."""
    if m.window_end_s is not None:
        return m.window_end_s
    return m.created_s + ON_TIME_TARGET_S.get(m.priority, ON_TIME_TARGET_S["normal"])


def on_time_verdict(m: MissionRecord, end_s: float) -> bool | None:
    """True/False once decided; None while its deadline lies beyond the run's end."""
    due = deadline_s(m)
    if m.picked_up_s is not None:
        return m.picked_up_s <= due
    if due <= end_s:
        return False
    return None


@dataclass(frozen=True, slots=True)
class Kpis:
    """Every figure of the report's KPI table."""

    missions_created: int
    missions_served: int
    missions_failed: int
    missions_cancelled: int
    missions_open_at_end: int
    wait: WaitFigures
    wait_by_priority: dict[str, WaitFigures]
    on_time_rate: float | None
    on_time_decided: int
    empty_distance_per_mission_m: float | None
    loaded_distance_per_mission_m: float | None
    utilisation: float | None
    utilisation_by_kind: dict[str, float]
    reassignments: int
    failures_by_reason: dict[str, int]
    messages_sent: int
    messages_received: int
    daemon_errors: int
    daemon_errors_by_kind: dict[str, int]
    faults_injected: dict[str, int]
    fault_outcomes: dict[str, dict[str, int]]
    replans: int
    quick_plans: int
    replan_p50_ms: float | None
    replan_p99_ms: float | None
    replan_max_ms: float | None
    extra: dict[str, float | int | str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _utilisation(record: RunRecord) -> tuple[float | None, dict[str, float]]:
    busy: Counter[str] = Counter()
    online: Counter[str] = Counter()
    for s in record.samples:
        if s.online:
            online[s.kind] += 1
            busy[s.kind] += int(s.busy)
    total = sum(online.values())
    overall = sum(busy.values()) / total if total else None
    return overall, {k: busy[k] / n for k, n in sorted(online.items()) if n}


def compute_kpis(record: RunRecord) -> Kpis:
    """The KPI table of ``record``."""
    missions = record.missions
    served = [m for m in missions if m.final_status == "completed"]
    by_priority = {
        p: wait_figures(m for m in missions if m.priority == p)
        for p in PRIORITIES
        if any(m.priority == p for m in missions)
    }
    verdicts = [v for m in missions if (v := on_time_verdict(m, record.duration_s)) is not None]
    util, util_kind = _utilisation(record)
    full = [r.duration_s * 1000.0 for r in record.replans if not r.quick]
    faults: Counter[str] = Counter(f.kind for f in record.faults)
    outcomes: dict[str, Counter[str]] = {}
    for f in record.faults:
        outcomes.setdefault(f.kind, Counter()).update(f.observed or ["nothing observed"])
    return Kpis(
        missions_created=len(missions),
        missions_served=len(served),
        missions_failed=sum(m.final_status == "failed" for m in missions),
        missions_cancelled=sum(m.final_status == "cancelled" for m in missions),
        missions_open_at_end=sum(m.final_status is None for m in missions),
        wait=wait_figures(missions),
        wait_by_priority=by_priority,
        on_time_rate=(sum(verdicts) / len(verdicts)) if verdicts else None,
        on_time_decided=len(verdicts),
        empty_distance_per_mission_m=mean(
            [d for m in served if (d := m.empty_distance_m) is not None]
        ),
        loaded_distance_per_mission_m=mean(
            [d for m in served if (d := m.loaded_distance_m) is not None]
        ),
        utilisation=util,
        utilisation_by_kind=util_kind,
        reassignments=sum(m.reassignments for m in missions),
        failures_by_reason=dict(
            sorted(
                Counter(
                    m.failure_reason or "unknown" for m in missions if m.final_status == "failed"
                ).items()
            )
        ),
        messages_sent=record.messages_sent,
        messages_received=record.messages_received,
        daemon_errors=sum(record.daemon_errors.values()),
        daemon_errors_by_kind=dict(sorted(record.daemon_errors.items())),
        faults_injected=dict(sorted(faults.items())),
        fault_outcomes={k: dict(sorted(v.items())) for k, v in sorted(outcomes.items())},
        replans=len(full),
        quick_plans=sum(r.quick for r in record.replans),
        replan_p50_ms=percentile(full, 50),
        replan_p99_ms=percentile(full, 99),
        replan_max_ms=max(full) if full else None,
        extra=dict(record.notes),
    )

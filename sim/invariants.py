"""What must hold after any fault: the checks every fault test ends with.

Shared by the fault suite and the active/standby failover test: import
:func:`check_all` (or the single checks) and assert its report is clean::

    report = await check_all(pool, created=workload.created, orders=tap)
    assert report.ok, report.describe()

The checks, each returning a list of human-readable problems (empty: it holds):

- :func:`nothing_forgotten`: every mission the API accepted exists, and is final:
  ``completed``, or ``cancelled``/``failed`` with a reason in its final event.
- :func:`histories_consistent`: each mission's events, in ``seq`` order, are a walk of the
  lifecycle (:mod:`dispatcher.missions.lifecycle`): it starts with ``created`` into
  ``pending``, every event's ``from_status`` is the previous event's ``to_status`` (no
  gaps), every step is legal, the last ``to_status`` is the mission's status, and no step
  of the trip is recorded twice for one vehicle (no duplicates: a replayed report is not
  a second ``pickup_arrived``).
- :func:`one_holder_at_a_time`: replaying the events, no vehicle ever holds two missions
  that are assigned or in progress at once (a mission is held from its ``assigned`` or
  ``reassigned`` to the next reassignment, release or final event).
- :class:`OrderTap` + :meth:`OrderTap.problems`: what the robots themselves said over MQTT:
  no two robots ever drive orders of the same mission at the same time (a robot drives an
  order while its ``state`` has nodes left of it).
- :func:`audit_chain_verifies`: seal what is committed, then the chain verifies.

Pure reads: run them against the test's own database when the workload has settled
(:func:`wait_settled`).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

import asyncpg

from dispatcher.audit.log import seal_pending, verify_chain
from dispatcher.missions.lifecycle import (
    IllegalTransition,
    MissionEvent,
    MissionStatus,
    apply,
)

#: Steps of a trip that happen once per assignment: once per vehicle that carries the
#: rider, and once more when the same vehicle is given the mission again (``reassigned``
#: after a restart or a takeover: a new leg, whose steps the timeline counts afresh, as
#: :func:`dispatcher.dispatch.progress.reached_by` does).
_ONCE_PER_VEHICLE = frozenset(
    {
        MissionEvent.STARTED,
        MissionEvent.PICKUP_ARRIVED,
        MissionEvent.PICKUP_COMPLETED,
        MissionEvent.IN_TRANSIT,
        MissionEvent.DROPOFF_ARRIVED,
        MissionEvent.DROPOFF_COMPLETED,
    }
)
#: Events that happen at most once in a mission's life.
_ONCE = frozenset(
    {MissionEvent.CREATED, MissionEvent.COMPLETED, MissionEvent.CANCELLED, MissionEvent.FAILED}
)


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    mission_id: uuid.UUID
    event: MissionEvent
    from_status: MissionStatus | None
    to_status: MissionStatus
    vehicle_id: uuid.UUID | None
    details: dict[str, object]


@dataclass
class Report:
    """The problems each check found, by check name."""

    problems: dict[str, list[str]] = field(default_factory=dict)
    missions: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    audit_rows: int = 0

    @property
    def ok(self) -> bool:
        return not any(self.problems.values())

    def describe(self, limit: int = 20) -> str:
        lines = [f"{self.missions} missions {self.by_status}, {self.audit_rows} audit rows"]
        for name, found in self.problems.items():
            for p in found[:limit]:
                lines.append(f"{name}: {p}")
            if len(found) > limit:
                lines.append(f"{name}: ... {len(found) - limit} more")
        return "\n".join(lines)


async def load_events(pool: asyncpg.Pool) -> dict[uuid.UUID, list[Event]]:
    rows = await pool.fetch(
        "SELECT seq, mission_id, event, from_status, to_status, vehicle_id, details::text AS d "
        "FROM mission_events ORDER BY seq"
    )
    out: dict[uuid.UUID, list[Event]] = defaultdict(list)
    for r in rows:
        out[r["mission_id"]].append(
            Event(
                seq=r["seq"],
                mission_id=r["mission_id"],
                event=MissionEvent(r["event"]),
                from_status=MissionStatus(r["from_status"]) if r["from_status"] else None,
                to_status=MissionStatus(r["to_status"]),
                vehicle_id=r["vehicle_id"],
                details=json.loads(r["d"]) if r["d"] else {},
            )
        )
    return out


async def _statuses(pool: asyncpg.Pool) -> dict[uuid.UUID, MissionStatus]:
    rows = await pool.fetch("SELECT id, status FROM missions WHERE deleted_at IS NULL")
    return {r["id"]: MissionStatus(r["status"]) for r in rows}


async def nothing_forgotten(pool: asyncpg.Pool, created: Collection[uuid.UUID]) -> list[str]:
    statuses = await _statuses(pool)
    events = await load_events(pool)
    problems = []
    for mid in created:
        status = statuses.get(mid)
        if status is None:
            problems.append(f"mission {mid} was accepted but is not in the database")
        elif not status.is_final:
            problems.append(f"mission {mid} is still {status.value}")
        elif status is not MissionStatus.COMPLETED:
            last = events.get(mid, [])[-1:] or []
            if not last or not last[0].details.get("reason"):
                problems.append(f"mission {mid} is {status.value} without a reason")
    return problems


def history_problems(
    mid: uuid.UUID, history: list[Event], status: MissionStatus | None
) -> list[str]:
    """What is wrong with one mission's events (pure, for unit tests too)."""
    if not history:
        return [f"mission {mid} has no events"]
    problems = []
    first = history[0]
    if first.event is not MissionEvent.CREATED or first.to_status is not MissionStatus.PENDING:
        problems.append(f"mission {mid} starts with {first.event.value}, not created")
    seen_once: set[MissionEvent] = set()
    per_vehicle: set[tuple[MissionEvent, uuid.UUID | None]] = set()
    prev = first
    seen_once.add(first.event)
    for ev in history[1:]:
        where = f"mission {mid} seq {ev.seq} {ev.event.value}"
        if ev.from_status is not prev.to_status:
            problems.append(f"{where}: from {ev.from_status} after {prev.to_status.value} (gap)")
        try:
            step = apply(prev.to_status, ev.event)
        except IllegalTransition as exc:
            problems.append(f"{where}: illegal: {exc}")
        else:
            if step.to_status is not ev.to_status:
                says = step.to_status.value
                problems.append(f"{where}: to {ev.to_status.value}, lifecycle says {says}")
        if ev.event in _ONCE:
            if ev.event in seen_once:
                problems.append(f"{where}: recorded twice")
            seen_once.add(ev.event)
        if ev.event in (MissionEvent.ASSIGNED, MissionEvent.REASSIGNED):
            per_vehicle.clear()
        if ev.event in _ONCE_PER_VEHICLE:
            key = (ev.event, ev.vehicle_id)
            if key in per_vehicle:
                problems.append(f"{where}: recorded twice for vehicle {ev.vehicle_id}")
            per_vehicle.add(key)
        prev = ev
    if status is not None and prev.to_status is not status:
        last = prev.to_status.value
        problems.append(f"mission {mid} is {status.value} but its last event says {last}")
    return problems


async def histories_consistent(pool: asyncpg.Pool) -> list[str]:
    statuses = await _statuses(pool)
    events = await load_events(pool)
    problems = []
    for mid, status in statuses.items():
        problems.extend(history_problems(mid, events.get(mid, []), status))
    return problems


def holder_problems(events: Iterable[Event]) -> list[str]:
    """Replay events in seq order; a vehicle must never hold two open missions (pure)."""
    holder: dict[uuid.UUID, uuid.UUID] = {}  # mission -> vehicle
    problems = []
    for ev in sorted(events, key=lambda e: e.seq):
        if ev.event in (MissionEvent.ASSIGNED, MissionEvent.REASSIGNED) and ev.vehicle_id:
            others = [m for m, v in holder.items() if v == ev.vehicle_id and m != ev.mission_id]
            if others:
                problems.append(
                    f"seq {ev.seq}: vehicle {ev.vehicle_id} given mission {ev.mission_id} "
                    f"while holding {others[0]}"
                )
            holder[ev.mission_id] = ev.vehicle_id
        elif ev.to_status.is_final or ev.to_status is MissionStatus.PENDING:
            holder.pop(ev.mission_id, None)
    return problems


async def one_holder_at_a_time(pool: asyncpg.Pool) -> list[str]:
    events = await load_events(pool)
    return holder_problems(e for evs in events.values() for e in evs)


async def audit_chain_verifies(pool: asyncpg.Pool) -> tuple[list[str], int]:
    """Seal everything committed, then verify; (problems, rows checked)."""
    while await seal_pending(pool) > 0:
        pass
    report = await verify_chain(pool)
    problems = []
    if not report.ok:
        problems.append(f"audit chain broken at id {report.first_bad_id}: {report.reason}")
    if report.unsealed:
        problems.append(f"{report.unsealed} audit rows still unsealed after sealing")
    return problems, report.rows_checked


class OrderTap:
    """Listens to every robot ``state`` of a VDA prefix and records who drives which order.

    Run :meth:`run` as a task during the test (it reconnects when the broker restarts),
    then ask :meth:`problems`. An order belongs to the mission whose id starts its
    orderId (fleetd's leg ids are ``<mission id>:<hex>``).
    """

    def __init__(self, host: str, port: int, vda_prefix: str) -> None:
        self.host, self.port, self.prefix = host, port, vda_prefix
        #: mission id -> vehicle serial -> [(first, last) times it was seen driving it].
        self.driving: dict[str, dict[str, list[list[float]]]] = defaultdict(dict)
        self.states = 0
        #: Serial numbers of the robots heard from.
        self.serials: set[str] = set()

    def note(self, serial: str, order_id: str, nodes_left: int, at: float) -> None:
        if not order_id or ":" not in order_id or nodes_left == 0:
            return
        mission = order_id.split(":", 1)[0]
        try:
            uuid.UUID(mission)
        except ValueError:
            return  # not a mission's order (a charging trip: "charge:<vehicle>:...")
        spans = self.driving[mission].setdefault(serial, [])
        if spans and at - spans[-1][1] < 5.0:
            spans[-1][1] = at
        else:
            spans.append([at, at])

    async def run(self) -> None:
        import aiomqtt

        while True:
            try:
                async with aiomqtt.Client(self.host, self.port) as client:
                    await client.subscribe(f"{self.prefix}/+/+/state", qos=0)
                    async for msg in client.messages:
                        self._on(str(msg.topic), bytes(msg.payload))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.5)

    def _on(self, topic: str, payload: bytes) -> None:
        try:
            state = json.loads(payload)
        except ValueError:
            return
        self.states += 1
        serial = topic.rsplit("/", 2)[-2]
        self.serials.add(serial)
        self.note(serial, state.get("orderId", ""), len(state.get("nodeStates") or ()), time.time())

    def problems(self) -> list[str]:
        out = []
        for mission, by_robot in self.driving.items():
            spans = sorted((s[0], s[1], robot) for robot, ss in by_robot.items() for s in ss)
            # Each span against every earlier span still running when it starts.
            for i, (start, _end, robot) in enumerate(spans):
                for e_start, e_end, other in spans[:i]:
                    if other != robot and e_start <= start < e_end:
                        out.append(
                            f"mission {mission}: robots {other} and {robot} drove it at once"
                        )
                        break
        return out


async def wait_settled(
    pool: asyncpg.Pool, created: Collection[uuid.UUID], timeout_s: float
) -> list[uuid.UUID]:
    """Wait until every mission in ``created`` is final; the ones that are not (on timeout)."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = await pool.fetch(
            "SELECT id FROM missions WHERE id = ANY($1::uuid[]) AND status NOT IN "
            "('completed', 'cancelled', 'failed')",
            list(created),
        )
        open_ids = [r["id"] for r in rows]
        if not open_ids or time.monotonic() > deadline:
            return open_ids
        await asyncio.sleep(0.5)


async def check_all(
    pool: asyncpg.Pool, *, created: Collection[uuid.UUID], orders: OrderTap | None = None
) -> Report:
    """Every invariant at once."""
    report = Report()
    statuses = await _statuses(pool)
    report.missions = len(statuses)
    for s in statuses.values():
        report.by_status[s.value] = report.by_status.get(s.value, 0) + 1
    report.problems["nothing_forgotten"] = await nothing_forgotten(pool, created)
    report.problems["histories"] = await histories_consistent(pool)
    report.problems["one_holder"] = await one_holder_at_a_time(pool)
    if orders is not None:
        report.problems["robots_driving"] = orders.problems()
    report.problems["audit_chain"], report.audit_rows = await audit_chain_verifies(pool)
    return report
